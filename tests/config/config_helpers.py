"""Shared helpers for the config tests: find where a piece of text sits, as 1-based line and column."""

from __future__ import annotations

from pymirrord.config.diagnostics import Diagnostic


def position_of(text: str, needle: str, occurrence: int = 0, offset: int = 0) -> tuple[int, int]:
    """The 1-based (line, column) of the ``occurrence``-th ``needle`` in ``text``, shifted by ``offset``."""
    index = -1
    for _ in range(occurrence + 1):
        index = text.index(needle, index + 1)
    index += offset
    line = text.count("\n", 0, index) + 1
    column = index - (text.rfind("\n", 0, index) + 1) + 1
    return line, column


def only(diagnostics: tuple[Diagnostic, ...], severity: str, containing: str) -> Diagnostic:
    """The single diagnostic of ``severity`` whose message contains ``containing``."""
    found = [d for d in diagnostics if d.severity == severity and containing in d.message]
    assert len(found) == 1, f"expected one {severity} with {containing!r}, got {diagnostics}"
    return found[0]


def char_at(text: str, line: int, column: int) -> str:
    return text.split("\n")[line - 1][column - 1]
