"""The port-forward framing (sans-I/O), and the forwarder against the emulated API server.

The emulator's side is also checked with the official client's own port-forward (``kubernetes.stream``), so
both ends are known to speak the protocol a real API server speaks.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import socket
import threading
from collections.abc import Awaitable, Callable, Iterator

import pytest
from kubernetes import client as k8s
from kubernetes.stream import portforward

from pymirrord.kube.client import KubeApi
from pymirrord.kube.errors import Forbidden, PortForwardFailed
from pymirrord.kube.portforward import (
    Data,
    Endpoint,
    Failed,
    FramingError,
    Opened,
    PortForwarder,
    PortForwardStream,
)

from . import world
from .emulator import Emulator

PORT = 8080


def test_the_port_announcements_open_the_stream() -> None:
    stream = PortForwardStream(8080)
    assert stream.receive(b"\x00\x90\x1f") == []
    assert not stream.opened
    assert stream.receive(b"\x01\x90\x1f") == [Opened(8080)]
    assert stream.receive(b"\x00hello") == [Data(b"hello")]
    assert stream.encode(b"hi") == b"\x00hi"


def test_data_in_the_announcing_message_is_kept() -> None:
    stream = PortForwardStream(80)
    assert stream.receive(b"\x01\x50\x00") == []
    assert stream.receive(b"\x00\x50\x00abc") == [Opened(80), Data(b"abc")]


def test_errors_accumulate_on_the_error_channel() -> None:
    stream = PortForwardStream(80)
    stream.receive(b"\x00\x50\x00")
    stream.receive(b"\x01\x50\x00")
    assert stream.receive(b"\x01connection ") == [Failed("connection ")]
    assert stream.receive(b"\x01refused") == [Failed("connection refused")]
    assert stream.failed


@pytest.mark.parametrize(
    ("message", "error"),
    [
        (b"", "empty message"),
        (b"\x02\x50\x00", "channel 2"),
        (b"\x00\x50", "has 1 bytes, not a port"),
        (b"\x00\x51\x00", "announced port 81, expected 80"),
    ],
)
def test_malformed_messages(message: bytes, error: str) -> None:
    with pytest.raises(FramingError, match=error):
        PortForwardStream(80).receive(message)


# -- against the emulator ------------------------------------------------------------------------------


@pytest.fixture
def echo_server() -> Iterator[int]:
    """A TCP server on a free port that echoes and then closes when the client half-closes."""
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=_echo, args=(conn,), daemon=True).start()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        listener.close()
        thread.join(5)


def _echo(conn: socket.socket) -> None:
    with conn:
        while data := conn.recv(65536):
            conn.sendall(data)


@pytest.fixture
def target_pod(emulator: Emulator, echo_server: int) -> str:
    emulator.add(world.pod("echo-1"))
    emulator.forwarded[("default", "echo-1", PORT)] = ("127.0.0.1", echo_server)
    return "echo-1"


def test_the_official_client_talks_to_the_emulator(api: KubeApi, target_pod: str) -> None:
    core = k8s.CoreV1Api(api.api_client)
    forward = portforward(core.connect_get_namespaced_pod_portforward, target_pod, "default", ports=str(PORT))
    sock = forward.socket(PORT)
    sock.settimeout(10)
    sock.sendall(b"ping")
    assert sock.recv(100) == b"ping"
    sock.close()
    forward.close()


async def _through(forwarder: PortForwarder, payload: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", forwarder.local_port)
    received = bytearray()

    async def read() -> None:
        while len(received) < len(payload):
            chunk = await reader.read(65536)
            if not chunk:
                break
            received.extend(chunk)

    reading = asyncio.ensure_future(read())
    writer.write(payload)
    await writer.drain()
    await asyncio.wait_for(reading, 30)
    writer.close()
    return bytes(received)


def test_forwarded_connections_carry_bytes_both_ways(api: KubeApi, target_pod: str) -> None:
    async def scenario() -> None:
        forwarder = PortForwarder(Endpoint.from_configuration(api.configuration), "default", target_pod, PORT)
        await forwarder.start()
        try:
            await forwarder.probe()
            payload = os.urandom(3 * 1024 * 1024)
            results = await asyncio.gather(*(_through(forwarder, payload) for _ in range(3)))
            for result in results:
                assert hashlib.sha256(result).hexdigest() == hashlib.sha256(payload).hexdigest()
        finally:
            await forwarder.close()

    asyncio.run(scenario())


def test_nothing_listening_is_reported_with_the_servers_words(emulator: Emulator, api: KubeApi) -> None:
    emulator.add(world.pod("quiet-1"))

    async def scenario() -> None:
        forwarder = PortForwarder(Endpoint.from_configuration(api.configuration), "default", "quiet-1", 9999)
        with pytest.raises(PortForwardFailed) as caught:
            await forwarder.probe()
        assert "dial tcp4 127.0.0.1:9999: connect: connection refused" in caught.value.message
        assert caught.value.message.startswith(
            "port-forward to port 9999 of pod/quiet-1 failed: error forwarding"
        )

    asyncio.run(scenario())


def test_forbidden_port_forward(emulator: Emulator, api: KubeApi, target_pod: str) -> None:
    emulator.forbid("create", "pods/portforward", "default")

    async def scenario() -> None:
        forwarder = PortForwarder(Endpoint.from_configuration(api.configuration), "default", target_pod, PORT)
        with pytest.raises(Forbidden) as caught:
            await forwarder.probe()
        assert caught.value.message.startswith(
            f"not allowed to port-forward to port {PORT} of pod/{target_pod}"
        )
        assert "pods/portforward" in caught.value.hint

    asyncio.run(scenario())


def test_the_subprotocol_and_credentials_are_sent(emulator: Emulator, api: KubeApi, target_pod: str) -> None:
    endpoint = Endpoint.from_configuration(api.configuration)
    assert endpoint.headers == {"authorization": f"Bearer {emulator.token}"} or endpoint.headers == {
        "Authorization": f"Bearer {emulator.token}"
    }

    async def scenario() -> None:
        forwarder = PortForwarder(endpoint, "default", target_pod, PORT)
        await forwarder.probe()

    asyncio.run(scenario())
    assert emulator.portforwards[-1] == ("default", target_pod, (PORT,), "v4.channel.k8s.io")


# -- counted ends (the session's tunnels cross the port-forward) -------------------------------------------

WAIT = 15.0
"""Bound on each wait of the counted-ends scenarios."""

Peer = tuple[str, int]
Streams = tuple[asyncio.StreamReader, asyncio.StreamWriter]


class PodSide:
    """The pod's port, served in the test's own event loop: the test plays the agent on each connection
    the port-forward makes to it."""

    def __init__(self) -> None:
        self.accepted: asyncio.Queue[Streams] = asyncio.Queue()
        self._server: asyncio.Server | None = None

    async def start(self, emulator: Emulator, pod: str) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        emulator.add(world.pod(pod))
        emulator.forwarded[("default", pod, PORT)] = ("127.0.0.1", self._server.sockets[0].getsockname()[1])

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await self.accepted.put((reader, writer))

    async def next(self) -> Streams:
        return await asyncio.wait_for(self.accepted.get(), WAIT)

    def close(self) -> None:
        if self._server is not None:
            self._server.close()
        while not self.accepted.empty():
            self.accepted.get_nowait()[1].close()


class LocalEnds:
    """What ``count_ends`` is given: records the local ends it hears (answering ``counted``) and the local
    connections that are over."""

    def __init__(self, counted: bool) -> None:
        self.counted = counted
        self.heard: list[tuple[Peer, int]] = []
        self.ended = asyncio.Event()
        self.closed: list[Peer] = []
        self.over = asyncio.Event()

    def count(self, forwarder: PortForwarder) -> None:
        forwarder.count_ends(self.local_end, self.on_closed)

    def local_end(self, peer: Peer, sent: int) -> bool:
        self.heard.append((peer, sent))
        self.ended.set()
        return self.counted

    def on_closed(self, peer: Peer) -> None:
        self.closed.append(peer)
        self.over.set()


async def _connect(forwarder: PortForwarder) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, Peer]:
    """A local connection to the forwarder, and its address (how ``on_local_end`` names it)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", forwarder.local_port)
    sockname = writer.get_extra_info("sockname")
    return reader, writer, (str(sockname[0]), int(sockname[1]))


async def _send(writer: asyncio.StreamWriter, data: bytes) -> None:
    writer.write(data)
    await asyncio.wait_for(writer.drain(), WAIT)


async def _to_the_end(reader: asyncio.StreamReader) -> bytes:
    return await asyncio.wait_for(reader.read(), WAIT)


async def _exactly(reader: asyncio.StreamReader, size: int) -> bytes:
    return await asyncio.wait_for(reader.readexactly(size), WAIT)


def _with_forwarder(
    emulator: Emulator, api: KubeApi, body: Callable[[PortForwarder, PodSide], Awaitable[None]]
) -> None:
    """``body`` with a started forwarder to the port of pod ``counted-1``, and that port's far end."""

    async def scenario() -> None:
        pod = PodSide()
        await pod.start(emulator, "counted-1")
        endpoint = Endpoint.from_configuration(api.configuration)
        forwarder = PortForwarder(endpoint, "default", "counted-1", PORT)
        await forwarder.start()
        try:
            await body(forwarder, pod)
        finally:
            await forwarder.close()
            pod.close()

    asyncio.run(scenario())


@pytest.mark.parametrize("announced", ["ahead", "behind"])
def test_a_counted_local_end_leaves_the_other_way_open_until_its_own_end(
    emulator: Emulator, api: KubeApi, announced: str
) -> None:
    """The local connection sends N bytes and half-closes: ``on_local_end`` hears N and answers True, so
    the websocket stays open and the pod's bytes still reach the local connection, which reads its end of
    stream after exactly the ``total`` given to ``end_downstream`` (announced ``ahead`` of the last bytes,
    or ``behind`` them, once all have arrived), while the pod's end is still open."""

    async def body(forwarder: PortForwarder, pod: PodSide) -> None:
        ends = LocalEnds(counted=True)
        ends.count(forwarder)
        reader, writer, peer = await _connect(forwarder)
        pod_reader, pod_writer = await pod.next()
        first, second = os.urandom(1 << 20), os.urandom(12345)
        sent = first + second
        arriving = asyncio.ensure_future(_exactly(pod_reader, len(sent)))
        for part in (first, second):
            await _send(writer, part)
        writer.write_eof()
        assert await arriving == sent, "the local bytes reached the pod whole"
        await asyncio.wait_for(ends.ended.wait(), WAIT)
        assert ends.heard == [(peer, len(sent))], "the end is reported with every byte the connection sent"

        answer, tail = os.urandom(3 << 20), os.urandom(54321)
        total = len(answer) + len(tail)
        if announced == "ahead":
            forwarder.end_downstream(peer, total)
        arriving = asyncio.ensure_future(_exactly(reader, len(answer)))
        await _send(pod_writer, answer)
        assert await arriving == answer, "the pod's bytes still come after the local end"
        await _send(pod_writer, tail)
        if announced == "behind":
            assert await _exactly(reader, len(tail)) == tail
            forwarder.end_downstream(peer, total)
            assert await _to_the_end(reader) == b"", "the end comes at once: every byte passed already"
        else:
            assert await _to_the_end(reader) == tail, "the end comes after exactly the total announced"

        # The pod's end never saw the local end (no half-close crosses the port-forward); once it ends
        # too, the websocket closes, and nothing more came from the local side.
        assert not ends.closed, "the connection is not over while the pod's end is open"
        writer.close()
        pod_writer.write_eof()
        assert await _to_the_end(pod_reader) == b""
        pod_writer.close()
        await asyncio.wait_for(ends.over.wait(), WAIT)
        assert ends.closed == [peer], "the connection is over once the websocket closed"
        assert len(ends.heard) == 1

    _with_forwarder(emulator, api, body)


def test_bytes_past_the_announced_end_fail_the_connection(emulator: Emulator, api: KubeApi) -> None:
    async def body(forwarder: PortForwarder, pod: PodSide) -> None:
        LocalEnds(counted=True).count(forwarder)
        reader, writer, peer = await _connect(forwarder)
        pod_reader, pod_writer = await pod.next()
        forwarder.end_downstream(peer, 3)
        await _send(pod_writer, b"12345")
        received = await _to_the_end(reader)
        assert received in (b"", b"123"), "never a byte past the end"
        # The forwarder gives up on the stream: the websocket closes, so the pod's end is closed.
        assert await _to_the_end(pod_reader) == b""
        assert forwarder.last_error == "the agent sent past the end it announced"
        writer.close()
        pod_writer.close()

    _with_forwarder(emulator, api, body)


@pytest.mark.parametrize("counting", ["not-counted", "declined"])
def test_an_uncounted_local_end_closes_the_stream_as_before(
    emulator: Emulator, api: KubeApi, counting: str
) -> None:
    """Without ``count_ends``, or where ``on_local_end`` answers False (a connection that is no tunnel), a
    local end of stream ends the whole stream: the protocol has no half-close."""

    async def body(forwarder: PortForwarder, pod: PodSide) -> None:
        ends = LocalEnds(counted=False)
        if counting == "declined":
            ends.count(forwarder)
        reader, writer, peer = await _connect(forwarder)
        pod_reader, pod_writer = await pod.next()
        await _send(pod_writer, b"hello from the pod")
        assert await _exactly(reader, 18) == b"hello from the pod"
        payload = os.urandom(1 << 20)
        arriving = asyncio.ensure_future(_to_the_end(pod_reader))
        await _send(writer, payload)
        writer.write_eof()
        assert await arriving == payload, "the bytes, then the end of the whole stream"
        assert await _to_the_end(reader) == b"", "and the local connection is closed with it"
        assert ends.heard == ([(peer, len(payload))] if counting == "declined" else [])
        if counting == "declined":
            await asyncio.wait_for(ends.over.wait(), WAIT)
            assert ends.closed == [peer]
        writer.close()
        pod_writer.close()

    _with_forwarder(emulator, api, body)
