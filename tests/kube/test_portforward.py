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
from collections.abc import Iterator

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
