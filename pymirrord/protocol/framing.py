"""Length-prefixed frames for byte streams (the layer's local socket).

A frame is a 4-byte big-endian length followed by that many bytes of one encoded message.
``FrameDecoder`` is fed whatever the stream delivers and hands back whole frames.
"""

from __future__ import annotations

import struct

from pymirrord.protocol.errors import ProtocolError

_LENGTH = struct.Struct(">I")
HEADER_SIZE = _LENGTH.size
MAX_FRAME = 64 * 1024 * 1024
"""Larger frames are refused: a corrupt length must not make a peer buffer gigabytes."""


def frame(payload: bytes) -> bytes:
    if len(payload) > MAX_FRAME:
        raise ProtocolError(f"frame of {len(payload)} bytes exceeds the {MAX_FRAME}-byte limit")
    return _LENGTH.pack(len(payload)) + payload


class FrameDecoder:
    """Reassembles frames from arbitrary chunks of a stream."""

    def __init__(self, max_frame: int = MAX_FRAME) -> None:
        self._buffer = bytearray()
        self._max_frame = max_frame
        self._consumed = 0

    def feed(self, data: bytes) -> list[bytes]:
        """Adds bytes read from the stream; returns the frames they completed, in order."""
        self._buffer += data
        frames: list[bytes] = []
        buffer = self._buffer
        start = 0
        while len(buffer) - start >= HEADER_SIZE:
            (length,) = _LENGTH.unpack_from(buffer, start)
            if length > self._max_frame:
                raise ProtocolError(
                    f"frame at stream byte {self._consumed + start} announces {length} bytes,"
                    f" over the {self._max_frame}-byte limit"
                )
            end = start + HEADER_SIZE + length
            if end > len(buffer):
                break
            frames.append(bytes(buffer[start + HEADER_SIZE : end]))
            start = end
        if start:
            del buffer[:start]
            self._consumed += start
        return frames

    @property
    def pending(self) -> int:
        """Bytes of an incomplete frame held back; non-zero at end of stream means a truncated frame."""
        return len(self._buffer)
