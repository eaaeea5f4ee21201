"""Reading a config text in any of its three formats into plain data plus a map of where each value is.

All three formats end up as the same ``SourceMap``: JSON pointer to ``NodeSpan``. JSON and YAML record exact
spans for every key and value; TOML's reader gives no positions, so a small line scanner finds the line of
each key (``[table]`` headers and ``key = value`` lines), which covers what people write in practice.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from typing import Any, Literal

import yaml

from pymirrord.config.positions import (
    JsonSyntaxError,
    LineIndex,
    NodeSpan,
    Span,
    join_pointer,
    literal_offsets,
    parse_json,
    split_pointer,
)

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib  # type: ignore[import-not-found, no-redef, unused-ignore]

Format = Literal["json", "toml", "yaml"]

_EXTENSIONS: dict[str, Format] = {".json": "json", ".toml": "toml", ".yaml": "yaml", ".yml": "yaml"}


def format_for(filename: str) -> Format | None:
    """The format a file name implies, or None for an extension pymirrord does not read."""
    lowered = filename.lower()
    for extension, fmt in _EXTENSIONS.items():
        if lowered.endswith(extension):
            return fmt
    return None


@dataclass(frozen=True)
class Location:
    """A resolved place in the text: 1-based start and exclusive end."""

    line: int
    column: int
    end_line: int
    end_column: int


class SourceMap:
    """Answers "where is this pointer written?" for one config text."""

    def __init__(self, text: str, spans: dict[str, NodeSpan]) -> None:
        self.text = text
        self.lines = LineIndex(text)
        self.spans = spans

    def _nearest(self, pointer: str) -> tuple[str, NodeSpan] | None:
        # A value written inside something the scanner could not look into (a TOML inline table, say) is
        # reported at the closest enclosing place that it did record.
        parts = split_pointer(pointer)
        while True:
            candidate = "".join(join_pointer("", part) for part in parts)
            if candidate in self.spans:
                return candidate, self.spans[candidate]
            if not parts:
                return None
            parts.pop()

    def _location(self, span: Span) -> Location:
        line, column = self.lines.position(span.start)
        end_line, end_column = self.lines.position(max(span.end, span.start))
        return Location(line, column, end_line, end_column)

    def locate(self, pointer: str, *, key: bool = False) -> Location:
        """The value at ``pointer`` (its key, with ``key=True``); else the nearest recorded ancestor."""
        found = self._nearest(pointer)
        if found is None:
            return Location(1, 1, 1, 1)
        found_pointer, node = found
        if key and node.key is not None:
            return self._location(node.key)
        if found_pointer != pointer and node.key is not None:
            return self._location(node.key)
        return self._location(node.value)

    def locate_head(self, pointer: str) -> Location:
        """A short range for ``pointer``: its key when it has one, else just the value's first character.

        Used for errors about a whole object or list, where underlining every line of it would bury the point.
        """
        found = self._nearest(pointer)
        if found is None:
            return Location(1, 1, 1, 1)
        _, node = found
        if node.key is not None:
            return self._location(node.key)
        start = node.value.start
        return self._location(Span(start, min(start + 1, node.value.end)))

    def locate_chars(self, pointer: str, value: str, start: int, end: int) -> Location:
        """Characters ``[start, end)`` of the decoded string ``value`` at ``pointer``, inside its literal.

        Escapes are accounted for: in ``"a\\\\(b"`` the ``(`` is four characters into the literal, not three.
        Falls back to the whole value when the literal cannot be mapped character by character.
        """
        node = self.spans.get(pointer)
        if node is None:
            return self.locate(pointer)
        source = self.text[node.value.start : node.value.end]
        offsets = literal_offsets(source, node.style, value)
        if offsets is None:
            return self._location(node.value)
        quoted = node.style != "plain"
        content_end = len(source) - 1 if quoted else len(source)
        bounds = [*offsets, content_end]
        start = max(0, min(start, len(offsets)))
        end = max(start, min(end, len(offsets)))
        if start == len(offsets):
            # The problem is at the very end of the text: point at the closing quote (or the last character).
            at = content_end if quoted else max(content_end - 1, 0)
            return self._location(Span(node.value.start + at, node.value.start + at + 1))
        stop = bounds[end] if end > start else bounds[start + 1]
        return self._location(Span(node.value.start + bounds[start], node.value.start + stop))


@dataclass(frozen=True)
class SyntaxProblem:
    """Why a text could not be read at all, and where."""

    message: str
    hint: str
    location: Location


@dataclass(frozen=True)
class ParsedSource:
    data: Any
    source_map: SourceMap
    warnings: tuple[tuple[str, str, str], ...] = ()  # (pointer, message, hint), located at the key


class SourceSyntaxError(Exception):
    def __init__(self, problem: SyntaxProblem) -> None:
        super().__init__(problem.message)
        self.problem = problem


def parse_source(text: str, fmt: Format) -> ParsedSource:
    """Parse ``text``; raises ``SourceSyntaxError`` with a located, human message when it is not valid."""
    if text.startswith("\ufeff"):
        # Editors on Windows like to write a byte order mark; it is not part of the document. Keep offsets
        # aligned with what the editor shows by replacing it with nothing visible rather than shifting.
        text = " " + text[1:]
    if fmt == "json":
        return _parse_json(text)
    if fmt == "yaml":
        return _parse_yaml(text)
    return _parse_toml(text)


def _parse_json(text: str) -> ParsedSource:
    lines = LineIndex(text)
    try:
        parsed = parse_json(text)
    except JsonSyntaxError as error:
        line, column = lines.position(error.offset)
        end_line, end_column = lines.position(error.offset + error.length)
        raise SourceSyntaxError(
            SyntaxProblem(
                f"invalid JSON: {error.message}", error.hint, Location(line, column, end_line, end_column)
            )
        ) from None
    warnings = tuple(
        (
            pointer,
            f"key {split_pointer(pointer)[-1]!r} appears more than once; the last one wins",
            "remove one",
        )
        for pointer, _ in parsed.duplicate_keys
    )
    spans = dict(parsed.spans)
    for pointer, key_span in parsed.duplicate_keys:
        # The recorded span is the last occurrence; the warning is about the repeat, so point at that key.
        spans.setdefault(pointer, NodeSpan(key_span, key_span))
    return ParsedSource(parsed.value, SourceMap(text, spans), warnings)


def _yaml_problem(error: yaml.YAMLError, lines: LineIndex) -> SyntaxProblem:
    mark = getattr(error, "problem_mark", None) or getattr(error, "context_mark", None)
    problem = getattr(error, "problem", None) or str(error)
    context = getattr(error, "context", None)
    message = f"invalid YAML: {problem}" + (f" ({context})" if context else "")
    if mark is None:
        return SyntaxProblem(message, "", Location(1, 1, 1, 1))
    offset = lines.offset(mark.line + 1, mark.column + 1)
    line, column = lines.position(offset)
    hint = ""
    if "\t" in lines.line_text(line):
        hint = "YAML does not allow tabs for indentation; use spaces"
    return SyntaxProblem(message, hint, Location(line, column, line, column + 1))


_YAML_STYLES = {None: "plain", "'": "yaml-single", '"': "yaml-double"}


def _parse_yaml(text: str) -> ParsedSource:
    lines = LineIndex(text)
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.load(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as error:
        raise SourceSyntaxError(_yaml_problem(error, lines)) from None
    spans: dict[str, NodeSpan] = {}
    warnings: list[tuple[str, str, str]] = []
    if node is not None:
        _walk_yaml(node, "", None, spans=spans, warnings=warnings, text=text)
    if data is None:
        # An empty YAML document (or only comments) is an empty configuration.
        data = {}
    bad_key = _first_non_string_key(data, "")
    if bad_key is not None:
        pointer, key = bad_key
        location = SourceMap(text, spans).locate(pointer, key=True)
        raise SourceSyntaxError(
            SyntaxProblem(
                f"key {key!r} is not a string",
                "config keys are names; quote the key if it really is meant to be one",
                location,
            )
        )
    return ParsedSource(data, SourceMap(text, spans), tuple(warnings))


def _walk_yaml(
    node: yaml.Node,
    pointer: str,
    key: Span | None,
    *,
    spans: dict[str, NodeSpan],
    warnings: list[tuple[str, str, str]],
    text: str,
) -> None:
    style = ""
    if isinstance(node, yaml.ScalarNode):
        style = _YAML_STYLES.get(node.style, "")
    spans[pointer] = NodeSpan(Span(node.start_mark.index, node.end_mark.index), key, style)
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key_node, value_node in node.value:
            name = str(key_node.value)
            child = join_pointer(pointer, name)
            key_span = Span(key_node.start_mark.index, key_node.end_mark.index)
            if name in seen:
                warnings.append(
                    (child, f"key {name!r} appears more than once; the last one wins", "remove one")
                )
            seen.add(name)
            _walk_yaml(value_node, child, key_span, spans=spans, warnings=warnings, text=text)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _walk_yaml(item, join_pointer(pointer, index), None, spans=spans, warnings=warnings, text=text)


def _first_non_string_key(data: Any, pointer: str) -> tuple[str, Any] | None:
    if isinstance(data, dict):
        for key, value in data.items():
            if not isinstance(key, str):
                return join_pointer(pointer, str(key)), key
            found = _first_non_string_key(value, join_pointer(pointer, key))
            if found:
                return found
    elif isinstance(data, list):
        for index, value in enumerate(data):
            found = _first_non_string_key(value, join_pointer(pointer, index))
            if found:
                return found
    return None


_TOML_POSITION = re.compile(r"\(at line (\d+), column (\d+)\)")
_TOML_END = re.compile(r"\(at end of document\)")
_BARE_KEY = r"[A-Za-z0-9_-]+"
_QUOTED_KEY = r'"(?:[^"\\]|\\.)*"|\'[^\']*\''
_KEY_PART = rf"(?:{_BARE_KEY}|{_QUOTED_KEY})"
_DOTTED_KEY = rf"{_KEY_PART}(?:\s*\.\s*{_KEY_PART})*"
_TOML_HEADER = re.compile(rf"^\s*(\[\[?)\s*({_DOTTED_KEY})\s*\]\]?")
_TOML_ASSIGNMENT = re.compile(rf"^\s*({_DOTTED_KEY})\s*=\s*")


def _toml_key_parts(dotted: str) -> list[str]:
    parts = re.findall(_KEY_PART, dotted)
    result = []
    for part in parts:
        if part.startswith('"'):
            result.append(str(tomllib.loads(f"k = {part}")["k"]))
        elif part.startswith("'"):
            result.append(part[1:-1])
        else:
            result.append(part)
    return result


def _parse_toml(text: str) -> ParsedSource:
    lines = LineIndex(text)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        message = str(error)
        match = _TOML_POSITION.search(message)
        if match:
            line, column = int(match.group(1)), int(match.group(2))
        elif _TOML_END.search(message):
            line, column = lines.position(len(text))
        else:
            line, column = 1, 1
        reason = _TOML_POSITION.sub("", _TOML_END.sub("", message)).strip()
        raise SourceSyntaxError(
            SyntaxProblem(f"invalid TOML: {reason}", "", Location(line, column, line, column + 1))
        ) from None
    return ParsedSource(data, SourceMap(text, _scan_toml(text, lines)))


def _scan_toml(text: str, lines: LineIndex) -> dict[str, NodeSpan]:
    """Record the line of every ``[table]`` header and ``key = value`` line, keyed by JSON pointer."""
    spans: dict[str, NodeSpan] = {}
    table: list[str] = []
    array_counts: dict[str, int] = {}
    offset = 0
    multiline_closer: str | None = None
    for raw_line in text.splitlines(keepends=True):
        line_start = offset
        offset += len(raw_line)
        line = raw_line.rstrip("\r\n")
        if multiline_closer is not None:
            # Inside a multi-line string nothing looks like a key, whatever it contains.
            if line.count(multiline_closer) % 2 == 1:
                multiline_closer = None
            continue
        header = _TOML_HEADER.match(line)
        if header:
            parts = _toml_key_parts(header.group(2))
            pointer = "".join(join_pointer("", part) for part in parts)
            if header.group(1) == "[[":
                index = array_counts.get(pointer, 0)
                array_counts[pointer] = index + 1
                key_span = Span(line_start + header.start(2), line_start + header.end(2))
                spans.setdefault(pointer, NodeSpan(key_span, key_span))
                parts = [*parts, str(index)]
                pointer = join_pointer(pointer, index)
            key_span = Span(line_start + header.start(2), line_start + header.end(2))
            spans[pointer] = NodeSpan(key_span, key_span)
            table = parts
            continue
        assignment = _TOML_ASSIGNMENT.match(line)
        if not assignment:
            continue
        parts = [*table, *_toml_key_parts(assignment.group(1))]
        pointer = "".join(join_pointer("", part) for part in parts)
        key_span = Span(line_start + assignment.start(1), line_start + assignment.end(1))
        value_start = line_start + assignment.end()
        value_text = line[assignment.end() :]
        value_end, style = _toml_value_extent(value_text)
        if value_text.startswith(('"""', "'''")) and value_text.count(value_text[:3]) == 1:
            multiline_closer = value_text[:3]
        spans[pointer] = NodeSpan(Span(value_start, value_start + value_end), key_span, style)
        # Intermediate tables created by a dotted key (a.b.c = 1) live where that key is written.
        for depth in range(len(table) + 1, len(parts)):
            prefix = "".join(join_pointer("", part) for part in parts[:depth])
            spans.setdefault(prefix, NodeSpan(key_span, key_span))
    return spans


def _toml_value_extent(value_text: str) -> tuple[int, str]:
    """How far a single-line value runs, and the literal style when it is a one-line string."""
    basic = re.match(r'"(?:[^"\\]|\\.)*"', value_text)
    if basic and not value_text.startswith('"""'):
        return basic.end(), "toml-basic"
    literal = re.match(r"'[^']*'", value_text)
    if literal and not value_text.startswith("'''"):
        return literal.end(), "toml-literal"
    # Anything else runs to a comment or the end of the line.
    without_comment = value_text.split(" #", 1)[0].rstrip()
    return max(len(without_comment), 1), ""
