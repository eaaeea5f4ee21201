"""RFC 6455 frames, sans I/O: a parser fed the bytes a socket delivers, and header builders.

The parser owns one growing buffer that the socket reads straight into (``buffer`` then ``advance``,
the shape of ``asyncio.BufferedProtocol``), so a payload is copied once: out of that buffer into the
message handed on (and unmasked in the same pass where the peer masks). A fragmented message is put
together here; control frames (close, ping, pong) come out as they arrive, between fragments too.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import IntEnum

from pymirrord.transport.errors import MessageTooBig, WebSocketProtocolError

MaskFunction = Callable[[bytes | bytearray | memoryview, bytes], bytes]


def _mask_in_python(data: bytes | bytearray | memoryview, key: bytes) -> bytes:
    length = len(data)
    if not length:
        return b""
    repeated = (key * (length // 4 + 1))[:length]
    return (int.from_bytes(data, "little") ^ int.from_bytes(repeated, "little")).to_bytes(length, "little")


def _fast_mask() -> MaskFunction:
    try:
        # The websockets package ships a C implementation; it is a dependency of ours anyway.
        from websockets.speedups import apply_mask
    except ImportError:  # pragma: no cover - a build without the C extension
        return _mask_in_python
    return apply_mask  # type: ignore[no-any-return,unused-ignore]


apply_mask: MaskFunction = _fast_mask()
"""XOR ``data`` with the 4-byte ``key`` repeated; masking and unmasking are the same operation."""


class Opcode(IntEnum):
    CONTINUATION = 0x0
    TEXT = 0x1
    BINARY = 0x2
    CLOSE = 0x8
    PING = 0x9
    PONG = 0xA


_CONTROL = frozenset({Opcode.CLOSE, Opcode.PING, Opcode.PONG})
_KNOWN = frozenset(int(op) for op in Opcode)
_U16 = struct.Struct("!H")
_U64 = struct.Struct("!Q")
_MAX_CONTROL_PAYLOAD = 125
_INITIAL_BUFFER = 256 * 1024
_MIN_READ = 64 * 1024
_DIRECT_FROM = 64 * 1024
"""An unmasked payload at least this large is read straight into a buffer of its own, which becomes the
message: one copy (the kernel's) instead of two."""


@dataclass(frozen=True)
class Message:
    """A whole data message: ``binary`` is False for a text message (whose UTF-8 is not checked here)."""

    payload: bytes | bytearray
    binary: bool = True


@dataclass(frozen=True)
class Control:
    """A control frame: close, ping or pong, with its payload."""

    opcode: Opcode
    payload: bytes


Event = Message | Control


def header(opcode: Opcode, length: int, *, mask_key: bytes | None = None, fin: bool = True) -> bytes:
    """The bytes before a frame's payload (with the masking key after them when ``mask_key`` is set)."""
    first = (0x80 if fin else 0) | opcode
    mask_bit = 0x80 if mask_key is not None else 0
    if length < 126:
        head = bytes((first, mask_bit | length))
    elif length < 1 << 16:
        head = bytes((first, mask_bit | 126)) + _U16.pack(length)
    else:
        head = bytes((first, mask_bit | 127)) + _U64.pack(length)
    return head if mask_key is None else head + mask_key


def frame(opcode: Opcode, payload: bytes | bytearray | memoryview, *, masked: bool) -> list[bytes]:
    """One whole frame as parts to write in order (no copy of an unmasked payload)."""
    if masked:
        key = os.urandom(4)
        return [header(opcode, len(payload), mask_key=key), apply_mask(payload, key)]
    return [header(opcode, len(payload)), bytes(payload) if not isinstance(payload, bytes) else payload]


def mask_parts(parts: Sequence[bytes | bytearray | memoryview], key: bytes) -> list[bytes]:
    """``parts`` masked as if they were one payload, without joining them first."""
    masked: list[bytes] = []
    offset = 0
    for part in parts:
        shift = offset % 4
        masked.append(apply_mask(part, key[shift:] + key[:shift]))
        offset += len(part)
    return masked


def close_payload(code: int, reason: str = "") -> bytes:
    return _U16.pack(code) + reason.encode()[: _MAX_CONTROL_PAYLOAD - 2]


def parse_close(payload: bytes) -> tuple[int, str]:
    """The code and reason of a close frame; 1005 when it carries none."""
    if not payload:
        return 1005, ""
    if len(payload) == 1:
        raise WebSocketProtocolError("a close frame with a one-byte payload")
    (code,) = _U16.unpack_from(payload)
    try:
        reason = payload[2:].decode()
    except UnicodeDecodeError:
        raise WebSocketProtocolError("a close frame whose reason is not UTF-8") from None
    return code, reason


class FrameParser:
    """Turns a byte stream into ``Message`` and ``Control`` events.

    ``masked`` says whether the peer must mask its frames (a server parses a client's, which are).
    ``max_message`` bounds a message's size, so a corrupt length cannot make us buffer gigabytes.
    """

    def __init__(self, *, masked: bool, max_message: int) -> None:
        self._masked = masked
        self._max_message = max_message
        self._buffer = bytearray(_INITIAL_BUFFER)
        self._start = 0  # first byte not parsed yet
        self._end = 0  # first byte not filled yet
        self._consumed = 0  # stream offset of buffer[0], for error messages
        self._fragments: list[bytes | bytearray] = []
        self._fragments_size = 0
        self._fragments_binary = True
        self._need = 2  # bytes of buffer[start:] the next frame needs at least
        # A large payload being read into a buffer of its own: the buffer, how much is in, the frame's
        # opcode, FIN bit and stream offset.
        self._direct: bytearray | None = None
        self._direct_filled = 0
        self._direct_frame = (Opcode.BINARY, True, 0)

    def buffer(self, size_hint: int = -1) -> memoryview:
        """Where the next read goes; call ``advance`` with how many bytes it wrote there."""
        if self._direct is not None:
            return memoryview(self._direct)[self._direct_filled :]
        want = max(_MIN_READ, self._need - (self._end - self._start), size_hint)
        if len(self._buffer) - self._end < want:
            pending = self._end - self._start
            if self._start:
                # Move the unparsed tail to the front; grow only if that is not room enough.
                self._buffer[:pending] = self._buffer[self._start : self._end]
                self._consumed += self._start
                self._start, self._end = 0, pending
            if len(self._buffer) - self._end < want:
                self._buffer.extend(bytes(want - (len(self._buffer) - self._end)))
        # Reads into the shared buffer stay modest: most of a large payload should go straight into its own.
        return memoryview(self._buffer)[self._end : self._end + max(want, _MIN_READ)]

    def advance(self, count: int) -> list[Event]:
        """Takes ``count`` new bytes (written into the last ``buffer``) and returns the events they finish."""
        events: list[Event] = []
        if self._direct is not None:
            self._direct_filled += count
            if self._direct_filled < len(self._direct):
                return events
            payload, self._direct = self._direct, None
            opcode, fin, start = self._direct_frame
            event = self._complete(opcode, fin, payload, start)
            if event is not None:
                events.append(event)
            return events
        self._end += count
        while self._end - self._start >= self._need:
            event = self._parse_one()
            if event is not None:
                events.append(event)
        return events

    def feed(self, data: bytes | bytearray | memoryview) -> list[Event]:
        """Like ``buffer`` plus ``advance`` for bytes that are already in memory."""
        source = memoryview(data)
        events: list[Event] = []
        while source:
            view = self.buffer(len(source))
            count = min(len(view), len(source))
            view[:count] = source[:count]
            del view  # a live view would pin the buffer's size
            events += self.advance(count)
            source = source[count:]
        return events

    def _error(self, offset: int, text: str) -> WebSocketProtocolError:
        return WebSocketProtocolError(f"{text} (frame at stream byte {self._consumed + offset})")

    def _parse_one(self) -> Event | None:
        """Parses the frame at ``start`` if it is whole; otherwise raises ``need`` and returns None."""
        buffer, start = self._buffer, self._start
        available = self._end - start
        first, second = buffer[start], buffer[start + 1]
        if first & 0x70:
            raise self._error(start, "a frame with reserved bits set (no extension was agreed)")
        opcode = first & 0x0F
        if opcode not in _KNOWN:
            raise self._error(start, f"unknown opcode {opcode:#x}")
        if bool(second & 0x80) != self._masked:
            raise self._error(
                start,
                "an unmasked frame from the client" if self._masked else "a masked frame from the server",
            )
        length = second & 0x7F
        offset = 2
        if length == 126:
            offset = 4
            if available < offset:
                self._need = offset
                return None
            (length,) = _U16.unpack_from(buffer, start + 2)
        elif length == 127:
            offset = 10
            if available < offset:
                self._need = offset
                return None
            (length,) = _U64.unpack_from(buffer, start + 2)
        fin = bool(first & 0x80)
        if opcode in _CONTROL and (length > _MAX_CONTROL_PAYLOAD or not fin):
            raise self._error(start, "a fragmented or oversized control frame")
        if length + self._fragments_size > self._max_message:
            raise MessageTooBig(
                self._error(start, f"a message over the {self._max_message}-byte limit").message
            )
        key_at = start + offset
        if self._masked:
            offset += 4
        total = offset + length
        if available < total:
            if not self._masked and length >= _DIRECT_FROM:
                self._read_directly(start, offset, length, Opcode(opcode), fin)
                return None
            self._need = total
            return None
        self._need = 2
        self._start = start + total
        view = memoryview(buffer)
        try:
            body = view[start + offset : start + total]
            payload = apply_mask(body, bytes(buffer[key_at : key_at + 4])) if self._masked else bytes(body)
            del body
        finally:
            view.release()
        return self._complete(Opcode(opcode), fin, payload, start)

    def _read_directly(self, start: int, offset: int, length: int, opcode: Opcode, fin: bool) -> None:
        """The rest of this frame's payload goes straight into a buffer of its own (see ``buffer``)."""
        direct = bytearray(length)
        have = self._end - (start + offset)
        direct[:have] = self._buffer[start + offset : self._end]
        self._direct, self._direct_filled = direct, have
        frame_at = self._consumed + start
        # The buffer starts again after this frame: its payload's remaining bytes bypass it.
        self._consumed += self._end + (length - have)
        self._direct_frame = (opcode, fin, frame_at - self._consumed)  # relative, as ``_error`` expects
        self._start = self._end = 0
        self._need = 2

    def _complete(self, opcode: Opcode, fin: bool, payload: bytes | bytearray, start: int) -> Event | None:
        if opcode in _CONTROL:
            return Control(opcode, bytes(payload))
        if opcode is Opcode.CONTINUATION:
            if not self._fragments:
                raise self._error(start, "a continuation frame with no message to continue")
        elif self._fragments:
            raise self._error(start, "a new message before the last one's final fragment")
        else:
            self._fragments_binary = opcode is Opcode.BINARY
            if fin:
                return Message(payload, self._fragments_binary)
        self._fragments.append(payload)
        self._fragments_size += len(payload)
        if not fin:
            return None
        whole = b"".join(self._fragments)
        self._fragments.clear()
        self._fragments_size = 0
        return Message(whole, self._fragments_binary)
