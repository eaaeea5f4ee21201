"""A stream towards the app that may not be connected yet.

The session often has bytes for the app before its connection to the app is up (the agent's first chunk
arrives with the connection's announcement). They wait here and go out, in order, once it is.
"""

from __future__ import annotations

import asyncio

from pymirrord.flow import COPY_LAG_LIMIT
from pymirrord.streams import drained, unsliced

HIGH_WATER = 4 * 1024 * 1024
"""Past this much unwritten data towards one app connection, the agent is asked to stop reading that
connection's source (``pymirrord.flow``); the relay itself never waits, so other connections keep flowing."""
LOW_WATER = 1024 * 1024
"""A paused connection's source is read again once no more than this waits for the app."""
COPY_LIMIT = COPY_LAG_LIMIT
"""A mirrored copy is never paused (that would slow the pod's traffic): past this much waiting for the
app, the copy is dropped instead."""


async def relieve(writer: asyncio.StreamWriter | None) -> None:
    """Waits for the app to read when too much waits for it; ``ConnectionError`` if it went away."""
    if writer is not None and writer.transport.get_write_buffer_size() > HIGH_WATER:
        await writer.drain()


class HeldStream:
    def __init__(self) -> None:
        self.writer: asyncio.StreamWriter | None = None
        self.pending: list[bytes] = []
        self._pending_size = 0
        self._connected = asyncio.Event()
        self.writable = asyncio.Event()
        """Clear while the agent asked the relay to stop sending what the app writes on this connection."""
        self.writable.set()
        self.waiter: asyncio.Task[None] | None = None
        """Waits for the app to drain a paused connection (``until_drained``)."""

    @property
    def backlog(self) -> int:
        """Bytes written towards the app that it has not read yet (held ones included)."""
        size = self._pending_size
        if self.writer is not None:
            size += self.writer.transport.get_write_buffer_size()
        return size

    def write(self, data: bytes) -> None:
        """Bytes towards the app; an empty chunk is an end of stream (a half-close)."""
        writer = self.writer
        if writer is None:
            self.pending.append(data)
            self._pending_size += len(data)
        elif writer.is_closing():
            return
        elif data:
            writer.write(unsliced(data))
        elif writer.can_write_eof():
            writer.write_eof()

    async def until_drained(self, low: int = LOW_WATER) -> None:
        """Returns once the connection is up and at most ``low`` bytes wait for the app (``ConnectionError``
        if it went away)."""
        await self._connected.wait()
        assert self.writer is not None
        await drained(self.writer, low)

    def connected(self, writer: asyncio.StreamWriter) -> None:
        """The connection is up: what waited goes out first."""
        self.writer = writer
        held, self.pending = self.pending, []
        self._pending_size = 0
        for chunk in held:
            self.write(chunk)
        self._connected.set()

    def hold_writes(self, paused: bool) -> None:
        """The agent asks to hold (``paused``), or to send again, what the app writes on this connection."""
        if paused:
            self.writable.clear()
        else:
            self.writable.set()

    def stop(self) -> None:
        """The connection is over: stop waiting for the app, and let a relay that waits to read go on."""
        if self.waiter is not None and self.waiter is not asyncio.current_task():
            self.waiter.cancel()
        self.writable.set()
