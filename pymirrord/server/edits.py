"""Text edits on config files, in each format's own syntax: remove a key, rename a key, replace a value,
set the target. Pure: each takes the text and returns ``(start, end, new_text)`` offsets in code points, or
None when the text is too broken to edit safely.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from pymirrord.config.positions import NodeSpan
from pymirrord.config.sources import Format, ParsedSource, SourceSyntaxError, parse_source


@dataclass(frozen=True)
class Edit:
    """Replace ``text[start:end]`` with ``new_text``."""

    start: int
    end: int
    new_text: str


def parse(text: str, fmt: Format) -> ParsedSource | None:
    try:
        return parse_source(text, fmt)
    except SourceSyntaxError:
        return None


def _line_start(text: str, offset: int) -> int:
    return max(text.rfind("\n", 0, offset) + 1, 0)


def _after_line(text: str, offset: int) -> int:
    """The offset just after the line break that ends the line of ``offset`` (or the end of the text)."""
    match = re.compile(r"\r\n|\n|\r").search(text, offset)
    return match.end() if match else len(text)


def _blank(text: str) -> bool:
    return not text.strip()


def _whole_lines(text: str, start: int, end: int) -> tuple[int, int]:
    """Widen ``[start, end)`` to whole lines when nothing else shares them."""
    line_start = _line_start(text, start)
    line_end = _after_line(text, end) if end < len(text) else len(text)
    tail = text[end:line_end]
    if _blank(text[line_start:start]) and _blank(tail):
        return line_start, line_end
    return start, end


def remove_key(text: str, fmt: Format, pointer: str, parsed: ParsedSource | None = None) -> Edit | None:
    """Remove the member at ``pointer`` (key and value), keeping the rest of the file valid."""
    parsed = parsed or parse(text, fmt)
    if parsed is None:
        return None
    node = parsed.source_map.spans.get(pointer)
    if node is None or node.key is None:
        return None
    if fmt == "json":
        return _remove_json_member(text, node)
    if fmt == "yaml":
        start = _line_start(text, node.key.start)
        end = node.value.end
        if end > start and text[end - 1 : end] not in ("\n", "\r"):
            end = _after_line(text, end)
        return Edit(start, end, "")
    # TOML: a table header takes its whole table with it; a key takes its line.
    start = _line_start(text, node.key.start)
    if node.value == node.key and text[start : node.key.start].strip().startswith("["):
        following = re.compile(r"^\s*\[", re.MULTILINE).search(text, _after_line(text, node.key.start))
        return Edit(start, following.start() if following else len(text), "")
    return Edit(start, _after_line(text, node.value.end), "")


def _remove_json_member(text: str, node: NodeSpan) -> Edit:
    assert node.key is not None
    start, end = node.key.start, node.value.end
    after = end
    while after < len(text) and text[after] in " \t\r\n":
        after += 1
    if after < len(text) and text[after] == ",":
        end = after + 1
        widened = _whole_lines(text, start, end)
        if widened != (start, end):
            return Edit(*widened, "")
        while end < len(text) and text[end] in " \t":
            end += 1
        return Edit(start, end, "")
    before = start
    while before > 0 and text[before - 1] in " \t\r\n":
        before -= 1
    if before > 0 and text[before - 1] == ",":
        return Edit(before - 1, end, "")
    return Edit(*_whole_lines(text, start, end), "")


def rename_key(
    text: str, fmt: Format, pointer: str, new_name: str, parsed: ParsedSource | None = None
) -> Edit | None:
    parsed = parsed or parse(text, fmt)
    if parsed is None:
        return None
    node = parsed.source_map.spans.get(pointer)
    if node is None or node.key is None:
        return None
    written = text[node.key.start : node.key.end]
    old_name = pointer.rsplit("/", 1)[-1].replace("~1", "/").replace("~0", "~")
    if fmt == "json" or written.startswith('"'):
        new_text = json.dumps(new_name)
    elif written.startswith("'"):
        new_text = f"'{new_name}'"
    elif written == old_name:
        new_text = new_name
    else:
        return None  # a dotted TOML key: renaming its last part by hand is safer
    return Edit(node.key.start, node.key.end, new_text)


def literal(value: str, fmt: Format) -> str:
    if (
        fmt == "yaml"
        and re.fullmatch(r"[A-Za-z0-9_./-]+", value)
        and not re.fullmatch(r"(?i)y|n|yes|no|on|off|true|false|null|~", value)
    ):
        return value
    return json.dumps(value)


def replace_value(
    text: str, fmt: Format, pointer: str, value: str, parsed: ParsedSource | None = None
) -> Edit | None:
    """Replace the value at ``pointer`` with the string ``value`` (when written on one line)."""
    parsed = parsed or parse(text, fmt)
    if parsed is None:
        return None
    node = parsed.source_map.spans.get(pointer)
    if node is None:
        return None
    span = node.value
    if fmt != "json" and "\n" in text[span.start : span.end].rstrip("\r\n"):
        return None
    end = span.end
    while fmt != "json" and end > span.start and text[end - 1] in "\r\n":
        end -= 1
    return Edit(span.start, end, literal(value, fmt))


def set_target(text: str, fmt: Format, target: str) -> Edit | None:
    """Write ``target`` into the config: replace the current one, or add a ``target`` key at the top."""
    parsed = parse(text, fmt)
    if parsed is None:
        return None
    data = parsed.data
    spans = parsed.source_map.spans
    current = data.get("target") if isinstance(data, dict) else None
    if isinstance(current, dict) and "path" in current and "/target/path" in spans:
        return replace_value(text, fmt, "/target/path", target, parsed)
    if current is not None and "/target" in spans:
        if fmt == "toml" and isinstance(current, dict):
            return None  # a [target] table: rewriting it as a string means moving it; leave it to the user
        return replace_value(text, fmt, "/target", target, parsed)
    if fmt == "json":
        root = spans.get("")
        if root is None or not isinstance(data, dict):
            return None
        opening = root.value.start + 1
        indent = _json_indent(text, root.value.start)
        tail = "," if data else ""
        if data and "\n" not in text[opening : opening + len(text[opening:]) - len(text[opening:].lstrip())]:
            return Edit(opening, opening, f'"target": {json.dumps(target)}, ')
        if data:
            return Edit(opening, opening, f'\n{indent}"target": {json.dumps(target)}{tail}')
        return Edit(opening, root.value.end - 1, f'\n{indent}"target": {json.dumps(target)}\n')
    if fmt == "yaml":
        if text.strip() in ("", "{}"):
            return Edit(0, len(text), f"target: {literal(target, fmt)}\n")
        if text.lstrip().startswith("{"):
            return None
        return Edit(0, 0, f"target: {literal(target, fmt)}\n")
    return Edit(0, 0, f"target = {json.dumps(target)}\n")


def _json_indent(text: str, root_start: int) -> str:
    match = re.compile(r"\n([ \t]+)\"").search(text, root_start)
    return match.group(1) if match else "  "
