"""RFC 6455 frames fed byte by byte, masked and not, whole and in fragments, and broken ones."""

from __future__ import annotations

import os

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pymirrord.transport.errors import WebSocketProtocolError
from pymirrord.transport.frames import (
    Control,
    FrameParser,
    Message,
    Opcode,
    _mask_in_python,
    apply_mask,
    close_payload,
    frame,
    header,
    mask_parts,
    parse_close,
)


def parse_all(parser: FrameParser, data: bytes, step: int) -> list[object]:
    events: list[object] = []
    for start in range(0, len(data), step):
        events += parser.feed(data[start : start + step])
    return events


@pytest.mark.parametrize("length", [0, 1, 125, 126, 65535, 65536, 300_000])
@pytest.mark.parametrize("masked", [True, False])
def test_a_message_of_any_length_comes_out_whole(length: int, masked: bool) -> None:
    payload = os.urandom(length)
    data = b"".join(frame(Opcode.BINARY, payload, masked=masked))
    for step in (1 if length < 200 else 977, len(data) or 1):
        events = parse_all(FrameParser(masked=masked, max_message=1 << 20), data, step)
        assert events == [Message(payload, binary=True)]


def test_fragments_are_joined_and_control_frames_come_out_between_them() -> None:
    parts = [
        header(Opcode.TEXT, 3, fin=False) + b"abc",
        header(Opcode.PING, 2) + b"hi",
        header(Opcode.CONTINUATION, 3, fin=True) + b"def",
    ]
    events = FrameParser(masked=False, max_message=100).feed(b"".join(parts))
    assert events == [Control(Opcode.PING, b"hi"), Message(b"abcdef", binary=False)]


def test_mask_matches_the_pure_python_one_and_undoes_itself() -> None:
    data, key = os.urandom(1001), os.urandom(4)
    assert apply_mask(data, key) == _mask_in_python(data, key)
    assert apply_mask(apply_mask(data, key), key) == data
    assert _mask_in_python(b"", key) == b""


@given(st.binary(max_size=2000), st.integers(min_value=1, max_value=64))
def test_any_split_of_masked_frames_parses_the_same(payload: bytes, step: int) -> None:
    data = b"".join(frame(Opcode.BINARY, payload, masked=True) * 2)
    events = parse_all(FrameParser(masked=True, max_message=1 << 16), data, step)
    assert events == [Message(payload)] * 2


@pytest.mark.parametrize(
    ("data", "masked", "text"),
    [
        (bytes((0x82 | 0x40, 0)), False, "reserved bits"),
        (bytes((0x83, 0)), False, "unknown opcode"),
        (bytes((0x82, 0)), True, "unmasked frame from the client"),
        (bytes((0x82, 0x80)) + b"\0\0\0\0", False, "masked frame from the server"),
        (bytes((0x09, 0)), False, "fragmented or oversized control frame"),
        (bytes((0x80, 0)), False, "continuation frame with no message"),
        (bytes((0x02, 1)) + b"a" + bytes((0x82, 0)), False, "before the last one's final fragment"),
        (bytes((0x82, 127)) + (1 << 40).to_bytes(8, "big"), False, "over the 100-byte limit"),
    ],
)
def test_broken_frames_are_refused_with_their_place(data: bytes, masked: bool, text: str) -> None:
    parser = FrameParser(masked=masked, max_message=100)
    parser.feed(bytes((0x82, 1)) + b"x" if not masked else b"".join(frame(Opcode.BINARY, b"x", masked=True)))
    with pytest.raises(WebSocketProtocolError, match=text) as caught:
        parser.feed(data)
    assert "stream byte" in str(caught.value)


def test_close_payloads_round_trip_and_bad_ones_are_refused() -> None:
    assert parse_close(close_payload(1002, "bad message")) == (1002, "bad message")
    assert parse_close(b"") == (1005, "")
    with pytest.raises(WebSocketProtocolError):
        parse_close(b"\x03")
    with pytest.raises(WebSocketProtocolError):
        parse_close(b"\x03\xe8\xff")


def test_a_large_unmasked_payload_is_read_into_a_buffer_of_its_own() -> None:
    parser = FrameParser(masked=False, max_message=1 << 22)
    big, small = os.urandom(1 << 20), b"tail"
    data = b"".join([*frame(Opcode.BINARY, big, masked=False), *frame(Opcode.BINARY, small, masked=False)])
    events: list[object] = []
    position = 0
    while position < len(data):
        view = parser.buffer()
        count = min(len(view), len(data) - position, 100_000)
        view[:count] = data[position : position + count]
        del view
        events += parser.advance(count)
        position += count
    assert events == [Message(big), Message(small)]
    # The stream offset in errors still counts the bytes that went around the buffer.
    with pytest.raises(WebSocketProtocolError, match=f"stream byte {len(data)}"):
        parser.feed(bytes((0x83, 0)))


def test_parts_masked_apart_equal_the_whole_masked_at_once() -> None:
    parts = [os.urandom(n) for n in (3, 0, 5, 70_001, 1)]
    key = os.urandom(4)
    assert b"".join(mask_parts(parts, key)) == apply_mask(b"".join(parts), key)
