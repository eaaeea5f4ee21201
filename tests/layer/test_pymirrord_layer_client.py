from __future__ import annotations

import os
import socket
import threading

import pytest
from fake_session import FakeSession

from pymirrord.layer.pymirrord_layer_client import SessionClient, SessionUnavailable
from pymirrord.protocol import PROTOCOL_VERSION
from pymirrord.protocol import layer_to_session as to_session
from pymirrord.protocol.types import SocketAddress


def test_hello_then_listen_and_peer() -> None:
    with FakeSession() as session:
        client = SessionClient(session.path)
        try:
            client.connect()
            hello = session.wait_for(to_session.LayerHello)
            assert hello == to_session.LayerHello(PROTOCOL_VERSION, os.getpid(), os.getppid())
            assert client.listen(80, "127.0.0.1", 40000) is None
            assert session.wait_listen(80).address == SocketAddress("127.0.0.1", 40000)
            assert client.peer(12345) == (None, None, None)
            client.listen_closed(80, "127.0.0.1", 40000)
            closed = session.wait_for(to_session.ListenClosed, lambda m: m.port == 80)
            assert closed.address == SocketAddress("127.0.0.1", 40000)
        finally:
            client.close()


def test_listen_error_is_returned() -> None:
    with FakeSession() as session:
        session.listen_errors[80] = "the agent refused: port busy"
        client = SessionClient(session.path)
        try:
            assert client.listen(80, "127.0.0.1", 40000) == "the agent refused: port busy"
        finally:
            client.close()


def test_peer_answer_comes_from_the_session() -> None:
    with FakeSession() as session:
        client = SessionClient(session.path)
        listener = socket.create_server(("127.0.0.1", 0))
        try:
            address = SocketAddress("127.0.0.1", listener.getsockname()[1])
            with session.connect(address, SocketAddress("203.0.113.7", 5555), SocketAddress("10.0.0.2", 80)):
                conn, peer = listener.accept()
                conn.close()
                assert client.peer(peer[1]) == (("203.0.113.7", 5555), ("10.0.0.2", 80), None)
        finally:
            listener.close()
            client.close()


def test_unreachable_session_is_reported_once_and_not_retried() -> None:
    client = SessionClient("/nonexistent/pymirrord-session.sock")
    with pytest.raises(SessionUnavailable) as caught:
        client.connect()
    assert "cannot reach the session at /nonexistent/pymirrord-session.sock" in str(caught.value)
    # Later requests fail at once with the same reason instead of reconnecting per accept.
    assert client.listen(80, "127.0.0.1", 1) == str(caught.value)


def test_version_mismatch_is_refused() -> None:
    with FakeSession(protocol_version=PROTOCOL_VERSION + 1) as session:
        client = SessionClient(session.path)
        with pytest.raises(SessionUnavailable, match="protocol version"):
            client.connect()


def test_lost_session_is_an_error_not_a_hang() -> None:
    session = FakeSession()
    with session:
        client = SessionClient(session.path)
        client.connect()
    # The session has gone (and closed our connection): the request fails with a clear reason.
    error = client.listen(80, "127.0.0.1", 1)
    assert error is not None
    assert "session" in error


def test_requests_from_many_threads_stay_paired() -> None:
    with FakeSession() as session:
        client = SessionClient(session.path)
        errors: list[str | None] = []

        def listen(port: int) -> None:
            errors.append(client.listen(port, "127.0.0.1", port + 10000))

        threads = [threading.Thread(target=listen, args=(1000 + n,)) for n in range(20)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        client.close()
        assert errors == [None] * 20
        ports = {m.port: m.address.port for _c, m in session.messages(to_session.ListenRequest)}
        assert ports == {1000 + n: 11000 + n for n in range(20)}


def test_after_fork_the_child_opens_its_own_connection() -> None:
    with FakeSession() as session:
        client = SessionClient(session.path)
        client.connect()
        # What the child does, run here: forget the connection, then reconnect on the next request.
        client.after_fork_in_child()
        assert client.listen(80, "127.0.0.1", 1) is None
        hellos = session.messages(to_session.LayerHello)
        assert [connection for connection, _m in hellos] == [0, 1]
        assert session.messages(to_session.ListenRequest)[0][0] == 1
        client.close()
