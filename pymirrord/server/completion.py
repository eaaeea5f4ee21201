"""Completion in config files: keys of the object at the cursor, values of the key at the cursor
(enum members, shorthands such as ``"steal"``, booleans) and ``target`` paths from the targets available.

Each item carries a text edit over exactly what is being typed, written in the file's own syntax
(``"key": `` in JSON, ``key: `` in YAML, ``key = `` in TOML), so accepting it leaves a valid line.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

from lsprotocol import types

from pymirrord.config.sources import Format
from pymirrord.server.cursor import CursorContext, context_at
from pymirrord.server.schema_nav import (
    branches,
    documentation,
    is_ignored,
    is_target_path,
    keys_of,
    schema_for,
    target_kinds,
    value_choices,
)
from pymirrord.server.text_positions import TextPositions

HTTP_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")
# YAML 1.1 (PyYAML) reads these unquoted words as booleans or null: a string value that spells one is quoted.
_YAML_SPECIAL = re.compile(r"^(y|n|yes|no|on|off|true|false|null|~)$", re.IGNORECASE)


def _string(value: str, fmt: Format) -> str:
    if fmt == "yaml" and not _YAML_SPECIAL.match(value) and re.fullmatch(r"[A-Za-z0-9_./-]+", value):
        return value
    return json.dumps(value)


def _literal(value: Any, fmt: Format) -> str:
    if isinstance(value, str):
        return _string(value, fmt)
    return json.dumps(value)


def _edit(positions: TextPositions, context: CursorContext, new_text: str) -> types.TextEdit:
    start = positions.position(context.start)
    end = positions.position(context.end)
    return types.TextEdit(types.Range(types.Position(*start), types.Position(*end)), new_text)


def _followed_by_separator(text: str, end: int, fmt: Format) -> bool:
    separator = "=" if fmt == "toml" else ":"
    return text[end:].lstrip(" \t").startswith(separator)


def key_items(
    text: str, context: CursorContext, fmt: Format, positions: TextPositions
) -> list[types.CompletionItem]:
    node = schema_for(context.path)
    if node is None:
        return []
    items = []
    has_separator = _followed_by_separator(text, context.end, fmt)
    for name, sub in keys_of(node).items():
        if name in context.existing:
            continue
        key = json.dumps(name) if fmt == "json" or context.quoted else name
        if has_separator:
            new_text = key
        elif fmt == "toml":
            new_text = f"{key} = "
        else:
            new_text = f"{key}: "
        ignored = is_ignored(sub)
        items.append(
            types.CompletionItem(
                label=name,
                kind=types.CompletionItemKind.Property,
                detail="ignored by pymirrord" if ignored else None,
                documentation=types.MarkupContent(
                    types.MarkupKind.Markdown, documentation((*context.path, name), sub)
                ),
                sort_text=("1" if ignored else "0") + name,
                filter_text=key,
                text_edit=_edit(positions, context, new_text),
                tags=[types.CompletionItemTag.Deprecated] if ignored else None,
            )
        )
    if not items and node is not None:
        # A list of plain values (``- `` in YAML): offer the values instead.
        return value_items(context, fmt, positions, (), node)
    return items


def value_items(
    context: CursorContext,
    fmt: Format,
    positions: TextPositions,
    targets: Sequence[str],
    node: dict[str, Any] | None = None,
) -> list[types.CompletionItem]:
    node = node if node is not None else schema_for(context.path)
    if node is None:
        return []
    items: list[types.CompletionItem] = []
    seen: set[str] = set()

    def add(value: Any, kind: types.CompletionItemKind, detail: str | None, order: str) -> None:
        literal = _literal(value, fmt)
        if literal in seen:
            return
        seen.add(literal)
        items.append(
            types.CompletionItem(
                label=value if isinstance(value, str) else json.dumps(value),
                kind=kind,
                detail=detail,
                sort_text=order + literal,
                filter_text=literal if context.quoted or fmt == "json" else literal.strip('"'),
                text_edit=_edit(positions, context, literal),
            )
        )

    if is_target_path(context.path):
        for target in targets:
            add(target, types.CompletionItemKind.Value, "available target", "0")
        for kind in target_kinds():
            add(
                "targetless" if kind == "targetless" else f"{kind}/",
                types.CompletionItemKind.Folder,
                "target kind",
                "1",
            )
    for value in value_choices(node):
        add(value, types.CompletionItemKind.EnumMember, None, "0")
    if any(branch.get("$ref") == "#/$defs/HttpMethod" for branch in branches(node)):
        for method in HTTP_METHODS:
            add(method, types.CompletionItemKind.EnumMember, "HTTP method", "0")
    return items


def complete(
    text: str, offset: int, fmt: Format, targets: Sequence[str] = (), positions: TextPositions | None = None
) -> list[types.CompletionItem]:
    """The completion items at ``offset`` (code points) of a config text."""
    positions = positions or TextPositions(text)
    context = context_at(text, offset, fmt)
    if context is None:
        return []
    if context.kind == "key":
        return key_items(text, context, fmt, positions)
    return value_items(context, fmt, positions, targets)
