from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pymirrord.protocol.errors import ProtocolError
from pymirrord.protocol.framing import FrameDecoder, frame


@given(
    payloads=st.lists(st.binary(max_size=100), max_size=10),
    cuts=st.lists(st.integers(1, 50), max_size=30),
)
def test_frames_survive_any_chunking(payloads: list[bytes], cuts: list[int]) -> None:
    stream = b"".join(frame(p) for p in payloads)
    decoder = FrameDecoder()
    received: list[bytes] = []
    position = 0
    for cut in cuts:
        received += decoder.feed(stream[position : position + cut])
        position += cut
    received += decoder.feed(stream[position:])
    assert received == payloads
    assert decoder.pending == 0


def test_truncated_stream_leaves_pending_bytes() -> None:
    decoder = FrameDecoder()
    assert decoder.feed(frame(b"hello")[:-1]) == []
    assert decoder.pending == 8


def test_oversized_frame_is_refused_with_its_stream_offset() -> None:
    decoder = FrameDecoder(max_frame=10)
    decoder.feed(frame(b"ok"))
    with pytest.raises(ProtocolError, match="frame at stream byte 6 announces 11 bytes"):
        decoder.feed(frame(b"x" * 11))
