"""The socket patches, in this process, against a recording stand-in for the session connection."""

from __future__ import annotations

import _socket
import os
import socket
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from pymirrord.layer.pymirrord_layer_config import IncomingConfig
from pymirrord.layer.pymirrord_layer_hooks import Hooks, _Listener
from pymirrord.protocol.types import SHARED_SOURCE

Address = tuple[str, int]


@dataclass
class RecordingSession:
    listens: list[tuple[int, str, int]] = field(default_factory=list)
    closed: list[int] = field(default_factory=list)
    queries: list[int] = field(default_factory=list)
    handed: dict[int, int] = field(default_factory=dict)  # peer port -> descriptor handed over
    listen_error: str | None = None
    peers: dict[int, tuple[Address | None, Address | None]] = field(default_factory=dict)

    def listen(self, port: int, host: str, real_port: int) -> str | None:
        self.listens.append((port, host, real_port))
        return self.listen_error

    def listen_closed(self, port: int, host: str, real_port: int) -> None:
        assert (port, host, real_port) in self.listens, "the listener that closes is one that listened"
        self.closed.append(port)

    def peer(self, port: int) -> tuple[Address | None, Address | None, int | None]:
        self.queries.append(port)
        client, local = self.peers.get(port, (None, None))
        return client, local, self.handed.pop(port, None)


@pytest.fixture
def session() -> RecordingSession:
    return RecordingSession()


def hooked(session: RecordingSession, **incoming: object) -> Iterator[Hooks]:
    hooks = Hooks(IncomingConfig(**incoming), session)  # type: ignore[arg-type]
    hooks.install()
    try:
        yield hooks
    finally:
        hooks.uninstall()


@pytest.fixture
def hooks(session: RecordingSession) -> Iterator[Hooks]:
    yield from hooked(session)


def real_address(sock: socket.socket) -> Address:
    address: Address = _socket.socket.getsockname(sock)[:2]
    return address


def test_bind_80_really_binds_a_free_loopback_port_and_shows_80(
    hooks: Hooks, session: RecordingSession
) -> None:
    with socket.socket() as sock:
        sock.bind(("", 80))
        assert sock.getsockname() == ("0.0.0.0", 80)
        host, port = real_address(sock)
        assert host == "127.0.0.1"
        assert port not in (0, 80)
        sock.listen()
        assert session.listens == [(80, "127.0.0.1", port)]
        sock.listen(5)
        assert len(session.listens) == 1, "listening again must not subscribe again"
    assert session.closed == [80]


def test_requested_host_is_shown_resolved(hooks: Hooks) -> None:
    with socket.socket() as sock:
        sock.bind(("localhost", 8080))
        assert sock.getsockname() == ("127.0.0.1", 8080)
    with socket.socket() as sock:
        sock.bind(("10.20.30.40", 8080))
        assert sock.getsockname() == ("10.20.30.40", 8080)


def test_ipv6_listener(hooks: Hooks, session: RecordingSession) -> None:
    with socket.socket(socket.AF_INET6) as sock:
        sock.bind(("::", 80))
        assert sock.getsockname() == ("::", 80, 0, 0)
        assert real_address(sock)[0] == "::1"
        sock.listen()
        assert session.listens[0][:2] == (80, "::1")


def test_port_zero_udp_and_unix_are_left_alone(hooks: Hooks, session: RecordingSession) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        assert sock.getsockname() == real_address(sock)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        udp.bind(("127.0.0.1", 0))
    assert session.listens == []
    assert not hooks.states


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.mark.parametrize(
    ("incoming", "host", "served"),
    [
        ({"mode": "off"}, "127.0.0.1", False),
        ({"ignore_ports": "PORT"}, "127.0.0.1", False),
        ({"ports": "OTHER"}, "127.0.0.1", False),
        ({"ports": "PORT"}, "127.0.0.1", True),
        ({"ignore_localhost": True}, "127.0.0.1", False),
        ({"ignore_localhost": True}, "localhost", False),
        ({"ignore_localhost": True}, "0.0.0.0", True),
    ],
)
def test_settings_decide_which_binds_are_served(
    session: RecordingSession, incoming: dict[str, object], host: str, served: bool
) -> None:
    # A free port stands for the app's port, so an unserved bind really binds it without a conflict.
    port = free_port()
    sets = {"PORT": frozenset({port}), "OTHER": frozenset({port + 1})}
    settings = {
        key: sets.get(value, value) if isinstance(value, str) else value for key, value in incoming.items()
    }
    for _hooks in hooked(session, **settings):
        with socket.socket() as sock:
            sock.bind((host, port))
            sock.listen()
            if served:
                assert real_address(sock)[1] != port
                assert session.listens == [(port, "127.0.0.1", real_address(sock)[1])]
            else:
                assert real_address(sock) == ("127.0.0.1", port)
                assert session.listens == []


def test_port_mapping_and_listen_ports(session: RecordingSession) -> None:
    free = free_port()
    for _hooks in hooked(session, port_mapping={8080: 80}, listen_ports={8080: free}):
        with socket.socket() as sock:
            sock.bind(("0.0.0.0", 8080))
            assert real_address(sock) == ("127.0.0.1", free)
            assert sock.getsockname() == ("0.0.0.0", 8080)
            sock.listen()
        assert session.listens == [(80, "127.0.0.1", free)]
        assert session.closed == [80]


def test_listen_error_keeps_the_local_listener(
    hooks: Hooks, session: RecordingSession, capsys: pytest.CaptureFixture[str]
) -> None:
    session.listen_error = "the agent refused"
    with socket.socket() as sock:
        sock.bind(("", 80))
        sock.listen()
        with socket.create_connection(real_address(sock)):
            conn, _peer = sock.accept()
            conn.close()
    assert capsys.readouterr().err == "pymirrord: port 80 not served: the agent refused\n"
    assert session.queries == [], "an unserved listener asks nobody about its peers"
    assert session.closed == [], "nothing to unsubscribe"


def test_accept_shows_the_original_client(hooks: Hooks, session: RecordingSession) -> None:
    with socket.socket() as listener:
        listener.bind(("0.0.0.0", 80))
        listener.listen()
        with socket.socket() as client:
            client.bind(("127.0.0.1", 0))
            session.peers[client.getsockname()[1]] = (("203.0.113.7", 4242), ("10.0.0.5", 80))
            client.connect(real_address(listener))
            conn, peer = listener.accept()
            with conn:
                assert peer == ("203.0.113.7", 4242)
                assert conn.getpeername() == ("203.0.113.7", 4242)
                assert conn.getsockname() == ("10.0.0.5", 80)
            assert session.queries == [client.getsockname()[1]]
            with pytest.raises(OSError):
                conn.getpeername()


def test_a_handed_over_socket_replaces_the_accepted_placeholder(
    hooks: Hooks, session: RecordingSession
) -> None:
    with socket.create_server(("127.0.0.1", 0)) as elsewhere, socket.socket() as listener:
        # The "real client" connection, whose server end is what a local agent would hand over.
        real_client = socket.create_connection(elsewhere.getsockname())
        real_server_end, _ = elsewhere.accept()
        listener.bind(("0.0.0.0", 80))
        listener.listen()
        listener.settimeout(5)  # the app's own mode: the handed socket must take it, not the sender's
        with socket.socket() as placeholder, real_client:
            placeholder.bind(("127.0.0.1", 0))
            session.peers[placeholder.getsockname()[1]] = (("203.0.113.7", 4242), ("10.0.0.5", 80))
            real_server_end.setblocking(False)
            session.handed[placeholder.getsockname()[1]] = os.dup(real_server_end.fileno())
            real_server_end.close()
            placeholder.connect(real_address(listener))
            conn, peer = listener.accept()
            with conn:
                assert peer == ("203.0.113.7", 4242)
                real_client.sendall(b"straight from the client")
                assert conn.recv(100) == b"straight from the client", "a blocking recv: the app's mode"
                conn.sendall(b"straight back")
                assert real_client.recv(100) == b"straight back"
                assert conn.get_inheritable() is False
            assert placeholder.recv(1) == b"", "the placeholder's connection closed when it was replaced"


def test_ipv6_listener_shows_ipv4_clients_mapped(hooks: Hooks, session: RecordingSession) -> None:
    with socket.socket(socket.AF_INET6) as listener:
        listener.bind(("::", 80))
        listener.listen()
        with socket.socket(socket.AF_INET6) as client:
            client.bind(("::1", 0))
            session.peers[client.getsockname()[1]] = (("203.0.113.7", 4242), ("10.0.0.5", 80))
            client.connect(real_address(listener))
            conn, peer = listener.accept()
            with conn:
                assert peer == ("::ffff:203.0.113.7", 4242, 0, 0)
                assert conn.getsockname() == ("::ffff:10.0.0.5", 80, 0, 0)


def test_local_clients_keep_their_real_address(hooks: Hooks, session: RecordingSession) -> None:
    with socket.socket() as listener:
        listener.bind(("0.0.0.0", 80))
        listener.listen()
        with socket.create_connection(real_address(listener)) as client:
            conn, peer = listener.accept()
            with conn:
                assert peer == client.getsockname()
                assert conn.getpeername() == client.getsockname()
                assert conn.getsockname() == real_address(listener)


def test_connections_from_the_shared_source_are_not_asked_about(
    hooks: Hooks, session: RecordingSession
) -> None:
    with socket.socket() as listener:
        listener.bind(("0.0.0.0", 80))
        listener.listen()
        with socket.socket() as client:
            client.bind((SHARED_SOURCE, 0))
            client.connect(real_address(listener))
            conn, peer = listener.accept()
            conn.close()
            assert peer == client.getsockname()
    assert session.queries == [], "a connection carrying many clients' requests has no one peer to ask for"


def test_a_failing_peer_query_keeps_the_real_peer(
    hooks: Hooks, session: RecordingSession, capsys: pytest.CaptureFixture[str]
) -> None:
    def broken(port: int) -> tuple[Address | None, Address | None, int | None]:
        raise OSError("session gone")

    session.peer = broken  # type: ignore[method-assign]
    with socket.socket() as listener:
        listener.bind(("0.0.0.0", 80))
        listener.listen()
        with socket.create_connection(real_address(listener)) as client:
            conn, peer = listener.accept()
            conn.close()
            assert peer == client.getsockname()
    assert capsys.readouterr().err.startswith("pymirrord: cannot learn the original client")


def test_uninstall_restores_the_class(session: RecordingSession) -> None:
    before = {name: socket.socket.__dict__.get(name) for name in ("bind", "accept", "close")}
    hooks = Hooks(IncomingConfig(), session)
    hooks.install()
    assert socket.socket.bind is not _socket.socket.bind
    hooks.uninstall()
    assert socket.socket.bind is _socket.socket.bind
    assert {name: socket.socket.__dict__.get(name) for name in ("bind", "accept", "close")} == before


def test_a_forked_child_closing_an_inherited_listener_does_not_unsubscribe(
    hooks: Hooks, session: RecordingSession
) -> None:
    with socket.socket() as sock:
        sock.bind(("", 80))
        sock.listen()
        state = hooks.states[sock]
        assert isinstance(state, _Listener)
        state.owner_pid = -1  # as seen from a forked child
    assert session.closed == []
