"""Packet capture on loopback, in this process: a connection to a watched port is seen opening, carrying
its bytes once each (loopback shows every packet leaving and arriving) and closing; other ports' are not."""

from __future__ import annotations

import asyncio
import os
import socket

import pytest

from pymirrord.agent.capture import Capture, port_filter
from pymirrord.agent.tcp_capture import CapturedConnections, ClientEnd, Closed, Data, Event, Opened

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or Capture.available() is not None, reason="packet capture needs root (CAP_NET_RAW)"
)


def test_a_watched_port_is_seen_and_another_is_not() -> None:
    async def scenario() -> None:
        events: list[Event] = []
        ended = asyncio.Event()

        def heard(batch: list[Event]) -> None:
            # A Data event's bytes are a view of the capture's buffer, which the next read reuses.
            events.extend(Data(e.key, bytes(e.data)) if isinstance(e, Data) else e for e in batch)
            if any(isinstance(event, Closed) for event in batch):
                ended.set()

        async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.read()  # until the client's end
            writer.close()

        watched = await asyncio.start_server(serve, "127.0.0.1", 0)
        other = await asyncio.start_server(serve, "127.0.0.1", 0)
        port = watched.sockets[0].getsockname()[1]
        capture = Capture(CapturedConnections(lambda p: p == port), heard)
        capture.watch([port])
        writers: list[asyncio.StreamWriter] = []
        try:
            for server, payload in ((other, b"not this one"), (watched, b"x" * 300_000)):
                address = server.sockets[0].getsockname()
                _, writer = await asyncio.open_connection(*address)
                writers.append(writer)
                writer.write(payload)
                writer.write_eof()
                await writer.drain()
            await asyncio.wait_for(ended.wait(), 10)
        finally:
            capture.close()
            for writer in writers:
                writer.close()
            watched.close()
            other.close()
        kinds = [type(event) for event in events if not isinstance(event, Data)]
        assert kinds == [Opened, ClientEnd, Closed]
        assert b"".join(bytes(e.data) for e in events if isinstance(e, Data)) == b"x" * 300_000

    asyncio.run(asyncio.wait_for(scenario(), 30))


def test_more_ports_than_the_filter_can_name_keep_every_tcp_segment() -> None:
    few, many = port_filter([80, 8080]), port_filter(range(1, 200))
    assert len(few) > len(many)
    assert many == port_filter([])  # every TCP segment, as with no port named
    assert all(0 <= jump <= 255 for _code, true, false, _k in few for jump in (true, false))


def test_a_watched_port_list_that_becomes_empty_closes_the_socket() -> None:
    async def scenario() -> None:
        capture = Capture(CapturedConnections(lambda p: True), lambda events: None)
        try:
            capture.watch([socket.getservbyname("http")])
            assert capture.capturing
            capture.watch([])
            assert not capture.capturing
        finally:
            capture.close()

    asyncio.run(scenario())
