from __future__ import annotations

from pymirrord.server.text_positions import TextPositions


def test_utf16_columns_count_astral_characters_twice() -> None:
    text = '{"h": "😀x"}\r\nnext'
    positions = TextPositions(text)
    x = text.index("x")
    assert positions.position(x) == (0, 9)
    assert positions.offset(0, 9) == x
    assert TextPositions(text, "utf-32").position(x) == (0, 8)
    assert TextPositions(text, "utf-8").position(x) == (0, 11)
    assert positions.position(text.index("next")) == (1, 0)


def test_config_positions_and_clamping() -> None:
    positions = TextPositions("ab😀c\nz")
    assert positions.from_config(1, 4) == (0, 4)
    assert positions.from_config(1, 99) == (0, 5), "past the end of a line stays on it"
    assert positions.from_config(0, 0) == (0, 0)
    assert positions.offset(5, 0) == len("ab😀c\nz")
    assert positions.offset(0, 99) == 4
