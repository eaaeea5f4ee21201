"""Reading and writing ``feature.network.incoming.http_filter`` in a config text, for the filter editor.

``filter_edit`` returns the one text edit that puts a given filter into a JSON, TOML or YAML config and
changes nothing else: the filter's own value is rewritten in the file's syntax (and style: block or flow
YAML, a TOML table or inline table), and the keys leading to it are added when missing. Every edit is checked
by parsing the result: the data must be the original data with only the filter changed, or no edit is made.
Pure: text in, ``Edit`` out.
"""

from __future__ import annotations

import copy
import json
import re
from typing import Any

from pymirrord.config.positions import escape_pointer_token
from pymirrord.config.sources import Format, ParsedSource, SourceSyntaxError, parse_source
from pymirrord.server.edits import Edit, literal, remove_key
from pymirrord.server.errors import CONFIG_INVALID, INVALID_PARAMS, HelperError

PATH = ("feature", "network", "incoming", "http_filter")
POINTER = "".join(f"/{part}" for part in PATH)
DEFAULT_MODE = "mirror"

_LINE_BREAK = re.compile(r"\r\n|\n|\r")


def _pointer(parts: tuple[str, ...]) -> str:
    return "".join(f"/{escape_pointer_token(part)}" for part in parts)


def parse_config(text: str, fmt: Format) -> ParsedSource:
    """The parsed text; a text that does not parse is a HelperError naming the line and column."""
    try:
        parsed = parse_source(text, fmt)
    except SourceSyntaxError as error:
        problem = error.problem
        where = problem.location
        raise HelperError(
            f"the file does not parse: {problem.message} (line {where.line}, column {where.column})",
            problem.hint or "fix the syntax error first; nothing was changed",
            code=CONFIG_INVALID,
            line=where.line,
            column=where.column,
        ) from None
    if not isinstance(parsed.data, dict):
        raise HelperError(
            "the config is not an object (a mapping of keys)", "start the file with {", code=CONFIG_INVALID
        )
    return parsed


def filter_document(text: str, fmt: Format) -> dict[str, Any]:
    """What the filter editor shows for a config text: its mode, its filter, or why it does not parse."""
    try:
        data = parse_config(text, fmt).data
    except HelperError as error:
        return {
            "format": fmt,
            "mode": DEFAULT_MODE,
            "filter": None,
            "error": {
                "message": error.message,
                "hint": error.hint,
                "line": error.data.get("line"),
                "column": error.data.get("column"),
            },
        }
    incoming = _get(data, PATH[:3])
    mode = incoming if isinstance(incoming, str) else None
    if isinstance(incoming, dict) and isinstance(incoming.get("mode"), str):
        mode = incoming["mode"]
    found = incoming.get("http_filter") if isinstance(incoming, dict) else None
    return {
        "format": fmt,
        "mode": mode or DEFAULT_MODE,
        "filter": found if isinstance(found, dict) else None,
        "error": None,
    }


def filter_lens_offset(text: str, fmt: Format) -> int:
    """Where the editor's "Edit HTTP filter" lens goes: at the filter's key, else incoming's, else the top."""
    try:
        spans = parse_source(text, fmt).source_map.spans
    except SourceSyntaxError:
        return 0
    for depth in (4, 3):
        node = spans.get(_pointer(PATH[:depth]))
        if node is not None and node.key is not None:
            return _line_start(text, node.key.start)
    return 0


def _get(data: Any, path: tuple[str, ...]) -> Any:
    for part in path:
        if not isinstance(data, dict) or part not in data:
            return None
        data = data[part]
    return data


def _with_filter(data: dict[str, Any], http_filter: dict[str, Any] | None) -> dict[str, Any]:
    """The data as it must read after the edit."""
    result = copy.deepcopy(data)
    node = result
    for part in PATH[:-1]:
        child = node.get(part)
        if http_filter is None and not isinstance(child, dict):
            return result
        if isinstance(child, str) and part == "incoming":
            child = {"mode": child}  # the shorthand `"incoming": "steal"` becomes the object form
        elif not isinstance(child, dict):
            child = {}
        node[part] = child
        node = child
    if http_filter is None:
        node.pop(PATH[-1], None)
    else:
        node[PATH[-1]] = http_filter
    return result


def filter_edit(text: str, fmt: Format, http_filter: dict[str, Any] | None) -> Edit | None:
    """The edit that makes the config's filter ``http_filter`` (None or {}: none); None when it is so.

    Raises HelperError when the text does not parse, or when the file is written in a way this cannot edit
    without touching anything else (the message then says so, and nothing is changed).
    """
    if http_filter is not None and not isinstance(http_filter, dict):
        raise HelperError("filter must be an http_filter object or null", code=INVALID_PARAMS)
    http_filter = http_filter or None
    parsed = parse_config(text, fmt)
    data = parsed.data
    expected = _with_filter(data, http_filter)
    if expected == data:
        return None
    if http_filter is None:
        edit = _removal(text, fmt, parsed, expected)
    else:
        depth = 0
        node: Any = data
        while depth < len(PATH) and isinstance(node, dict) and PATH[depth] in node:
            node = node[PATH[depth]]
            depth += 1
        writer = {"json": _json_edit, "yaml": _yaml_edit, "toml": _toml_edit}[fmt]
        edit = writer(text, parsed, depth, expected)
    if edit is None or not _reads_as(text, fmt, edit, expected):
        raise HelperError(
            "cannot write the filter here without rewriting other parts of the file",
            "edit feature.network.incoming.http_filter by hand; the filter is "
            + json.dumps(http_filter, ensure_ascii=False),
            code=INVALID_PARAMS,
        )
    return edit


def _removal(text: str, fmt: Format, parsed: ParsedSource, expected: dict[str, Any]) -> Edit | None:
    node = parsed.source_map.spans.get(POINTER)
    if (
        node is not None
        and node.key is not None
        and fmt == "yaml"
        and _key_at_line_start(text, node.key.start)
    ):
        end = _yaml_block_end(text, node.key.start)
        incoming = parsed.source_map.spans.get(_pointer(PATH[:3]))
        if len(_get(parsed.data, PATH[:3])) == 1 and incoming is not None and incoming.key is not None:
            # The filter was all incoming held: it stays a mapping, not an empty (null) value.
            colon = text.find(":", incoming.key.end)
            tail = text[:end]
            ending = "\r\n" if tail.endswith("\r\n") else tail[-1] if tail.endswith(("\n", "\r")) else ""
            return Edit(colon, end, ": {}" + ending)
        return Edit(_line_start(text, node.key.start), end, "")
    if node is not None and fmt == "toml" and _is_header(text, node.value.start):
        start = _line_start(text, node.value.start)
        return Edit(start, _toml_section_end(text, start, ".".join(PATH)), "")
    if node is None and fmt == "toml":
        return _toml_inline_ancestor(text, parsed, len(PATH) - 1, expected)
    return remove_key(text, fmt, POINTER, parsed)


def _pruned(data: dict[str, Any]) -> dict[str, Any]:
    """``data`` without the empty tables on the way to the filter: an empty table is the same as none."""
    result = copy.deepcopy(data)
    for depth in range(len(PATH) - 1, 0, -1):
        parent = _get(result, PATH[: depth - 1])
        if isinstance(parent, dict) and parent.get(PATH[depth - 1]) == {}:
            del parent[PATH[depth - 1]]
    return result


def apply_edit(text: str, edit: Edit) -> str:
    return text[: edit.start] + edit.new_text + text[edit.end :]


def _reads_as(text: str, fmt: Format, edit: Edit, expected: dict[str, Any]) -> bool:
    try:
        return _pruned(parse_source(apply_edit(text, edit), fmt).data) == _pruned(expected)
    except SourceSyntaxError:
        return False


# Text helpers --------------------------------------------------------------------------------------------


def _line_start(text: str, offset: int) -> int:
    return max(text.rfind("\n", 0, offset), text.rfind("\r", 0, offset)) + 1


def _after_line(text: str, offset: int) -> int:
    match = _LINE_BREAK.search(text, offset)
    return match.end() if match else len(text)


def _newline(text: str) -> str:
    match = _LINE_BREAK.search(text)
    return match.group(0) if match else "\n"


def _indent_unit(text: str) -> str:
    """The smallest indentation the file uses (two spaces in a file with none)."""
    widths = [len(m.group(1)) for m in re.finditer(r"^( +)\S", text, re.MULTILINE)]
    return " " * min(widths) if widths else "  "


def _key_at_line_start(text: str, key_start: int) -> bool:
    return not text[_line_start(text, key_start) : key_start].strip()


def _appended(text: str, block: str, newline: str) -> Edit:
    """``block`` (ending in a line break) added at the end of the text, on a line of its own."""
    separator = "" if not text or text.endswith(("\n", "\r")) else newline
    return Edit(len(text), len(text), separator + block)


# JSON ----------------------------------------------------------------------------------------------------


def _json_value(value: Any, indent: str, unit: str, newline: str) -> str:
    """JSON that reads well in a config: objects one member a line; short lists and list items inline."""
    if isinstance(value, dict) and value:
        members = [
            f"{indent}{unit}{json.dumps(key, ensure_ascii=False)}: "
            f"{_json_value(item, indent + unit, unit, newline)}"
            for key, item in value.items()
        ]
        return "{" + newline + ("," + newline).join(members) + newline + indent + "}"
    if isinstance(value, list) and any(isinstance(item, (dict, list)) for item in value):
        items = [f"{indent}{unit}{_json_inline(item)}" for item in value]
        return "[" + newline + ("," + newline).join(items) + newline + indent + "]"
    return _json_inline(value)


def _json_inline(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(", ", ": "))


def _json_edit(text: str, parsed: ParsedSource, depth: int, expected: dict[str, Any]) -> Edit | None:
    spans = parsed.source_map.spans
    unit = _indent_unit(text)
    newline = _newline(text)
    here = _pointer(PATH[:depth])
    node = spans.get(here)
    if node is None:
        return None
    line_start = _line_start(text, node.key.start if node.key else node.value.start)
    indent = re.match(r"[ \t]*", text[line_start:]).group(0)  # type: ignore[union-attr]
    current = _get(parsed.data, PATH[:depth])
    if depth == len(PATH) or not isinstance(current, dict):
        value = _get(expected, PATH[:depth])
        if node.key is not None and not _key_at_line_start(text, node.key.start):
            return Edit(node.value.start, node.value.end, _json_inline(value))
        new = _json_value(value, indent, unit, newline)
        return Edit(node.value.start, node.value.end, new)
    key = PATH[depth]
    value = _get(expected, PATH[: depth + 1])
    if not current:
        member_indent = indent + unit
        member = f"{json.dumps(key)}: {_json_value(value, member_indent, unit, newline)}"
        return Edit(
            node.value.start, node.value.end, "{" + newline + member_indent + member + newline + indent + "}"
        )
    last = spans.get(_pointer((*PATH[:depth], list(current)[-1])))
    if last is None or last.key is None:
        return None
    if _key_at_line_start(text, last.key.start):
        member_line = _line_start(text, last.key.start)
        member_indent = text[member_line : last.key.start]
        member = f"{json.dumps(key)}: {_json_value(value, member_indent, unit, newline)}"
        return Edit(last.value.end, last.value.end, "," + newline + member_indent + member)
    return Edit(last.value.end, last.value.end, f", {json.dumps(key)}: {_json_inline(value)}")


# YAML ----------------------------------------------------------------------------------------------------


def _yaml_scalar(value: Any) -> str:
    if isinstance(value, str):
        return literal(value, "yaml")
    return json.dumps(value)


def _yaml_member(key: str, value: Any, indent: str, unit: str) -> list[str]:
    """``key: value`` in block style, as lines at ``indent``."""
    if isinstance(value, dict) and value:
        lines = [f"{indent}{key}:"]
        for name, item in value.items():
            lines += _yaml_member(_yaml_scalar(name), item, indent + unit, unit)
        return lines
    if isinstance(value, list) and value and all(isinstance(item, dict) and item for item in value):
        lines = [f"{indent}{key}:"]
        for item in value:
            inner = [
                line for name, v in item.items() for line in _yaml_member(_yaml_scalar(name), v, "", unit)
            ]
            lines.append(f"{indent}{unit}- {inner[0]}")
            lines += [f"{indent}{unit}  {line}" for line in inner[1:]]
        return lines
    if isinstance(value, (dict, list)):
        return [f"{indent}{key}: {_json_inline(value)}"]
    return [f"{indent}{key}: {_yaml_scalar(value)}"]


def _yaml_block_end(text: str, key_start: int) -> int:
    """Where the block member whose key starts at ``key_start`` ends: after its last more-indented line.

    Blank and comment lines after that line belong to what follows.
    """
    column = key_start - _line_start(text, key_start)
    end = position = _after_line(text, key_start)
    while position < len(text):
        following = _after_line(text, position)
        line = text[position:following].rstrip("\r\n")
        stripped = line.lstrip(" ")
        if stripped and not stripped.startswith("#"):
            if len(line) - len(stripped) <= column or stripped.startswith(("---", "...")):
                break
            end = following
        position = following
    return end


def _yaml_edit(text: str, parsed: ParsedSource, depth: int, expected: dict[str, Any]) -> Edit | None:
    spans = parsed.source_map.spans
    unit = _indent_unit(text)
    newline = _newline(text)
    current = _get(parsed.data, PATH[:depth])
    replace = depth == len(PATH) or not isinstance(current, dict)
    node = spans.get(_pointer(PATH[:depth]))
    written = text[node.value.start : node.value.end].lstrip() if node is not None else ""
    flow = written.startswith(("{", "["))
    if depth == 0:
        if parsed.data and flow and node is not None:
            return _flow_insert(text, node.value.start, node.value.end, PATH[0], expected[PATH[0]])
        if not text.strip(" \t\r\n") or text.strip() == "{}":
            block = newline.join(_yaml_member(PATH[0], expected[PATH[0]], "", unit)) + newline
            return Edit(0, len(text), block)
        return _appended(
            text, newline.join(_yaml_member(PATH[0], expected[PATH[0]], "", unit)) + newline, newline
        )
    if node is None or node.key is None:
        return None
    if not _key_at_line_start(text, node.key.start):
        # A member of a flow mapping: the value is written in flow style too.
        if replace:
            return Edit(node.value.start, node.value.end, _json_inline(_get(expected, PATH[:depth])))
        return _flow_insert(
            text, node.value.start, node.value.end, PATH[depth], _get(expected, PATH[: depth + 1])
        )
    indent = text[_line_start(text, node.key.start) : node.key.start]
    key_text = text[node.key.start : node.key.end]
    if replace and not flow:
        end = _yaml_block_end(text, node.key.start)
        lines = _yaml_member(key_text, _get(expected, PATH[:depth]), indent, unit)
        tail = text[node.key.start : end]
        ending = "\r\n" if tail.endswith("\r\n") else tail[-1:] if tail.endswith(("\n", "\r")) else ""
        return Edit(node.key.start, end, newline.join(lines)[len(indent) :] + ending)
    if replace:
        return Edit(node.value.start, node.value.end, _json_inline(_get(expected, PATH[:depth])))
    if flow:
        return _flow_insert(
            text, node.value.start, node.value.end, PATH[depth], _get(expected, PATH[: depth + 1])
        )
    children = [spans.get(_pointer((*PATH[:depth], name))) for name in current]
    first = next((child for child in children if child is not None and child.key is not None), None)
    child_indent = indent + unit
    if first is not None and first.key is not None and _key_at_line_start(text, first.key.start):
        child_indent = text[_line_start(text, first.key.start) : first.key.start]
    end = _yaml_block_end(text, node.key.start)
    block = newline.join(_yaml_member(PATH[depth], _get(expected, PATH[: depth + 1]), child_indent, unit))
    if end == len(text) and not text.endswith(("\n", "\r")):
        return Edit(end, end, newline + block)
    return Edit(end, end, block + newline)


def _flow_insert(text: str, start: int, end: int, key: str, value: Any) -> Edit | None:
    """A member added at the end of the flow mapping ``text[start:end]``."""
    closing = text.rfind("}", start, end)
    if closing < 0:
        return None
    before = closing
    while before > start and text[before - 1] in " \t\r\n":
        before -= 1
    separator = "" if text[before - 1] == "{" else ", "
    return Edit(before, before, f"{separator}{json.dumps(key)}: {_json_inline(value)}")


# TOML ----------------------------------------------------------------------------------------------------


def _toml_key(key: str) -> str:
    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else _toml_string(key)


def _toml_string(value: str) -> str:
    # A JSON string is a TOML basic string, except that TOML wants DEL escaped too.
    return json.dumps(value, ensure_ascii=False).replace("\x7f", "\\u007F")


def _toml_inline(value: Any) -> str:
    if isinstance(value, dict):
        if not value:
            return "{}"
        return "{ " + ", ".join(f"{_toml_key(k)} = {_toml_inline(v)}" for k, v in value.items()) + " }"
    if isinstance(value, list):
        return "[" + ", ".join(_toml_inline(item) for item in value) + "]"
    if isinstance(value, str):
        return _toml_string(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    return json.dumps(value)


_TOML_HEADER_LINE = re.compile(r"^[ \t]*\[", re.MULTILINE)


def _toml_section_end(text: str, header_start: int, prefix: str | None = None) -> int:
    """The end of the table whose header starts at ``header_start``: after its last non-blank line.

    With ``prefix``, sub-tables whose header starts with it count as part of the table.
    """
    position = _after_line(text, header_start)
    end = position
    while position < len(text):
        following = _after_line(text, position)
        line = text[position:following].strip()
        if line.startswith("["):
            name = re.sub(r"[\s\"']", "", line.strip("[]"))
            if prefix is None or not name.startswith(prefix + "."):
                break
        if line and not line.startswith("#"):
            end = following
        position = following
    return end


def _is_header(text: str, node_start: int) -> bool:
    return text[_line_start(text, node_start) : node_start].strip().startswith("[")


def _toml_table(header: str, value: dict[str, Any], newline: str) -> str:
    lines = [f"[{header}]", *(f"{_toml_key(k)} = {_toml_inline(v)}" for k, v in value.items())]
    return newline.join(lines) + newline


def _toml_inline_ancestor(
    text: str, parsed: ParsedSource, depth: int, expected: dict[str, Any]
) -> Edit | None:
    """The deepest ancestor (from ``depth`` up) written as ``key = value``, rewritten whole; None if none."""
    for level in range(depth, 0, -1):
        node = parsed.source_map.spans.get(_pointer(PATH[:level]))
        if node is not None and node.key is not None and node.key != node.value:
            return Edit(node.value.start, node.value.end, _toml_inline(_get(expected, PATH[:level])))
        if node is not None:
            return None
    return None


def _toml_edit(text: str, parsed: ParsedSource, depth: int, expected: dict[str, Any]) -> Edit | None:
    spans = parsed.source_map.spans
    newline = _newline(text)
    dotted = ".".join(PATH)
    http_filter = _get(expected, PATH)
    if depth == len(PATH):
        node = spans.get(POINTER)
        if node is None:
            return None
        if _is_header(text, node.value.start):
            start = _line_start(text, node.value.start)
            end = _toml_section_end(text, start, dotted)
            header = text[node.key.start : node.key.end] if node.key else dotted
            return Edit(start, end, _toml_table(header, http_filter, newline))
        return Edit(node.value.start, node.value.end, _toml_inline(http_filter))
    # The deepest ancestor written as `key = value` is rewritten whole; one with a [table] header, or none,
    # gets the filter as a table of its own.
    inline = _toml_inline_ancestor(text, parsed, depth, expected)
    if inline is not None:
        return inline
    table = _toml_table(dotted, http_filter, newline)
    incoming = spans.get(_pointer(PATH[:3]))
    if depth == 3 and incoming is not None and _is_header(text, incoming.value.start):
        end = _toml_section_end(text, _line_start(text, incoming.value.start))
        if end < len(text):
            return Edit(end, end, newline + table)
    if text.strip() and not text.endswith(("\n\n", "\r\n\r\n", "\r\r")):
        table = newline + table
    return _appended(text, table, newline)
