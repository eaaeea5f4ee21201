"""A targetless agent for real: `pymirrord agent --targetless` as an unprivileged process, over its websocket.

It runs as user nobody with every capability dropped (as in an unprivileged pod), so it proves that a
targetless agent enters nothing, checks no privileges and touches no iptables. The test plays the session:
an outgoing TCP connection through the agent to an echo server on loopback, a lookup answered from the
agent's own ``/etc/hosts``, and a port subscription refused with the hint to pick a target.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager

import pytest
from netns_helpers import DEFAULT_TIMEOUT, Process, child_env
from websockets.sync.client import ClientConnection, connect

from pymirrord.protocol import PROTOCOL_VERSION
from pymirrord.protocol import agent_to_session as to_session
from pymirrord.protocol import session_to_agent as from_session
from pymirrord.protocol.outgoing_types import AddressFamily, SocketKind, Transport
from pymirrord.protocol.types import Mode, SocketAddress

TOKEN_ENV = "PYMIRRORD_AGENT_TOKEN"
NOBODY = 65534
UNPRIVILEGED = [
    "setpriv",
    f"--reuid={NOBODY}",
    f"--regid={NOBODY}",
    "--clear-groups",
    "--inh-caps=-all",
    "--bounding-set=-all",
    "--no-new-privs",
]


@pytest.fixture
def agent() -> Iterator[tuple[Process, str, str]]:
    """The targetless agent as nobody without capabilities: (process, websocket address, token)."""
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("running the agent as an unprivileged user needs root and setpriv")
    token = secrets.token_hex(16)
    argv = [*UNPRIVILEGED, sys.executable, "-m", "pymirrord", "agent", "--targetless"]
    process = Process([*argv, "--idle-timeout", "60"], env=child_env({TOKEN_ENV: token}))
    try:
        ready = json.loads(process.wait_ready(DEFAULT_TIMEOUT))
        assert ready["event"] == "ready"
        yield process, ready["address"], token
    finally:
        process.stop()


@contextmanager
def echo_server() -> Iterator[SocketAddress]:
    """A TCP server on loopback that echoes what it reads, then closes after the client's EOF."""
    listener = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with conn:
                while data := conn.recv(65536):
                    conn.sendall(data)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield SocketAddress("127.0.0.1", listener.getsockname()[1])
    finally:
        listener.shutdown(socket.SHUT_RDWR)
        listener.close()
        thread.join(DEFAULT_TIMEOUT)


class Session:
    def __init__(self, address: str, token: str) -> None:
        self._stack = ExitStack()
        self.ws: ClientConnection = self._stack.enter_context(
            connect(f"ws://{address}", additional_headers={"Authorization": f"Bearer {token}"}, proxy=None)
        )
        self.send(from_session.ClientHello(PROTOCOL_VERSION, "test", "targetless"))
        hello = self.next()
        assert isinstance(hello, to_session.AgentHello)
        self.hello = hello

    def send(self, message: from_session.SessionToAgent) -> None:
        self.ws.send(from_session.CODEC.encode(message))

    def next(self) -> to_session.AgentToSession:
        frame = self.ws.recv(timeout=DEFAULT_TIMEOUT)
        assert isinstance(frame, bytes)
        return to_session.CODEC.decode(frame)

    def expect(self, match: Callable[[to_session.AgentToSession], bool]) -> to_session.AgentToSession:
        while True:
            message = self.next()
            if match(message):
                return message

    def close(self) -> None:
        self._stack.close()


def test_targetless_agent_connects_out_resolves_and_refuses_ports(agent: tuple[Process, str, str]) -> None:
    process, address, token = agent
    session = Session(address, token)
    try:
        assert session.hello.target == "targetless"
        assert session.hello.handover_path is None

        # Outgoing TCP: the agent's own connection to a server on loopback, bytes both ways, half-close.
        with echo_server() as echo:
            session.send(from_session.OutgoingConnect(1, Transport.TCP, echo, 0, False))
            result = session.expect(lambda m: isinstance(m, to_session.OutgoingConnectResult))
            assert isinstance(result, to_session.OutgoingConnectResult)
            assert result.request_id == 1 and result.error == "", result.message
            connection = result.connection_id
            session.send(from_session.OutgoingWrite(connection, b"hello from the app"))
            session.send(from_session.OutgoingWrite(connection, b""))
            echoed = b""
            while True:
                message = session.expect(lambda m: getattr(m, "connection_id", None) == connection)
                if isinstance(message, to_session.OutgoingRead) and message.data:
                    echoed += message.data
                    continue
                break
            assert echoed == b"hello from the app"

        # DNS from the agent's own /etc: localhost is in every hosts file.
        lookup = from_session.DnsLookup(
            2, "localhost", 8080, AddressFamily.IPV4, SocketKind.STREAM, 0, False, False
        )
        session.send(lookup)
        answer = session.expect(lambda m: isinstance(m, to_session.DnsResult))
        assert isinstance(answer, to_session.DnsResult)
        assert answer.request_id == 2 and answer.error is None, answer.message
        assert {(info.host, info.port) for info in answer.addresses} == {("127.0.0.1", 8080)}

        # Incoming traffic is not what a targetless agent serves; the session hears why and what to do.
        session.send(from_session.PortSubscribe(8080, Mode.MIRROR, False))
        refused = session.expect(lambda m: isinstance(m, to_session.PortSubscribeResult))
        assert isinstance(refused, to_session.PortSubscribeResult)
        assert refused.error is not None
        assert "targetless" in refused.error and "pick a target" in refused.error
    finally:
        session.close()
    process.popen.send_signal(signal.SIGTERM)
    assert process.wait() == 0
