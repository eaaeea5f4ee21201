"""Several encoded messages in one websocket message, when both ends agreed to it in the handshake.

Each message is a 4-byte big-endian length and then its bytes. One websocket message per burst of
protocol messages (the requests of many connections, a response's head and its end) spares both ends
the per-message cost of the websocket: framing, masking, a wake-up of the reader.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable

from pymirrord.protocol.errors import ProtocolError

_LENGTH = struct.Struct(">I")


def batch_parts(messages: Iterable[bytes]) -> list[bytes]:
    """The parts of one batch, in order; written one after the other they make the batch."""
    parts: list[bytes] = []
    for message in messages:
        parts.append(_LENGTH.pack(len(message)))
        parts.append(message)
    return parts


def split_batch(payload: bytes | bytearray) -> list[memoryview]:
    """The messages of a batch, as views into ``payload`` (decoding copies what it keeps)."""
    view = memoryview(payload)
    messages: list[memoryview] = []
    position, end = 0, len(view)
    while position < end:
        if end - position < _LENGTH.size:
            raise ProtocolError(f"a batch ends inside a length at byte {position}")
        (length,) = _LENGTH.unpack_from(view, position)
        position += _LENGTH.size
        if length > end - position:
            raise ProtocolError(
                f"a batch announces {length} bytes at byte {position - _LENGTH.size}"
                f" but has {end - position} left"
            )
        messages.append(view[position : position + length])
        position += length
    return messages
