"""HTTP filters: which requests a filtered subscription takes (pure: no I/O).

The one place that compiles and evaluates ``http_filter``: the agent routes requests with it, the config
checker reports bad patterns with it, and the editor helper's filter tester calls it, so what a user tests
in the editor is exactly what the agent does.

- ``header``: a regex searched (not anchored) in each ``Name: Value`` header line, case-insensitively;
  one matching line is enough. ``MyHeader`` matches a header name or value; ``^X-MyFilter:`` matches that
  header name in any capitalisation.
- ``path``: a regex searched in the path; if that fails, in the path with its query string.
- ``method``: the request's method, compared case-insensitively.
- ``all_of`` / ``any_of``: every part / at least one part matches.

Regexes use the ``regex`` package (lookarounds, backreferences, atomic groups). Header bytes that are not
UTF-8 are read as Latin-1, so any byte sequence can be matched and none can make matching fail.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, cast

import regex

from pymirrord.errors import PymirrordError
from pymirrord.protocol.http_types import FilterKind, FilterPart, HttpFilterSpec

if TYPE_CHECKING:
    # Only for annotations: the config package imports this module to check patterns.
    from pymirrord.config.model import HttpFilterConfig, InnerFilter

__all__ = [
    "REGEX_FLAGS",
    "CompiledFilter",
    "FilterKind",
    "FilterMatch",
    "FilterPart",
    "HttpFilterError",
    "HttpFilterSpec",
    "PatternProblem",
    "RequestHead",
    "compile_filter",
    "compile_pattern",
    "pattern_problem",
    "spec_from_config",
]

REGEX_FLAGS = regex.IGNORECASE
"""Header lines and paths are matched case-insensitively (``^x-myfilter:`` matches ``X-MyFilter:``)."""


# --- patterns ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PatternProblem:
    """Why a pattern does not compile: ``position`` is the 0-based character at fault."""

    position: int
    reason: str


class HttpFilterError(PymirrordError):
    """A filter that cannot be compiled; ``part`` names it (``header_filter``, ``any_of[1].path``)."""

    def __init__(self, part: str, pattern: str, problem: PatternProblem) -> None:
        super().__init__(
            f"{part} is not a valid regular expression: {problem.reason} "
            f"(at character {problem.position + 1} of {pattern!r})",
            "escape characters meant literally, for example \\( or \\.",
        )
        self.part = part
        self.pattern = pattern
        self.problem = problem


def compile_pattern(pattern: str) -> regex.Pattern[str]:
    """Compile a header or path regex exactly as the agent matches it; raises ``regex.error``."""
    return regex.compile(pattern, REGEX_FLAGS)


def _unclosed(pattern: str) -> tuple[int | None, int | None]:
    """The index of the last unclosed ``(`` and of an unterminated ``[``, if any."""
    groups: list[int] = []
    class_start: int | None = None
    index = 0
    while index < len(pattern):
        char = pattern[index]
        if char == "\\":
            index += 2
            continue
        if class_start is not None:
            # A ] right after [ or [^ is a literal member, not the end of the set.
            if char == "]" and index > class_start + 1 + (pattern[class_start + 1 : class_start + 2] == "^"):
                class_start = None
        elif char == "[":
            class_start = index
        elif char == "(":
            groups.append(index)
        elif char == ")" and groups:
            groups.pop()
        index += 1
    return (groups[-1] if groups else None), class_start


def blame(pattern: str, error: regex.error) -> PatternProblem:
    """The character to underline and what to say: ``regex`` reports unclosed groups and sets at the end of
    the pattern, but the character at fault is the one that opened them."""
    position = error.pos if isinstance(error.pos, int) else len(pattern)
    group, character_set = _unclosed(pattern)
    if error.msg == "missing )" and group is not None:
        return PatternProblem(group, "this ( is never closed")
    if error.msg == "unterminated character set" and character_set is not None:
        return PatternProblem(character_set, "this [ is never closed")
    return PatternProblem(min(position, max(len(pattern) - 1, 0)), str(error.msg))


def pattern_problem(pattern: str) -> PatternProblem | None:
    """None if ``pattern`` compiles, else where and why it does not."""
    try:
        compile_pattern(pattern)
    except regex.error as error:
        return blame(pattern, error)
    return None


# --- requests ---------------------------------------------------------------------------------------------


def _text(raw: bytes | str) -> str:
    if isinstance(raw, str):
        return raw
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        # Latin-1 maps every byte to one character: obs-text in a header can never make matching fail.
        return raw.decode("latin-1")


@dataclass(frozen=True)
class RequestHead:
    """What a filter looks at: the method, the request target as sent (path and query), the header lines.

    Header names and values may be ``bytes`` as read off the wire (any bytes) or ``str``.
    """

    method: str
    target: str
    headers: tuple[tuple[bytes | str, bytes | str], ...] = ()

    @property
    def path(self) -> str:
        return self.target.split("?", 1)[0]

    def header_lines(self) -> Iterable[str]:
        for name, value in self.headers:
            yield _header_line(name, value)


def _header_line(name: bytes | str, value: bytes | str) -> str:
    """The ``Name: Value`` line a header filter searches."""
    return f"{_text(name)}: {_text(value)}"


@dataclass(frozen=True)
class FilterMatch:
    """Which part of the filter matched (``header_filter``, ``all_of[0].path``...) and the text it matched."""

    part: str
    text: str


# --- compiled filters -------------------------------------------------------------------------------------


SEEN_MAX = 2048
"""Header lines whose outcome a header part remembers before it starts over."""
SEEN_LINE_MAX = 256
"""Longer header lines (cookies, tokens) are searched every time and never remembered: they rarely repeat,
and remembering them could hold megabytes."""
_UNSEEN = object()


@dataclass(frozen=True)
class _Part:
    name: str
    kind: FilterKind
    value: str
    pattern: regex.Pattern[str] | None  # None for a method
    seen: dict[tuple[bytes | str, bytes | str], str | None] = field(default_factory=dict, compare=False)
    """A header part's outcome per header already searched (the line it matched, or None). A connection's
    requests repeat the same headers (host, user agent, the developer's own marker) and a search with the
    ``regex`` package costs several times a dict lookup; a search's outcome depends on the line alone."""

    def match(self, request: RequestHead) -> str | None:
        if self.kind is FilterKind.METHOD:
            return request.method if request.method.upper() == self.value.upper() else None
        assert self.pattern is not None
        if self.kind is FilterKind.HEADER:
            seen = self.seen
            for header in request.headers:
                outcome = seen.get(header, _UNSEEN)
                if outcome is _UNSEEN:
                    line = _header_line(*header)
                    outcome = line if self.pattern.search(line) else None
                    if len(header[0]) + len(header[1]) <= SEEN_LINE_MAX:
                        if len(seen) >= SEEN_MAX:
                            seen.clear()
                        seen[header] = outcome
                if outcome is not None:
                    return cast(str, outcome)
            return None
        path = request.path
        if self.pattern.search(path):
            return path
        if request.target != path and self.pattern.search(request.target):
            return request.target
        return None


def _part(name: str, kind: FilterKind, value: str) -> _Part:
    if kind is FilterKind.METHOD:
        return _Part(name, kind, value, None)
    try:
        return _Part(name, kind, value, compile_pattern(value))
    except regex.error as error:
        raise HttpFilterError(name, value, blame(value, error)) from None


class CompiledFilter:
    """A compiled ``HttpFilterSpec``; ``match`` is all the agent calls per request."""

    def __init__(self, spec: HttpFilterSpec) -> None:
        self.spec = spec
        self._all = False
        self._parts: tuple[_Part, ...]
        if spec.header is not None:
            self._parts = (_part("header_filter", FilterKind.HEADER, spec.header),)
        elif spec.path is not None:
            self._parts = (_part("path_filter", FilterKind.PATH, spec.path),)
        elif spec.method is not None:
            self._parts = (_part("method_filter", FilterKind.METHOD, spec.method),)
        elif spec.all_of:
            self._all = True
            self._parts = tuple(
                _part(f"all_of[{index}].{item.kind.value}", item.kind, item.value)
                for index, item in enumerate(spec.all_of)
            )
        elif spec.any_of:
            self._parts = tuple(
                _part(f"any_of[{index}].{item.kind.value}", item.kind, item.value)
                for index, item in enumerate(spec.any_of)
            )
        else:
            raise ValueError("an empty HTTP filter; compile_filter explains this to users")

    def explain(self, request: RequestHead) -> tuple[FilterMatch, ...] | None:
        """Every part that matched (all of them for ``all_of``, the first for the others), or None."""
        found: list[FilterMatch] = []
        for part in self._parts:
            text = part.match(request)
            if text is None:
                if self._all:
                    return None
                continue
            found.append(FilterMatch(part.name, text))
            if not self._all:
                break
        return tuple(found) if found else None

    def match(self, request: RequestHead) -> str | None:
        """The name of the part that decided the match (``all_of`` for all of them), or None: no match.

        What ``explain`` decides, without gathering what matched: the agent asks this of every request."""
        if self._all:
            for part in self._parts:
                if part.match(request) is None:
                    return None
            return "all_of"
        for part in self._parts:
            if part.match(request) is not None:
                return part.name
        return None


def compile_filter(spec: HttpFilterSpec) -> CompiledFilter:
    """Compile ``spec``; raises ``HttpFilterError`` naming the part and the character at fault."""
    single = (spec.header, spec.path, spec.method)
    if all(value is None for value in single) and not spec.all_of and not spec.any_of:
        raise PymirrordError(
            "an HTTP filter needs one of header_filter, path_filter, method_filter, all_of or any_of",
            'for example {"header_filter": "^X-MyFilter:"}',
        )
    return CompiledFilter(spec)


def spec_from_config(config: HttpFilterConfig) -> HttpFilterSpec:
    """The wire form of a resolved config's ``http_filter`` (its ``ports`` stay with the session)."""

    def parts(items: Iterable[InnerFilter]) -> tuple[FilterPart, ...]:
        return tuple(FilterPart(FilterKind(item.kind), item.value) for item in items)

    return HttpFilterSpec(
        header=config.header_filter,
        path=config.path_filter,
        method=config.method_filter,
        all_of=parts(config.all_of or ()),
        any_of=parts(config.any_of or ()),
    )
