"""A stream towards the app that may not be connected yet.

The session often has bytes for the app before its connection to the app is up (the agent's first chunk
arrives with the connection's announcement). They wait here and go out, in order, once it is.
"""

from __future__ import annotations

import asyncio

HIGH_WATER = 4 * 1024 * 1024
"""Past this much unwritten data towards one app connection, the relay waits for the app to read: that
pauses the agent pump, which pushes back through the websocket to the client."""


async def relieve(writer: asyncio.StreamWriter | None) -> None:
    """Waits for the app to read when too much waits for it; ``ConnectionError`` if it went away."""
    if writer is not None and writer.transport.get_write_buffer_size() > HIGH_WATER:
        await writer.drain()


class HeldStream:
    def __init__(self) -> None:
        self.writer: asyncio.StreamWriter | None = None
        self.pending: list[bytes] = []

    def write(self, data: bytes) -> None:
        """Bytes towards the app; an empty chunk is an end of stream (a half-close)."""
        writer = self.writer
        if writer is None:
            self.pending.append(data)
        elif writer.is_closing():
            return
        elif data:
            writer.write(data)
        elif writer.can_write_eof():
            writer.write_eof()

    async def send(self, data: bytes) -> None:
        """``write``, then wait while too much waits for the app (``ConnectionError`` if it went away)."""
        self.write(data)
        await relieve(self.writer)

    def connected(self, writer: asyncio.StreamWriter) -> None:
        """The connection is up: what waited goes out first."""
        self.writer = writer
        held, self.pending = self.pending, []
        for chunk in held:
            self.write(chunk)
