"""Packet capture on loopback, in this process: a connection to a watched port is seen opening, carrying
its bytes once each (loopback shows every packet leaving and arriving) and closing; other ports' are not."""

from __future__ import annotations

import asyncio
import functools
import logging
import socket
import struct
from collections.abc import Awaitable, Callable

import pytest
from capture_helpers import needs_capture, until

from pymirrord.agent.capture import (
    FRAME,
    LOOPBACK_INDEX,
    MAX_FILTERED_PORTS,
    PACKET_OUTGOING,
    Capture,
    Instruction,
    port_filter,
)
from pymirrord.agent.tcp_capture import CapturedConnections, ClientEnd, Closed, Data, Event, Opened

ARRIVING = 0  # PACKET_HOST
ETH = 2  # an interface other than loopback
SYN, ACK, FIN, RST = 0x02, 0x10, 0x01, 0x04
_ANCILLARY = 0xFFFFF000


def run_filter(
    program: list[Instruction],
    packet: bytes,
    *,
    kind: int = ARRIVING,
    index: int = ETH,
    protocol: int = 0x0800,
) -> int:
    """What the kernel's classic BPF returns for ``packet`` (the instructions ``port_filter`` uses):
    bytes kept, 0 for dropped. A load past the packet's end drops it, as in the kernel."""
    ancillary = {0: protocol, 4: kind, 8: index}
    a = x = pc = 0
    while True:
        code, true, false, k = program[pc]
        size = {0x28: 2, 0x20: 4, 0x30: 1, 0x48: 2, 0x50: 1}.get(code)
        if size is not None:
            if k >= _ANCILLARY:
                a = ancillary[k - _ANCILLARY]
            else:
                at = k + (x if code in (0x48, 0x50) else 0)
                if at + size > len(packet):
                    return 0
                a = int.from_bytes(packet[at : at + size], "big")
        elif code == 0xB1:  # ldxb 4*([k]&0xf)
            x = 4 * (packet[k] & 0x0F)
        elif code == 0x54:
            a &= k
        elif code in (0x15, 0x45):
            taken = a == k if code == 0x15 else bool(a & k)
            pc += 1 + (true if taken else false)
            continue
        elif code == 0x05:
            pc += 1 + k
            continue
        elif code == 0x06:
            return k
        else:
            raise AssertionError(f"an instruction the test does not know: {code:#x}")
        pc += 1


def segment(
    *,
    source: int = 40000,
    destination: int = 80,
    flags: int = ACK,
    ip_protocol: int = 6,
    fragment: int = 0,
    payload: bytes = b"",
) -> bytes:
    tcp = struct.pack("!HHIIBBHHH", source, destination, 1, 0, 5 << 4, flags, 65535, 0, 0)
    total = 20 + len(tcp) + len(payload)
    ip = struct.pack(
        "!BBHHHBBH4s4s", 0x45, 0, total, 0, fragment, 64, ip_protocol, 0, b"\n\0\0\2", b"\n\0\0\1"
    )
    return ip + tcp + payload


def test_the_filter_keeps_the_clients_segments_and_the_pods_ends() -> None:
    program = port_filter([80, 8080])
    keep = [
        segment(payload=b"x"),  # a client's bytes
        segment(destination=8080, flags=SYN),  # a client's SYN
        segment(source=80, destination=40000, flags=FIN | ACK),  # the pod's end, arriving on loopback
    ]
    drop = [
        segment(destination=81, payload=b"x"),
        segment(source=80, destination=40000, payload=b"answer"),  # the pod's bytes: no copy wants them
        segment(ip_protocol=17),
        segment(fragment=0x0010, payload=b"x"),  # a later fragment has no TCP header
    ]
    assert [run_filter(program, packet) for packet in keep] == [FRAME] * len(keep)
    assert [run_filter(program, packet) for packet in drop] == [0] * len(drop)
    assert run_filter(program, segment(payload=b"x"), protocol=0x86DD) == 0


def test_of_leaving_segments_the_filter_keeps_the_pods_ends_and_never_a_bare_syn() -> None:
    for program in (port_filter([80]), port_filter([])):
        leaving = functools.partial(run_filter, program, kind=PACKET_OUTGOING)
        for flags in (FIN | ACK, RST, SYN | ACK):
            assert leaving(segment(source=80, destination=40000, flags=flags)) == FRAME, flags
        assert leaving(segment(source=80, destination=40000, payload=b"answer")) == 0
        # The pod's own connection out, even from a captured port: not a client's.
        assert leaving(segment(source=80, destination=443, flags=SYN)) == 0
        assert leaving(segment(source=40000, destination=80, flags=SYN)) == 0
        # On loopback, what leaves also arrives: it is kept as it arrives.
        assert leaving(segment(source=80, destination=40000, flags=FIN), index=LOOPBACK_INDEX) == 0
        assert leaving(segment(payload=b"x"), index=LOOPBACK_INDEX) == 0
        assert run_filter(program, segment(payload=b"x"), index=LOOPBACK_INDEX) == FRAME


def _hear(events: list[Event], ended: asyncio.Event, batch: list[Event]) -> None:
    """Keeps a capture's events; ``ended`` once one closed a connection."""
    # A Data event's bytes are a view of one of the capture's buffers, which its next reads reuse.
    events.extend(Data(e.key, bytes(e.data)) if isinstance(e, Data) else e for e in batch)
    if any(isinstance(event, Closed) for event in batch):
        ended.set()


async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """A server that reads until the client's end, then closes."""
    await reader.read()
    writer.close()


@needs_capture
def test_a_watched_port_is_seen_and_another_is_not() -> None:
    async def scenario() -> None:
        events: list[Event] = []
        ended = asyncio.Event()
        heard = functools.partial(_hear, events, ended)

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
    most, many = port_filter(range(1, MAX_FILTERED_PORTS + 1)), port_filter(range(1, 200))
    assert len(most) > len(many)
    assert many == port_filter([])  # every TCP segment, as with no port named
    assert run_filter(many, segment(destination=12345, payload=b"x")) == FRAME
    # Jumps are 8 bits: the longest program the filter names ports in still fits them.
    assert all(0 <= jump <= 255 for _code, true, false, _k in most for jump in (true, false))


@needs_capture
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


async def _while_paused(
    server: asyncio.Server,
    capture: Capture,
    ended: asyncio.Event,
    send: Callable[[asyncio.StreamWriter], Awaitable[None]],
) -> None:
    """Connects to ``server`` while ``capture`` watches its port, paused; ``send`` writes, then the capture
    resumes until ``ended``. Everything is closed, however it went."""
    port = server.sockets[0].getsockname()[1]
    capture.watch([port])
    capture.pause()
    writer: asyncio.StreamWriter | None = None
    try:
        assert capture.paused
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        await send(writer)
        capture.resume()
        await asyncio.wait_for(ended.wait(), 10)
    finally:
        capture.close()
        if writer is not None:
            writer.close()
        server.close()


@needs_capture
def test_a_paused_capture_leaves_what_comes_in_the_kernel_queue_until_resumed() -> None:
    async def scenario() -> None:
        events: list[Event] = []
        ended = asyncio.Event()
        server = await asyncio.start_server(serve, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        capture = Capture(CapturedConnections(lambda p: p == port), functools.partial(_hear, events, ended))
        assert capture.queued() is None  # not capturing

        async def send(writer: asyncio.StreamWriter) -> None:
            writer.write(b"y" * 100_000)
            writer.write_eof()
            await writer.drain()
            queued = await until(lambda: (capture.queued() or 0) > 100_000)
            assert queued, capture.queued()
            assert not events

        await _while_paused(server, capture, ended, send)
        assert b"".join(bytes(e.data) for e in events if isinstance(e, Data)) == b"y" * 100_000

    asyncio.run(asyncio.wait_for(scenario(), 30))


@needs_capture
def test_packets_read_together_are_handed_on_together_each_in_a_buffer_of_its_own() -> None:
    async def scenario() -> None:
        batches: list[list[bytes]] = []  # each call's data, read while the call lasts
        ended = asyncio.Event()

        def heard(batch: list[Event]) -> None:
            batches.append([bytes(event.data) for event in batch if isinstance(event, Data)])
            if any(isinstance(event, Closed) for event in batch):
                ended.set()

        received = asyncio.Event()

        async def count(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.readexactly(3000)
            received.set()
            await serve(reader, writer)

        async def send(writer: asyncio.StreamWriter) -> None:
            for letter in b"abc":  # three segments (asyncio's sockets send at once: TCP_NODELAY)
                writer.write(bytes([letter]) * 1000)
                await writer.drain()
            await asyncio.wait_for(received.wait(), 10)  # so the capture's queue holds all three
            writer.write_eof()

        server = await asyncio.start_server(count, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        await _while_paused(server, Capture(CapturedConnections(lambda p: p == port), heard), ended, send)
        assert b"".join(b"".join(batch) for batch in batches) == b"a" * 1000 + b"b" * 1000 + b"c" * 1000
        assert max(len(batch) for batch in batches) >= 2, batches

    asyncio.run(asyncio.wait_for(scenario(), 30))


@needs_capture
def test_a_capture_closed_by_what_its_events_did_reads_no_more(caplog: pytest.LogCaptureFixture) -> None:
    async def scenario() -> None:
        ended = asyncio.Event()
        calls: list[int] = []
        capture: Capture | None = None

        def heard(batch: list[Event]) -> None:
            calls.append(len(batch))
            assert capture is not None
            capture.close()  # what the owner does when its last watched port goes
            ended.set()

        async def send(writer: asyncio.StreamWriter) -> None:
            for letter in b"abcdefghij":  # more packets than one group
                writer.write(bytes([letter]) * 1000)
                await writer.drain()
            assert await until(lambda: capture is not None and (capture.queued() or 0) > 10_000)

        server = await asyncio.start_server(serve, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        capture = Capture(CapturedConnections(lambda p: p == port), heard)
        await _while_paused(server, capture, ended, send)
        assert calls == [calls[0]] and not capture.capturing

    with caplog.at_level(logging.WARNING, logger="pymirrord.agent.capture"):
        asyncio.run(asyncio.wait_for(scenario(), 30))
    assert not caplog.records, [record.getMessage() for record in caplog.records]
