"""pymirrord's own lines on the terminal.

The app under pymirrord shares our stderr, so each line goes out in one write: ``print`` writes the
text and the newline separately, and another process's output can land between the two.
"""

from __future__ import annotations

import sys
from typing import TextIO


def say(text: str, stream: TextIO | None = None) -> None:
    """Writes ``pymirrord: <text>`` as one line, at once."""
    line(f"pymirrord: {text}", stream)


def line(text: str, stream: TextIO | None = None) -> None:
    """Writes ``text`` and its newline with a single write, then flushes."""
    out = stream if stream is not None else sys.stderr
    out.write(text + "\n")
    out.flush()
