"""Reading dotenv files for ``feature.env.env_file``: the format, and errors that point into the file."""

from __future__ import annotations

from pathlib import Path

import pytest

from pymirrord.config.env_file import EnvFileError, parse_env_file, read_env_file

DOTENV = """\
# The service's local settings
DATABASE_URL=postgres://localhost:5432/users
export LOG_LEVEL=debug
  SPACED = trimmed value   # a comment
HASH_IN_VALUE=a#b
SINGLE='literal $HOME \\n'
DOUBLE="line one\\nline two \\"quoted\\""
MULTI="first
second"
EMPTY=
EMPTY_QUOTED=""
DOTTED.NAME-1=ok
DATABASE_URL=postgres://db:5432/users
"""


def test_the_common_dotenv_forms() -> None:
    assert parse_env_file(DOTENV) == {
        "DATABASE_URL": "postgres://db:5432/users",  # a later line wins
        "LOG_LEVEL": "debug",
        "SPACED": "trimmed value",
        "HASH_IN_VALUE": "a#b",
        "SINGLE": "literal $HOME \\n",
        "DOUBLE": 'line one\nline two "quoted"',
        "MULTI": "first\nsecond",
        "EMPTY": "",
        "EMPTY_QUOTED": "",
        "DOTTED.NAME-1": "ok",
    }


def test_windows_line_ends_and_a_byte_order_mark() -> None:
    assert parse_env_file("\ufeffA=1\r\nB='2'\r\n") == {"A": "1", "B": "2"}


def test_a_variable_named_export() -> None:
    assert parse_env_file("export=1\nexport X=2\n") == {"export": "1", "X": "2"}


@pytest.mark.parametrize(
    ("text", "line", "column", "words"),
    [
        ("A=1\nNO_EQUALS\n", 2, 10, "expected '=' after NO_EQUALS"),
        ("A=1\n1ABC=2\n", 2, 1, "expected a variable name"),
        ('A=1\nB="never closed\n', 2, 3, "no closing"),
        ("A='x' trailing\n", 1, 7, "unexpected text after the quoted value of A"),
    ],
)
def test_errors_name_line_and_column(text: str, line: int, column: int, words: str) -> None:
    with pytest.raises(EnvFileError) as caught:
        parse_env_file(text)
    assert (caught.value.line, caught.value.column) == (line, column)
    assert caught.value.message.startswith(f"line {line}, column {column}: ")
    assert words in caught.value.message


def test_errors_never_quote_values() -> None:
    with pytest.raises(EnvFileError) as caught:
        parse_env_file('API_TOKEN="hunter2 never closed\n')
    assert "hunter2" not in caught.value.message and "hunter2" not in caught.value.hint


def test_reading_files(tmp_path: Path) -> None:
    path = tmp_path / ".env"
    path.write_text("A=1\n")
    assert read_env_file(str(path)) == {"A": "1"}
    with pytest.raises(EnvFileError, match="not found"):
        read_env_file(str(tmp_path / "missing.env"))
    with pytest.raises(EnvFileError, match="is a directory"):
        read_env_file(str(tmp_path))
    path.write_bytes(b"A=caf\xe9\n")
    with pytest.raises(EnvFileError, match="not UTF-8"):
        read_env_file(str(path))
    path.write_text("A=1\nB\n")
    with pytest.raises(EnvFileError, match=r"\.env, line 2, column 2: expected '='") as caught:
        read_env_file(str(path))
    assert caught.value.line == 2
