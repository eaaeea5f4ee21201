"""Stream helpers over a real socket pair: what waits for a slow reader, waiting until little does, and a
reader told where its peer ends."""

from __future__ import annotations

import asyncio
import socket

import pytest

from pymirrord.streams import backlog, drained, open_stream

MIB = 1024 * 1024


def test_drained_waits_for_the_reader_then_restores_the_limits() -> None:
    async def scenario() -> None:
        ours, theirs = socket.socketpair()
        ours.setblocking(False)
        theirs.setblocking(False)
        _, writer = await open_stream(ours, MIB)
        limits = writer.transport.get_write_buffer_limits()
        writer.write(bytes(16 * MIB))  # far more than the kernel's buffers take
        assert backlog(writer) > MIB
        waiting = asyncio.ensure_future(drained(writer, 64 * 1024))
        await asyncio.sleep(0)
        assert not waiting.done(), "nobody read yet"
        reader, _ = await open_stream(theirs, MIB)
        received = 0
        while not waiting.done():
            received += len(await asyncio.wait_for(reader.read(MIB), 10))
        await waiting
        assert backlog(writer) <= 64 * 1024
        assert writer.transport.get_write_buffer_limits() == limits
        writer.close()
        while chunk := await asyncio.wait_for(reader.read(MIB), 10):
            received += len(chunk)
        assert received == 16 * MIB

    asyncio.run(asyncio.wait_for(scenario(), 30))


def test_drained_gives_up_on_a_connection_that_is_closing() -> None:
    async def scenario() -> None:
        ours, theirs = socket.socketpair()
        ours.setblocking(False)
        _, writer = await open_stream(ours, MIB)
        writer.write(bytes(16 * MIB))
        writer.close()  # the peer never reads: the buffer cannot drain
        with pytest.raises(ConnectionError):
            await asyncio.wait_for(drained(writer, 0), 10)
        writer.transport.abort()
        theirs.close()

    asyncio.run(asyncio.wait_for(scenario(), 30))


def test_a_reader_told_where_the_peer_ends_ends_there_before_or_after_the_bytes() -> None:
    """A counted tunnel's far end comes as a message: the reader ends once that many bytes have come,
    whether the length is told before the last of them arrives or after."""

    async def scenario() -> None:
        for told_first in (True, False):
            ours, theirs = socket.socketpair()
            with ours, theirs:
                reader, writer = await open_stream(ours, 1 << 16)
                if told_first:
                    reader.end_after(10)
                theirs.sendall(b"0123456789")
                received = b""
                while len(received) < 10:
                    received += await asyncio.wait_for(reader.read(), 5)
                if not told_first:
                    assert not reader.at_eof()
                    reader.end_after(10)
                assert received == b"0123456789"
                assert await asyncio.wait_for(reader.read(), 5) == b""
                assert reader.at_eof()
                writer.close()

    asyncio.run(scenario())
