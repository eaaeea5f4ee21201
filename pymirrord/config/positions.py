"""Where things are in a config text: spans, line/column arithmetic, and a JSON scanner that records them.

``json.loads`` tells where a syntax error is, but not where a key or value lives, and every diagnostic must
point at the exact place. ``parse_json`` is a small recursive-descent scanner that builds the same Python
values as ``json.loads`` and records, for each JSON pointer, the span of its value and of its key. It also
recognises the mistakes people make when they treat ``mirrord.json`` as JavaScript (comments, trailing
commas, single quotes) and says so.

Offsets are indexes into the text as a ``str`` (code points). Lines and columns are 1-based; end offsets are
exclusive.
"""

from __future__ import annotations

import bisect
import json
import re
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Span:
    """A half-open range ``[start, end)`` of offsets into the text."""

    start: int
    end: int


@dataclass(frozen=True)
class NodeSpan:
    """Where one value sits: its own span, its key's span (inside an object) and how its literal is spelled.

    ``style`` tells how to map a character of a decoded string back into its literal (``literal_offsets``):
    ``"json"`` and ``"toml-basic"`` (backslash escapes inside double quotes), ``"yaml-double"``,
    ``"yaml-single"``, ``"toml-literal"``, ``"plain"`` (the text is the value) or ``""`` (not a string, or
    spelled in a way whose characters cannot be mapped one to one).
    """

    value: Span
    key: Span | None = None
    style: str = ""


class LineIndex:
    """Converts offsets to 1-based (line, column) pairs and back."""

    def __init__(self, text: str) -> None:
        self.text = text
        self._starts = [0] + [m.end() for m in re.finditer(r"\r\n|\n|\r", text)]

    def position(self, offset: int) -> tuple[int, int]:
        offset = max(0, min(offset, len(self.text)))
        line = bisect.bisect_right(self._starts, offset) - 1
        return line + 1, offset - self._starts[line] + 1

    def offset(self, line: int, column: int) -> int:
        """The offset of a 1-based (line, column), clamped to the text."""
        if line < 1:
            return 0
        if line > len(self._starts):
            return len(self.text)
        return min(self._starts[line - 1] + max(column, 1) - 1, len(self.text))

    def line_text(self, line: int) -> str:
        """The text of a 1-based line, without its line break."""
        if not 1 <= line <= len(self._starts):
            return ""
        start = self._starts[line - 1]
        end = self._starts[line] if line < len(self._starts) else len(self.text)
        return self.text[start:end].rstrip("\r\n")


def escape_pointer_token(token: str | int) -> str:
    return str(token).replace("~", "~0").replace("/", "~1")


def join_pointer(pointer: str, token: str | int) -> str:
    return f"{pointer}/{escape_pointer_token(token)}"


def split_pointer(pointer: str) -> list[str]:
    if not pointer:
        return []
    return [part.replace("~1", "/").replace("~0", "~") for part in pointer.split("/")[1:]]


class JsonSyntaxError(Exception):
    """A JSON syntax error at an offset, with a message and a hint written for people."""

    def __init__(self, message: str, offset: int, hint: str = "", length: int = 1) -> None:
        super().__init__(message)
        self.message = message
        self.offset = offset
        self.hint = hint
        self.length = length


@dataclass
class ParsedJson:
    value: Any
    spans: dict[str, NodeSpan]
    duplicate_keys: list[tuple[str, Span]] = field(default_factory=list)


_WHITESPACE = " \t\n\r"
_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")
_STRING_BODY = re.compile(r'(?:[^"\\\x00-\x1f]|\\(?:["\\/bfnrt]|u[0-9a-fA-F]{4}))*')
_COMMENT_HINT = (
    "mirrord.json is plain JSON, which has no comments; delete the comment, or move the config to "
    "mirrord.yaml or mirrord.toml, which allow them"
)


class _JsonScanner:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0
        self.spans: dict[str, NodeSpan] = {}
        self.duplicates: list[tuple[str, Span]] = []

    def parse(self) -> ParsedJson:
        self._skip_space()
        if self.pos >= len(self.text):
            raise JsonSyntaxError(
                "the file is empty", 0, hint="an empty configuration is written as {}", length=0
            )
        value = self._value("", None)
        self._skip_space()
        if self.pos < len(self.text):
            raise JsonSyntaxError(
                "unexpected text after the end of the JSON document",
                self.pos,
                hint="a config file holds exactly one JSON object",
            )
        return ParsedJson(value, self.spans, self.duplicates)

    def _skip_space(self) -> None:
        text = self.text
        while self.pos < len(text):
            char = text[self.pos]
            if char in _WHITESPACE:
                self.pos += 1
            elif text.startswith("//", self.pos) or text.startswith("/*", self.pos):
                end = text.find("\n", self.pos)
                length = (end if end >= 0 else len(text)) - self.pos
                raise JsonSyntaxError(
                    "comments are not allowed in JSON", self.pos, hint=_COMMENT_HINT, length=length
                )
            else:
                return

    def _unexpected(self, expected: str) -> JsonSyntaxError:
        if self.pos >= len(self.text):
            return JsonSyntaxError(f"unexpected end of file; expected {expected}", self.pos, length=0)
        char = self.text[self.pos]
        hint = ""
        if char == "'":
            hint = "JSON strings use double quotes"
        return JsonSyntaxError(f"unexpected character {char!r}; expected {expected}", self.pos, hint=hint)

    def _value(self, pointer: str, key: Span | None) -> Any:
        text = self.text
        start = self.pos
        if start >= len(text):
            raise self._unexpected("a value")
        char = text[start]
        style = ""
        value: Any
        if char == "{":
            value = self._object(pointer)
        elif char == "[":
            value = self._array(pointer)
        elif char == '"':
            value = self._string()
            style = "json"
        elif char == "-" or char.isdigit():
            match = _NUMBER.match(text, start)
            if not match:
                raise self._unexpected("a number")
            self.pos = match.end()
            value = json.loads(match.group())
        else:
            for word, literal in (("true", True), ("false", False), ("null", None)):
                if text.startswith(word, start):
                    self.pos = start + len(word)
                    value = literal
                    break
            else:
                bare = re.match(r"[A-Za-z_][A-Za-z0-9_]*", text[start:])
                if bare:
                    raise JsonSyntaxError(
                        f"unexpected word {bare.group()!r}; expected a value",
                        start,
                        hint="strings are written in double quotes; the literals are true, false and null",
                        length=len(bare.group()),
                    )
                raise self._unexpected("a value")
        self.spans[pointer] = NodeSpan(Span(start, self.pos), key, style)
        return value

    def _string(self) -> str:
        start = self.pos
        body = _STRING_BODY.match(self.text, start + 1)
        end = body.end() if body else start + 1
        if end >= len(self.text):
            raise JsonSyntaxError("unterminated string", start, hint="close the string with a double quote")
        if self.text[end] != '"':
            char = self.text[end]
            if char == "\\":
                raise JsonSyntaxError(
                    "invalid escape in string",
                    end,
                    hint='a backslash starts an escape such as \\\\ or \\"; in a regular expression '
                    "write \\\\d for \\d",
                    length=2,
                )
            if char in "\n\r":
                raise JsonSyntaxError(
                    "unterminated string (line break inside a string)",
                    start,
                    hint="close the string with a double quote, or write a line break as \\n",
                )
            raise JsonSyntaxError(
                f"control character {char!r} inside a string", end, hint="write it as an escape such as \\t"
            )
        self.pos = end + 1
        decoded: str = json.loads(self.text[start : self.pos])
        return decoded

    def _object(self, pointer: str) -> dict[str, Any]:
        self.pos += 1
        result: dict[str, Any] = {}
        self._skip_space()
        if self.pos < len(self.text) and self.text[self.pos] == "}":
            self.pos += 1
            return result
        while True:
            self._skip_space()
            if self.pos >= len(self.text) or self.text[self.pos] != '"':
                if self.pos < len(self.text) and self.text[self.pos] == "}":
                    raise JsonSyntaxError(
                        "trailing comma before }",
                        self._last_comma(),
                        hint="JSON allows no comma after the last item",
                    )
                raise self._unexpected("a key in double quotes")
            key_start = self.pos
            name = self._string()
            key_span = Span(key_start, self.pos)
            self._skip_space()
            if self.pos >= len(self.text) or self.text[self.pos] != ":":
                raise self._unexpected("':' after the key")
            self.pos += 1
            self._skip_space()
            child = join_pointer(pointer, name)
            if name in result:
                self.duplicates.append((child, key_span))
            result[name] = self._value(child, key_span)
            self._skip_space()
            if self.pos < len(self.text) and self.text[self.pos] == ",":
                self.pos += 1
                continue
            if self.pos < len(self.text) and self.text[self.pos] == "}":
                self.pos += 1
                return result
            raise self._unexpected("',' or '}'")

    def _array(self, pointer: str) -> list[Any]:
        self.pos += 1
        result: list[Any] = []
        self._skip_space()
        if self.pos < len(self.text) and self.text[self.pos] == "]":
            self.pos += 1
            return result
        while True:
            self._skip_space()
            if self.pos < len(self.text) and self.text[self.pos] == "]":
                raise JsonSyntaxError(
                    "trailing comma before ]",
                    self._last_comma(),
                    hint="JSON allows no comma after the last item",
                )
            result.append(self._value(join_pointer(pointer, len(result)), None))
            self._skip_space()
            if self.pos < len(self.text) and self.text[self.pos] == ",":
                self.pos += 1
                continue
            if self.pos < len(self.text) and self.text[self.pos] == "]":
                self.pos += 1
                return result
            raise self._unexpected("',' or ']'")

    def _last_comma(self) -> int:
        return self.text.rfind(",", 0, self.pos)


def parse_json(text: str) -> ParsedJson:
    """Parse JSON text, recording the span of every value and key; raises ``JsonSyntaxError``."""
    return _JsonScanner(text).parse()


_JSON_ESCAPE_LENGTH = {"u": 6}
_YAML_ESCAPE_LENGTH = {"x": 4, "u": 6, "U": 10}


def literal_offsets(source: str, style: str, value: str) -> list[int] | None:
    """For each character of ``value``, its offset in ``source`` (the literal as written, quotes included).

    Returns None when the literal cannot be mapped one to one (a multi-line or folded string), so that callers
    fall back to pointing at the whole value. The mapping is checked against ``value`` before it is trusted.
    """
    offsets: list[int] = []
    decoded: list[str] = []
    if style == "plain":
        if source != value:
            return None
        return list(range(len(value)))
    if style in ("yaml-single", "toml-literal"):
        if len(source) < 2:
            return None
        index = 1
        while index < len(source) - 1:
            if style == "yaml-single" and source.startswith("''", index):
                decoded.append("'")
                offsets.append(index)
                index += 2
            else:
                decoded.append(source[index])
                offsets.append(index)
                index += 1
    elif style in ("json", "toml-basic", "yaml-double"):
        if len(source) < 2:
            return None
        lengths = _JSON_ESCAPE_LENGTH if style == "json" else _YAML_ESCAPE_LENGTH
        index = 1
        while index < len(source) - 1:
            if source[index] == "\\" and index + 1 < len(source) - 1:
                size = lengths.get(source[index + 1], 2)
                piece = source[index : index + size]
                try:
                    char = _decode_escape(piece)
                except ValueError:
                    return None
                decoded.append(char)
                offsets.append(index)
                index += size
            elif source[index] in "\r\n":
                return None
            else:
                decoded.append(source[index])
                offsets.append(index)
                index += 1
    else:
        return None
    if "".join(decoded) != value:
        # Surrogate pairs (\ud83d\ude00) decode to one character from two escapes; rather than guess, give up.
        return None
    return offsets


_SIMPLE_ESCAPES = {
    '"': '"',
    "\\": "\\",
    "/": "/",
    "b": "\b",
    "f": "\f",
    "n": "\n",
    "r": "\r",
    "t": "\t",
    "0": "\0",
    "a": "\a",
    "e": "\x1b",
    "v": "\v",
    " ": " ",
    "N": "\x85",
    "_": "\xa0",
    "L": "\u2028",
    "P": "\u2029",
}


def _decode_escape(piece: str) -> str:
    kind = piece[1]
    if kind in ("u", "U", "x"):
        return chr(int(piece[2:], 16))
    if kind in _SIMPLE_ESCAPES:
        return _SIMPLE_ESCAPES[kind]
    raise ValueError(piece)
