"""Where the cursor is in a config text that is being typed, and therefore probably broken.

Completion cannot wait for a document that parses: ``{"feature": {"network": {"inc`` is what the user has
when they want the list of keys. These scanners read JSON, YAML and TOML tolerantly and say which object
the cursor is in (as a path of keys and list indexes), whether a key or a value is being typed, the text
typed so far and the range that a completion replaces.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

from pymirrord.config.sources import Format

PathPart = str | int
Path = tuple[PathPart, ...]


@dataclass(frozen=True)
class CursorContext:
    """``kind == "key"``: a key of the object at ``path`` is being typed. ``kind == "value"``: the value of
    the key that ends ``path``. ``[start, end)`` is what a completion replaces (quotes included)."""

    kind: Literal["key", "value"]
    path: Path
    prefix: str
    start: int
    end: int
    quoted: bool = False
    existing: frozenset[str] = frozenset()


# JSON ------------------------------------------------------------------------------------------------


@dataclass
class _Frame:
    kind: Literal["object", "array"]
    path: Path
    state: Literal["key", "colon", "value", "comma"] = "key"
    key: str | None = None
    index: int = 0
    keys: set[str] = field(default_factory=set)

    def child(self) -> PathPart | None:
        if self.kind == "array":
            return self.index
        return self.key

    def value_path(self) -> Path:
        """The path of the value being written in this container now."""
        part = self.child()
        return self.path if part is None else (*self.path, part)


_WORD = re.compile(r"[A-Za-z0-9_./:-]*")


def json_context(text: str, offset: int) -> CursorContext | None:
    """The context at ``offset`` in a (possibly incomplete) JSON text; None where nothing can be typed."""
    stack: list[_Frame] = []
    position = 0
    found: CursorContext | None = None
    found_frame: _Frame | None = None
    length = len(text)
    top_done = False

    def expects_value() -> bool:
        if not stack:
            return not top_done
        frame = stack[-1]
        return frame.state == "value" if frame.kind == "object" else frame.state in ("key", "value")

    def value_done() -> None:
        nonlocal top_done
        if not stack:
            top_done = True
            return
        frame = stack[-1]
        frame.state = "comma"

    while position <= length:
        if found is None and position >= offset:
            found, found_frame = _json_here(text, offset, stack, expects_value())
            if found is None:
                return None
        if position >= length:
            break
        char = text[position]
        if char == '"':
            end = _json_string_end(text, position)
            if found is None and position < offset and (end is None or offset < end):
                # The cursor is inside this string.
                frame = stack[-1] if stack else None
                stop = end if end is not None else _line_end(text, position)
                prefix = text[position + 1 : offset]
                if frame is not None and frame.kind == "object" and frame.state == "key":
                    found = CursorContext("key", frame.path, prefix, position, stop, True)
                    found_frame = frame
                elif frame is not None and expects_value():
                    found = CursorContext("value", frame.value_path(), prefix, position, stop, True)
                else:
                    return None
            if end is None:
                break
            if stack and stack[-1].kind == "object" and stack[-1].state == "key":
                key = text[position + 1 : end - 1]
                stack[-1].key = key
                stack[-1].keys.add(key)
                stack[-1].state = "colon"
            else:
                value_done()
            position = end
            continue
        if char in "{[":
            parent = stack[-1] if stack else None
            stack.append(_Frame("object" if char == "{" else "array", parent.value_path() if parent else ()))
            if char == "[":
                stack[-1].state = "value"
        elif char in "}]":
            if stack:
                closed = stack.pop()
                if closed is found_frame:
                    # Keys after the cursor count as written too.
                    break
            value_done()
        elif char == ":":
            if stack and stack[-1].state == "colon":
                stack[-1].state = "value"
        elif char == ",":
            if stack:
                frame = stack[-1]
                if frame.kind == "array":
                    frame.index += 1
                    frame.state = "value"
                else:
                    frame.state = "key"
        elif char == "/" and text.startswith("//", position):
            position = _line_end(text, position)
            continue
        elif not char.isspace():
            match = _WORD.match(text, position)
            stop = match.end() if match and match.end() > position else position + 1
            value_done()
            position = stop
            continue
        position += 1
    if found is not None and found.kind == "key" and found_frame is not None:
        return CursorContext(
            found.kind,
            found.path,
            found.prefix,
            found.start,
            found.end,
            found.quoted,
            frozenset(found_frame.keys - {found.prefix}),
        )
    return found


def _json_here(
    text: str, offset: int, stack: list[_Frame], value_expected: bool
) -> tuple[CursorContext | None, _Frame | None]:
    """The context when the cursor is between tokens (or inside a bare word such as ``tru``)."""
    word_start = offset
    while word_start > 0 and (text[word_start - 1].isalnum() or text[word_start - 1] in "_-./"):
        word_start -= 1
    word_end = offset
    while word_end < len(text) and (text[word_end].isalnum() or text[word_end] in "_-./"):
        word_end += 1
    prefix = text[word_start:offset]
    if not stack:
        return None, None
    frame = stack[-1]
    if frame.kind == "object" and frame.state == "colon":
        return None, None
    if frame.kind == "object" and frame.state == "key":
        return CursorContext("key", frame.path, prefix, word_start, word_end), frame
    if value_expected or (prefix and frame.state == "comma" and word_start < offset):
        return CursorContext("value", frame.value_path(), prefix, word_start, word_end), None
    return None, None


def _json_string_end(text: str, start: int) -> int | None:
    """The offset after the closing quote of the string starting at ``start``; None if unterminated."""
    position = start + 1
    while position < len(text):
        char = text[position]
        if char == "\\":
            position += 2
            continue
        if char == '"':
            return position + 1
        if char in "\r\n":
            return None
        position += 1
    return None


def _line_end(text: str, position: int) -> int:
    match = re.compile(r"[\r\n]").search(text, position)
    return match.start() if match else len(text)


# YAML ------------------------------------------------------------------------------------------------

_YAML_LINE = re.compile(r"^(?P<indent> *)(?P<dash>- +)?(?P<rest>.*)$")
_YAML_KEY = re.compile(r"""^(?P<key>"[^"]*"|'[^']*'|[^\s:#'"][^:#]*?)\s*:(?:\s+(?P<value>.*?))?\s*$""")


def _yaml_split(line: str) -> tuple[int, bool, int, str]:
    """(indent, has dash, indent of the content, content) of one line."""
    match = _YAML_LINE.match(line)
    assert match is not None
    indent = len(match.group("indent"))
    dash = match.group("dash") or ""
    return indent, bool(dash), indent + len(dash), match.group("rest")


def _yaml_key(content: str) -> tuple[str, str | None] | None:
    body = content.split(" #", 1)[0] if not content.startswith("#") else ""
    match = _YAML_KEY.match(body)
    if match is None:
        return None
    key = match.group("key").strip("'\"")
    value = match.group("value")
    return key, (value if value else None)


def yaml_context(text: str, offset: int) -> CursorContext | None:
    """The context at ``offset`` in a (possibly incomplete) block-style YAML text."""
    line_start = max(text.rfind("\n", 0, offset) + 1, 0)
    line_end = _line_end(text, offset)
    before = text[line_start:offset]
    indent, dash, content_indent, content = _yaml_split(before)
    if content.startswith("#"):
        return None
    lines = text[:line_start].splitlines()
    parent_path, siblings = _yaml_parent(lines, content_indent, indent if dash else None)
    if ":" in content:
        key_text, _, value_text = content.partition(":")
        key = key_text.strip().strip("'\"")
        stripped = value_text.lstrip()
        quoted = stripped[:1] in ("'", '"')
        prefix = stripped[1:] if quoted else stripped
        return CursorContext("value", (*parent_path, key), prefix, offset - len(stripped), line_end, quoted)
    quoted = content[:1] in ("'", '"')
    word_end = offset
    while word_end < line_end and (text[word_end].isalnum() or text[word_end] in "_-"):
        word_end += 1
    following = set() if dash else _yaml_following_keys(text[line_end:], content_indent)
    return CursorContext(
        "key",
        parent_path,
        content[1:] if quoted else content,
        offset - len(content),
        word_end,
        quoted,
        frozenset(siblings | following),
    )


def _yaml_lines(lines: list[str], stop: int) -> list[tuple[int, tuple[int, bool, int, str]]]:
    """The meaningful lines above ``stop``, nearest first, each with its split form."""
    found = []
    for index in range(stop - 1, -1, -1):
        line = lines[index]
        if line.strip() and not line.lstrip().startswith("#"):
            found.append((index, _yaml_split(line)))
    return found


def _yaml_parent(lines: list[str], content_indent: int, item_dash: int | None) -> tuple[Path, set[str]]:
    """The path of the mapping that a line at ``content_indent`` belongs to, and the keys already in it.

    ``item_dash``: the line starts a list item whose dash is at that indent.
    """
    parts: list[PathPart] = []
    siblings: set[str] = set()
    own_mapping = item_dash is None
    target = content_indent
    above = _yaml_lines(lines, len(lines))
    position = 0
    while True:
        if item_dash is not None:
            # Count the earlier items of this list and find the key that owns it.
            index = 0
            owner: tuple[int, bool, int, str] | None = None
            while position < len(above):
                _, split = above[position]
                position += 1
                indent, has_dash, _, _ = split
                if has_dash and indent == item_dash:
                    index += 1
                elif indent > item_dash:
                    continue
                else:
                    owner = split
                    break
            parts.append(index)
            if owner is None:
                break
            parsed = _yaml_key(owner[3])
            if parsed is None or parsed[1] is not None:
                break
            parts.append(parsed[0])
            target = owner[2]
            item_dash = owner[0] if owner[1] else None
            own_mapping = False
            continue
        found = False
        while position < len(above):
            _, (indent, has_dash, here, content) = above[position]
            position += 1
            parsed = _yaml_key(content)
            if here > target:
                continue
            if here == target:
                if parsed is not None and own_mapping:
                    siblings.add(parsed[0])
                if has_dash:
                    item_dash = indent
                    own_mapping = False
                    found = True
                    break
                continue
            if parsed is not None and parsed[1] is None:
                parts.append(parsed[0])
                target = here
                own_mapping = False
                if has_dash:
                    item_dash = indent
                found = True
                break
            return tuple(reversed(parts)), siblings
        if not found:
            break
    return tuple(reversed(parts)), siblings


def _yaml_following_keys(rest: str, content_indent: int) -> set[str]:
    keys: set[str] = set()
    for line in rest.splitlines()[1:]:
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        _, has_dash, here, content = _yaml_split(line)
        if here < content_indent or (has_dash and here <= content_indent + 2):
            break
        if here == content_indent and (parsed := _yaml_key(content)) is not None:
            keys.add(parsed[0])
    return keys


# TOML ------------------------------------------------------------------------------------------------

_TOML_TABLE = re.compile(r"^\s*(\[\[?)\s*([^\]]+?)\s*\]\]?\s*(#.*)?$")


def _toml_parts(dotted: str) -> list[str]:
    return [part.strip().strip("\"'") for part in dotted.split(".")]


def toml_context(text: str, offset: int) -> CursorContext | None:
    """The context at ``offset`` in a TOML text (tables, arrays of tables and ``key = value`` lines)."""
    line_start = max(text.rfind("\n", 0, offset) + 1, 0)
    line_end = _line_end(text, offset)
    before = text[line_start:offset]
    if before.lstrip().startswith(("#", "[")):
        return None
    table: list[PathPart] = []
    counts: dict[str, int] = {}
    keys: set[str] = set()
    for line in text[:line_start].splitlines():
        match = _TOML_TABLE.match(line)
        if match:
            parts = _toml_parts(match.group(2))
            if match.group(1) == "[[":
                name = ".".join(parts)
                counts[name] = counts.get(name, -1) + 1
                table = [*parts, counts[name]]
            else:
                table = list(parts)
            keys = set()
        elif "=" in line and not line.lstrip().startswith("#"):
            keys.add(_toml_parts(line.split("=", 1)[0])[0])
    if "=" in before:
        key_text, _, value_text = before.partition("=")
        stripped = value_text.lstrip()
        quoted = stripped[:1] in ("'", '"')
        return CursorContext(
            "value",
            (*table, *_toml_parts(key_text)),
            stripped[1:] if quoted else stripped,
            offset - len(stripped),
            line_end,
            quoted,
        )
    content = before.lstrip()
    dotted = _toml_parts(content) if "." in content else [content]
    prefix = dotted[-1]
    word_end = offset
    while word_end < line_end and (text[word_end].isalnum() or text[word_end] in "_-"):
        word_end += 1
    return CursorContext(
        "key", (*table, *dotted[:-1]), prefix, offset - len(prefix), word_end, False, frozenset(keys)
    )


def context_at(text: str, offset: int, fmt: Format) -> CursorContext | None:
    """The cursor context for any of the three formats."""
    if fmt == "json":
        return json_context(text, offset)
    if fmt == "yaml":
        return yaml_context(text, offset)
    return toml_context(text, offset)
