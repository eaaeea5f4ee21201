"""Reading the config schema for the editor: the schema of a path, its keys, its values, its documentation."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from pymirrord.config.positions import join_pointer
from pymirrord.config.schema import IGNORED, TARGET_KIND, children, item_schema, load_schema, resolve_ref
from pymirrord.config.schema import dotted as dotted_pointer
from pymirrord.server.cursor import Path

Schema = dict[str, Any]


def pointer_of(path: Path) -> str:
    pointer = ""
    for part in path:
        pointer = join_pointer(pointer, part)
    return pointer


def dotted(path: Path) -> str:
    return dotted_pointer(pointer_of(path))


def schema_for(path: Path) -> Schema | None:
    """The property schema at ``path`` (list indexes step into items), or None where the schema has none."""
    node: Schema = load_schema()
    for part in path:
        found: Schema | None
        found = item_schema(node) if isinstance(part, int) else children(node).get(part)
        if found is None:
            return None
        node = found
    return node


def branches(node: Schema) -> Iterator[Schema]:
    """The schema and every alternative it stands for (``$ref``, ``anyOf``, ``oneOf``, ``allOf``)."""
    yield node
    if "$ref" in node:
        yield from branches(resolve_ref({"$ref": node["$ref"]}))
    for keyword in ("anyOf", "oneOf", "allOf"):
        for branch in node.get(keyword, ()):
            yield from branches(branch)


def keys_of(node: Schema) -> dict[str, Schema]:
    return children(node)


def is_ignored(node: Schema) -> bool:
    return bool(node.get(IGNORED))


def value_choices(node: Schema) -> list[Any]:
    """The literal values a property takes (enum members, constants, booleans), null left out."""
    found: list[Any] = []
    for branch in branches(node):
        for value in branch.get("enum", ()):
            found.append(value)
        if "const" in branch:
            found.append(branch["const"])
        types = branch.get("type")
        listed = types if isinstance(types, list) else [types]
        if "boolean" in listed:
            found.extend([True, False])
    unique: list[Any] = []
    for value in found:
        if value is not None and not any(
            value is other or (value == other and type(value) is type(other)) for other in unique
        ):
            unique.append(value)
    return unique


def accepts_type(node: Schema, kind: str) -> bool:
    for branch in branches(node):
        types = branch.get("type")
        if kind == types or (isinstance(types, list) and kind in types):
            return True
    return False


def target_kinds() -> list[str]:
    node = load_schema()["$defs"]["TargetPath"]
    return [branch[TARGET_KIND] for branch in node["anyOf"] if TARGET_KIND in branch]


def is_target_path(path: Path) -> bool:
    return path in (("target",), ("target", "path"))


def documentation(path: Path, node: Schema) -> str:
    """Markdown for hover and completion: the description, the default, the accepted values."""
    parts = [f"**{dotted(path)}**"]
    if is_ignored(node):
        parts.append("*Accepted for compatibility with mirrord; ignored by pymirrord.*")
    description = node.get("description")
    if description:
        parts.append(str(description))
    if "default" in node:
        parts.append(f"Default: `{json.dumps(node['default'])}`")
    choices = value_choices(node)
    if choices:
        parts.append("Values: " + ", ".join(f"`{json.dumps(choice)}`" for choice in choices))
    return "\n\n".join(parts)
