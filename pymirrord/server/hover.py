"""Hover in config files: the description, default and accepted values of the key under the cursor."""

from __future__ import annotations

from lsprotocol import types

from pymirrord.config.positions import split_pointer
from pymirrord.config.sources import Format, SourceSyntaxError, parse_source
from pymirrord.server.cursor import Path, context_at
from pymirrord.server.schema_nav import documentation, schema_for
from pymirrord.server.text_positions import TextPositions


def _path(pointer: str) -> Path:
    return tuple(int(part) if part.isdigit() else part for part in split_pointer(pointer))


def _place(text: str, offset: int, fmt: Format) -> tuple[Path, int, int] | None:
    """The key path under ``offset`` and the span to highlight."""
    try:
        parsed = parse_source(text, fmt)
    except SourceSyntaxError:
        parsed = None
    if parsed is not None:
        best: tuple[str, int, int] | None = None
        for pointer, node in parsed.source_map.spans.items():
            if node.key is not None and node.key.start <= offset <= node.key.end:
                return _path(pointer), node.key.start, node.key.end
            span = node.value
            if (
                pointer
                and span.start <= offset < span.end
                and (best is None or best[2] - best[1] > span.end - span.start)
            ):
                best = (pointer, span.start, span.end)
        if best is not None:
            path = _path(best[0])
            while path and isinstance(path[-1], int):
                path = path[:-1]
            return path, best[1], best[2]
        return None
    context = context_at(text, offset, fmt)
    if context is None:
        return None
    if context.kind == "value":
        return context.path, context.start, context.end
    word_end = offset
    while word_end < len(text) and (text[word_end].isalnum() or text[word_end] in "_-"):
        word_end += 1
    name = text[context.start : word_end].strip("\"'")
    return (*context.path, name), context.start, word_end


def hover(text: str, offset: int, fmt: Format, positions: TextPositions | None = None) -> types.Hover | None:
    positions = positions or TextPositions(text)
    place = _place(text, offset, fmt)
    if place is None:
        return None
    path, start, end = place
    node = schema_for(path)
    if node is None or not path:
        return None
    return types.Hover(
        contents=types.MarkupContent(types.MarkupKind.Markdown, documentation(path, node)),
        range=types.Range(
            types.Position(*positions.position(start)), types.Position(*positions.position(end))
        ),
    )
