"""The target's environment in the local process: which variables are taken, and how they combine.

Sans-I/O and stdlib only; the agent and the session both use it:

- ``select_variables`` runs in the agent: of the target process's variables, the ones ``include``/``exclude``
  choose, without those that would break a local process (``PATH``, ``HOME``, ``PYTHONPATH``, ``LD_PRELOAD``,
  ``KUBERNETES_*``, pymirrord's own, ...) unless ``include`` names them exactly;
- ``compose`` runs in the session: the changes to make to the local environment, where an ``override`` beats
  the ``env_file``, which beats the target, which beats the local environment; ``unset`` names leave.

Patterns are variable names in which ``*`` stands for any run of characters and ``?`` for one character;
everything else matches itself, case-sensitively. Only names are ever reported or logged, never values.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

DEFAULT_EXCLUDED: tuple[str, ...] = (
    # Paths and identities of the pod's machine: wrong, often harmful, on this one.
    "PATH",
    "HOME",
    "HOSTNAME",
    "PWD",
    "OLDPWD",
    "SHLVL",
    "_",
    "TERM",
    "USER",
    "LOGNAME",
    "SHELL",
    "TMPDIR",
    # The local interpreter, its venv and the layer's injection.
    "PYTHONPATH",
    "PYTHONHOME",
    "PYTHONSTARTUP",
    "PYTHONUSERBASE",
    "VIRTUAL_ENV",
    "LD_PRELOAD",
    "LD_LIBRARY_PATH",
    # In-cluster credentials lookup: client libraries would think they run inside the pod.
    "KUBERNETES_*",
    # pymirrord's own variables (the layer's socket and settings, the agent's token).
    "PYMIRRORD_*",
)
"""Variables never taken from the target unless ``include`` names them exactly (no wildcard)."""


def pattern_problem(pattern: str) -> tuple[int, str] | None:
    """``(character index, reason)`` when ``pattern`` cannot name an environment variable, else None."""
    if pattern == "":
        return 0, "an empty name"
    for index, char in enumerate(pattern):
        if char == "=":
            return index, "a variable name cannot contain '='"
        if char.isspace():
            return index, "a variable name cannot contain white space"
        if not char.isprintable():
            return index, "a variable name cannot contain control characters"
    return None


def is_wildcard(pattern: str) -> bool:
    return "*" in pattern or "?" in pattern


@functools.lru_cache(maxsize=1024)
def _compiled(pattern: str) -> re.Pattern[str]:
    parts = [".*" if char == "*" else "." if char == "?" else re.escape(char) for char in pattern]
    return re.compile("".join(parts), re.DOTALL)


def name_matches(pattern: str, name: str) -> bool:
    """Whether ``name`` matches ``pattern`` (``*`` any run, ``?`` one character, case-sensitive)."""
    if not is_wildcard(pattern):
        return pattern == name
    return _compiled(pattern).fullmatch(name) is not None


def _any_match(patterns: Sequence[str], name: str) -> bool:
    return any(name_matches(pattern, name) for pattern in patterns)


def select_variables(
    environ: Mapping[str, str], include: Sequence[str] | None, exclude: Sequence[str] = ()
) -> dict[str, str]:
    """The target's variables the local process gets.

    ``include`` (None: every variable) and ``exclude`` are patterns; ``DEFAULT_EXCLUDED`` is left out unless
    ``include`` names the variable without a wildcard.
    """
    named = {pattern for pattern in include or () if not is_wildcard(pattern)}
    chosen: dict[str, str] = {}
    for name, value in environ.items():
        if pattern_problem(name) is not None:
            continue
        if include is not None and not _any_match(include, name):
            continue
        if _any_match(exclude, name):
            continue
        if name not in named and _any_match(DEFAULT_EXCLUDED, name):
            continue
        chosen[name] = value
    return chosen


@dataclass(frozen=True)
class TargetEnvironment:
    """What a session learnt for its processes' environment: the target's chosen variables (``remote``,
    read from ``source``, such as ``process 4242``), the ``env_file``'s, and warnings (names only)."""

    remote: Mapping[str, str] = field(default_factory=dict)
    source: str = ""
    env_file: Mapping[str, str] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class EnvironmentChanges:
    """How to turn a local environment into the process's: ``unset`` names leave, then ``set`` is applied.

    ``from_target`` lists (sorted) the names whose value in the result is the target's.
    """

    set: dict[str, str]
    unset: tuple[str, ...]
    from_target: tuple[str, ...]

    def apply(self, base: Mapping[str, str]) -> dict[str, str]:
        gone = set(self.unset)
        return {name: value for name, value in base.items() if name not in gone} | self.set


def compose(
    base: Mapping[str, str],
    target: TargetEnvironment,
    override: Mapping[str, str],
    unset: Sequence[str],
) -> EnvironmentChanges:
    """The changes to ``base`` (the local environment): override > env_file > target > local.

    ``unset`` names (case-insensitive) are removed from the local environment and are not taken from the
    target; the env file or an override may still set them. Unset names are returned as written too, so an
    editor whose environment differs from ``base`` removes them as well.
    """
    dropped = {name.lower() for name in unset}
    chosen = {name: value for name, value in target.remote.items() if name.lower() not in dropped}
    from_target = set(chosen) - set(target.env_file) - set(override)
    chosen.update(target.env_file)
    chosen.update(override)
    removed = {name for name in base if name.lower() in dropped} | set(unset)
    return EnvironmentChanges(
        set=chosen,
        unset=tuple(sorted(removed - set(chosen))),
        from_target=tuple(sorted(from_target)),
    )


def describe_names(names: Sequence[str], limit: int = 20) -> str:
    """``A, B, C`` (at most ``limit`` names, then ``and N more``): for logs, which only ever show names."""
    shown = ", ".join(names[:limit])
    more = len(names) - limit
    return f"{shown} and {more} more" if more > 0 else shown
