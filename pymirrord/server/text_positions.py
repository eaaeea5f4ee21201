"""Between config positions (1-based lines, code-point columns) and LSP positions (0-based, UTF-16 units).

LSP counts a line's characters in UTF-16 code units unless the client and server agreed on ``utf-8`` or
``utf-32``; an emoji in a header value is one code point but two UTF-16 units, and a diagnostic after it
must still underline the right character. Line breaks are ``\\n``, ``\\r\\n`` and ``\\r``, as for LSP.
"""

from __future__ import annotations

import bisect
import re
from typing import Literal

Encoding = Literal["utf-16", "utf-8", "utf-32"]

_BREAK = re.compile(r"\r\n|\n|\r")


def _units(text: str, encoding: Encoding) -> int:
    if encoding == "utf-32":
        return len(text)
    if encoding == "utf-8":
        return len(text.encode("utf-8", "surrogatepass"))
    return len(text) + sum(1 for char in text if ord(char) > 0xFFFF)


class TextPositions:
    """Offsets (code points into the text) to LSP (line, character) pairs and back."""

    def __init__(self, text: str, encoding: Encoding = "utf-16") -> None:
        self.text = text
        self.encoding = encoding
        self._starts = [0] + [match.end() for match in _BREAK.finditer(text)]

    @property
    def line_count(self) -> int:
        return len(self._starts)

    def line_text(self, line: int) -> str:
        """The 0-based line without its line break."""
        if not 0 <= line < len(self._starts):
            return ""
        start = self._starts[line]
        end = self._starts[line + 1] if line + 1 < len(self._starts) else len(self.text)
        return self.text[start:end].rstrip("\r\n")

    def line_start(self, line: int) -> int:
        return self._starts[max(0, min(line, len(self._starts) - 1))]

    def position(self, offset: int) -> tuple[int, int]:
        """The LSP (line, character) of a code-point offset."""
        offset = max(0, min(offset, len(self.text)))
        line = bisect.bisect_right(self._starts, offset) - 1
        return line, _units(self.text[self._starts[line] : offset], self.encoding)

    def offset(self, line: int, character: int) -> int:
        """The code-point offset of an LSP position, clamped to its line (as LSP asks)."""
        if line < 0:
            return 0
        if line >= len(self._starts):
            return len(self.text)
        start = self._starts[line]
        content = self.line_text(line)
        if self.encoding == "utf-32":
            return start + min(max(character, 0), len(content))
        units = 0
        for index, char in enumerate(content):
            if units >= character:
                return start + index
            units += _units(char, self.encoding)
        return start + len(content)

    def from_config(self, line: int, column: int) -> tuple[int, int]:
        """A config position (1-based line, 1-based code-point column) as an LSP position."""
        if line < 1:
            return 0, 0
        if line > len(self._starts):
            return self.position(len(self.text))
        content = self.line_text(line - 1)
        # A column past the end of the line (a problem at the line break) stays at the end of its line.
        index = max(0, min(column - 1, len(content)))
        return line - 1, _units(content[:index], self.encoding)

    def config_offset(self, line: int, column: int) -> int:
        if line < 1:
            return 0
        return min(self._starts[min(line, len(self._starts)) - 1] + max(column, 1) - 1, len(self.text))
