"""``feature.env.env_file``: reading a dotenv file into variables.

The format is the common one: ``NAME=value`` per line, an optional ``export`` before the name, ``#`` comments
(whole lines, or after white space in an unquoted value), values unquoted (trimmed), in single quotes
(taken literally) or in double quotes (``\\n``, ``\\t``, ``\\r``, ``\\"``, ``\\\\`` and ``\\$`` escapes);
quoted values may span lines. ``$NAME`` is not expanded: a value is exactly what the file says.

Errors name the line and column in the dotenv file and never quote its values, which are often secrets.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from pymirrord.config.errors import ConfigError

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]*")
_EXPORT = re.compile(r"export[ \t]+")
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", '"': '"', "\\": "\\", "$": "$"}


class EnvFileError(ConfigError):
    """The env file cannot be read or parsed; ``line``/``column`` (1-based, 0 when unknown) point into it."""

    def __init__(self, message: str, hint: str = "", line: int = 0, column: int = 0) -> None:
        super().__init__(message, hint)
        self.line = line
        self.column = column


@dataclass
class _Cursor:
    text: str
    pos: int = 0

    def position(self, at: int | None = None) -> tuple[int, int]:
        offset = self.pos if at is None else at
        line = self.text.count("\n", 0, offset) + 1
        column = offset - (self.text.rfind("\n", 0, offset) + 1) + 1
        return line, column

    def fail(self, message: str, hint: str = "", at: int | None = None) -> EnvFileError:
        line, column = self.position(at)
        return EnvFileError(f"line {line}, column {column}: {message}", hint, line, column)

    def skip_blanks(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos] in " \t":
            self.pos += 1

    def at_end_of_line(self) -> bool:
        return self.pos >= len(self.text) or self.text[self.pos] in "\r\n"

    def skip_line(self) -> None:
        end = self.text.find("\n", self.pos)
        self.pos = len(self.text) if end < 0 else end + 1


def parse_env_file(text: str) -> dict[str, str]:
    """The variables of a dotenv text (a later line wins over an earlier one); raises ``EnvFileError``."""
    cursor = _Cursor(text[1:] if text.startswith("\ufeff") else text)
    variables: dict[str, str] = {}
    while cursor.pos < len(cursor.text):
        cursor.skip_blanks()
        if cursor.at_end_of_line() or cursor.text[cursor.pos] == "#":
            cursor.skip_line()
            continue
        export = _EXPORT.match(cursor.text, cursor.pos)
        if export is not None and _NAME.match(cursor.text, export.end()):
            cursor.pos = export.end()
        name_match = _NAME.match(cursor.text, cursor.pos)
        if name_match is None:
            raise cursor.fail(
                "expected a variable name (letters, digits and _, not starting with a digit)",
                "each line is NAME=value, a # comment, or empty",
            )
        name = name_match.group()
        cursor.pos = name_match.end()
        cursor.skip_blanks()
        if cursor.pos >= len(cursor.text) or cursor.text[cursor.pos] != "=":
            raise cursor.fail(f"expected '=' after {name}", "each line is NAME=value")
        cursor.pos += 1
        cursor.skip_blanks()
        variables[name] = _value(cursor, name)
    return variables


def _value(cursor: _Cursor, name: str) -> str:
    text = cursor.text
    if cursor.pos < len(text) and text[cursor.pos] in "'\"":
        quote = text[cursor.pos]
        start = cursor.pos
        cursor.pos += 1
        parts: list[str] = []
        while True:
            if cursor.pos >= len(text):
                raise cursor.fail(
                    f"the value of {name} has no closing {quote}", f"end the value with {quote}", at=start
                )
            char = text[cursor.pos]
            if char == quote:
                cursor.pos += 1
                break
            if char == "\\" and quote == '"' and cursor.pos + 1 < len(text):
                escaped = text[cursor.pos + 1]
                parts.append(_ESCAPES.get(escaped, "\\" + escaped))
                cursor.pos += 2
                continue
            parts.append(char)
            cursor.pos += 1
        cursor.skip_blanks()
        if not cursor.at_end_of_line() and text[cursor.pos] != "#":
            raise cursor.fail(
                f"unexpected text after the quoted value of {name}", "put a comment after a # or nothing"
            )
        cursor.skip_line()
        return "".join(parts)
    end = len(text)
    for stop in ("\n", "\r"):
        found = text.find(stop, cursor.pos)
        if found >= 0:
            end = min(end, found)
    raw = text[cursor.pos : end]
    comment = re.search(r"[ \t]#", raw)
    if comment is not None:
        raw = raw[: comment.start()]
    cursor.pos = end
    cursor.skip_line()
    return raw.strip()


def read_env_file(path: str) -> dict[str, str]:
    """The variables of the env file at ``path``; raises ``EnvFileError`` saying why it cannot be used."""
    try:
        with open(path, "rb") as handle:
            raw = handle.read()
    except FileNotFoundError:
        raise EnvFileError(
            f"{path} not found", "check the path; a relative one is taken from the config file's folder"
        ) from None
    except IsADirectoryError:
        raise EnvFileError(f"{path} is a directory, not an env file", "name the file itself") from None
    except PermissionError:
        raise EnvFileError(f"permission denied reading {path}", "check the file's permissions") from None
    except OSError as error:
        raise EnvFileError(f"cannot read {path}: {error.strerror or error}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise EnvFileError(
            f"{path} is not UTF-8 text (undecodable byte at offset {error.start})", "save the file as UTF-8"
        ) from None
    try:
        return parse_env_file(text)
    except EnvFileError as error:
        raise EnvFileError(f"{path}, {error.message}", error.hint, error.line, error.column) from None
