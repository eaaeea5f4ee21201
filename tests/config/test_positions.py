"""The position-tracking JSON scanner: same values as ``json.loads``, exact spans, helpful syntax errors."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pymirrord.config.positions import JsonSyntaxError, LineIndex, literal_offsets, parse_json

_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)


@given(_json_values, st.sampled_from([None, 2]), st.booleans())
def test_scanner_reads_what_json_loads_reads(value: Any, indent: int | None, ascii_only: bool) -> None:
    text = json.dumps(value, indent=indent, ensure_ascii=ascii_only)
    assert parse_json(text).value == json.loads(text)


@given(st.dictionaries(st.text(max_size=6), st.text(max_size=6), min_size=1, max_size=4), st.booleans())
def test_spans_cover_exactly_each_key_and_value(value: dict[str, str], ascii_only: bool) -> None:
    text = json.dumps({"outer": value}, indent=2, ensure_ascii=ascii_only)
    parsed = parse_json(text)
    for key, item in value.items():
        pointer = "/outer/" + key.replace("~", "~0").replace("/", "~1")
        span = parsed.spans[pointer]
        assert json.loads(text[span.value.start : span.value.end]) == item
        assert span.key is not None
        assert json.loads(text[span.key.start : span.key.end]) == key


@pytest.mark.parametrize(
    ("text", "message", "at"),
    [
        ('{\n  // note\n  "a": 1\n}', "comments are not allowed in JSON", (2, 3)),
        ('{"a": 1 /* note */}', "comments are not allowed in JSON", (1, 9)),
        ('{"a": 1,\n}', "trailing comma before }", (1, 8)),
        ('{"a": [1, 2,]}', "trailing comma before ]", (1, 12)),
        ("{'a': 1}", 'unexpected character "\'"', (1, 2)),
        ('{"a": tru}', "unexpected word 'tru'", (1, 7)),
        ('{"a": "x\n"}', "unterminated string", (1, 7)),
        ('{"a": "\\q"}', "invalid escape in string", (1, 8)),
        ('{"a": 1} {}', "unexpected text after the end", (1, 10)),
        ('{"a" 1}', "expected ':' after the key", (1, 6)),
        ("", "the file is empty", (1, 1)),
        ('{"a": 1', "unexpected end of file", (1, 8)),
    ],
)
def test_syntax_errors_are_located(text: str, message: str, at: tuple[int, int]) -> None:
    with pytest.raises(JsonSyntaxError) as caught:
        parse_json(text)
    assert message in caught.value.message
    assert LineIndex(text).position(caught.value.offset) == at


def test_comment_error_has_a_hint() -> None:
    with pytest.raises(JsonSyntaxError) as caught:
        parse_json('{"a": 1} // done')
    assert "yaml" in caught.value.hint


def test_duplicate_keys_are_recorded() -> None:
    parsed = parse_json('{"a": 1, "a": 2}')
    assert parsed.value == {"a": 2}
    assert [pointer for pointer, _ in parsed.duplicate_keys] == ["/a"]


@pytest.mark.parametrize(
    ("source", "style", "value"),
    [
        ('"a\\\\(b"', "json", "a\\(b"),
        ('"\\u00e9x"', "json", "éx"),
        ('"tab\\there"', "json", "tab\there"),
        ("'it''s'", "yaml-single", "it's"),
        ('"\\x41\\u0042\\U00000043"', "yaml-double", "ABC"),
        ("plain", "plain", "plain"),
        ("'C:\\path'", "toml-literal", "C:\\path"),
    ],
)
def test_literal_offsets_map_each_character_to_where_it_is_written(
    source: str, style: str, value: str
) -> None:
    offsets = literal_offsets(source, style, value)
    assert offsets is not None and len(offsets) == len(value)
    for index, char in enumerate(value):
        written = source[offsets[index] :]
        assert written.startswith(char) or written.startswith("\\") or written.startswith("''")


def test_literal_offsets_refuse_to_guess() -> None:
    assert literal_offsets('"\\ud83d\\ude00"', "json", "\U0001f600") is None
    assert literal_offsets("folded", "", "folded") is None
    assert literal_offsets("other", "plain", "different") is None


def test_line_index_round_trips_and_handles_crlf() -> None:
    text = "ab\r\ncd\ref\ngh"
    lines = LineIndex(text)
    assert lines.position(text.index("c")) == (2, 1)
    assert lines.position(text.index("e")) == (3, 1)
    assert lines.position(text.index("h")) == (4, 2)
    assert lines.offset(4, 2) == text.index("h")
    assert lines.line_text(2) == "cd"
