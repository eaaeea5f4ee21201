"""Asyncio streams for relaying: a reader that hands out the chunks the socket delivered as they are.

``asyncio.StreamReader`` appends every chunk to one buffer and copies it out again on ``read``: two copies
of each relayed byte beyond the kernel's. ``ChunkReader`` keeps the chunks (immutable ``bytes``) in a queue
and returns them whole, so what the socket gave is what the relay sends on. It supports what the relays
use, ``read`` and ``at_eof``; pausing the socket past ``2 * limit`` queued bytes works as in asyncio.
"""

from __future__ import annotations

import asyncio
import collections
import socket
from collections.abc import Iterable
from typing import Any, SupportsIndex


class ChunkReader(asyncio.StreamReader):
    def __init__(self, limit: int) -> None:
        super().__init__(limit=limit)
        self._chunks: collections.deque[bytes] = collections.deque()
        self._queued = 0
        self._received = 0
        self._end_at: int | None = None

    # StreamReader's own state (_eof, _paused, _transport, ...) is not in its typed interface: ``base``
    # reaches it, as StreamReader's own methods do.

    def feed_data(self, data: Iterable[SupportsIndex]) -> None:
        if not data:
            return
        base: Any = self
        chunk = bytes(data)  # the transport's bytes object itself: bytes() of a bytes is no copy
        self._chunks.append(chunk)
        self._queued += len(chunk)
        self._received += len(chunk)
        if self._end_at is not None and self._received >= self._end_at:
            self.feed_eof()
        base._wakeup_waiter()
        if base._transport is not None and not base._paused and self._queued > 2 * base._limit:
            try:
                base._transport.pause_reading()
            except NotImplementedError:
                base._transport = None
            else:
                base._paused = True

    def end_after(self, length: int) -> None:
        """The peer's end of stream comes after ``length`` bytes in all, and is told some other way than by
        the socket (a counted tunnel's ``TunnelEnd``): the reader ends there."""
        self._end_at = length
        if self._received >= length:
            self.feed_eof()

    def at_eof(self) -> bool:
        base: Any = self
        return bool(base._eof) and not self._chunks

    async def read(self, n: int = -1) -> bytes:
        base: Any = self
        if base._exception is not None:
            raise base._exception
        if n == 0:
            return b""
        if not self._chunks and not base._eof:
            await base._wait_for_data("read")
        if not self._chunks:
            return b""
        chunk = self._chunks.popleft()
        if 0 < n < len(chunk):
            self._chunks.appendleft(chunk[n:])
            chunk = chunk[:n]
        self._queued -= len(chunk)
        if base._paused and self._queued <= base._limit:
            base._paused = False
            base._transport.resume_reading()
        return chunk


READ_SIZE = 127 * 1024
"""Bytes asked of the socket per read. asyncio asks 256 KiB, and ``recv`` allocates that much each time:
past glibc's 128 KiB threshold every allocation is an ``mmap`` and a ``munmap``, 12 us on each read however
few bytes came (a 200-byte HTTP request then costs 15 us to read instead of 3)."""
_VIEW_FROM = 64 * 1024


def unsliced(data: bytes) -> bytes | memoryview:
    """What to hand a transport's ``write``: a large chunk as a view, because when the socket takes only
    part of it the transport keeps ``data[sent:]``, a copy of the rest for ``bytes`` and none for a view."""
    return memoryview(data) if len(data) >= _VIEW_FROM else data


async def open_stream(sock: socket.socket, limit: int) -> tuple[ChunkReader, asyncio.StreamWriter]:
    """Streams over a connected (or accepted) socket; ``limit`` bounds what is read ahead of the reader."""
    loop = asyncio.get_running_loop()
    reader = ChunkReader(limit)
    protocol = asyncio.StreamReaderProtocol(reader, loop=loop)
    transport, _ = await loop.create_connection(lambda: protocol, sock=sock)
    if hasattr(transport, "max_size"):
        transport.max_size = READ_SIZE
    return reader, asyncio.StreamWriter(transport, protocol, reader, loop)


def backlog(writer: asyncio.StreamWriter) -> int:
    """Bytes written to ``writer`` that its socket has not taken yet."""
    return writer.transport.get_write_buffer_size()


async def drained(writer: asyncio.StreamWriter, low: int) -> None:
    """Returns once at most ``low`` bytes wait in ``writer``'s buffer; ``ConnectionError`` if it is ending.

    It waits on the transport's own pause and resume, so the transport's limits are ``low`` while it waits.
    """
    transport = writer.transport
    old_low, old_high = transport.get_write_buffer_limits()
    transport.set_write_buffer_limits(high=low, low=low)
    try:
        while transport.get_write_buffer_size() > low:
            if transport.is_closing():
                raise ConnectionResetError("the connection is closing")
            await writer.drain()
    finally:
        transport.set_write_buffer_limits(high=old_high, low=old_low)
