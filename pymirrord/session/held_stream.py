"""A stream towards the app that may not be connected yet.

The session often has bytes for the app before its connection to the app is up (the agent's first chunk
arrives with the connection's announcement). They wait here and go out, in order, once it is.
"""

from __future__ import annotations

import asyncio


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

    def connected(self, writer: asyncio.StreamWriter) -> None:
        """The connection is up: what waited goes out first."""
        self.writer = writer
        held, self.pending = self.pending, []
        for chunk in held:
            self.write(chunk)
