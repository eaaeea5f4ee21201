"""Applying the helper's LSP text edits to a text, as an editor does (UTF-16 positions)."""

from __future__ import annotations

from typing import Any

from pymirrord.server.text_positions import TextPositions


def apply_text_edits(text: str, edits: list[dict[str, Any]]) -> str:
    """``text`` with ``edits`` (non-overlapping, positions in the original text) applied."""
    positions = TextPositions(text)
    spans = []
    for edit in edits:
        start, end = edit["range"]["start"], edit["range"]["end"]
        spans.append(
            (
                positions.offset(start["line"], start["character"]),
                positions.offset(end["line"], end["character"]),
                edit["newText"],
            )
        )
    for start, end, new_text in sorted(spans, reverse=True):
        text = text[:start] + new_text + text[end:]
    return text
