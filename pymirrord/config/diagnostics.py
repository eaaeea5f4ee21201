"""One problem found in a configuration: what, how bad, and exactly where.

Diagnostics are plain frozen values so that the CLI prints them, the editor helper turns them into LSP
ranges and ``ConfigError`` carries them, all from the same data. Lines and columns are 1-based and count
characters (code points); the end is exclusive. A diagnostic that does not come from the file (an
environment variable, a command-line flag, an unreadable file) has ``line == 0`` and names its source in
the message.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Severity = Literal["error", "warning"]


@dataclass(frozen=True)
class Diagnostic:
    """A located error or warning about a config file."""

    severity: Severity
    message: str
    file: str | None
    line: int
    column: int
    end_line: int
    end_column: int
    pointer: str
    hint: str = ""

    @property
    def located(self) -> bool:
        """Whether the diagnostic points into the file's text."""
        return self.line > 0

    def where(self) -> str:
        """``FILE:LINE:COL`` (or less, when the place is not in a file)."""
        if self.file is None:
            return "<environment>" if not self.located else f"<config>:{self.line}:{self.column}"
        if not self.located:
            return self.file
        return f"{self.file}:{self.line}:{self.column}"

    def headline(self) -> str:
        """``FILE:LINE:COL: error: message``, the first line of the human format."""
        return f"{self.where()}: {self.severity}: {self.message}"


def has_errors(diagnostics: tuple[Diagnostic, ...] | list[Diagnostic]) -> bool:
    return any(diagnostic.severity == "error" for diagnostic in diagnostics)


def sort_key(diagnostic: Diagnostic) -> tuple[int, int, int, str]:
    """File order; things without a place in the file come first (they usually explain the rest)."""
    return (
        diagnostic.line,
        diagnostic.column,
        0 if diagnostic.severity == "error" else 1,
        diagnostic.message,
    )
