"""The h2c shell's fan-out of copies to mirroring sessions, with sessions and sockets played in memory."""

from __future__ import annotations

import asyncio
from typing import cast

import h2.config
import h2.connection
import h2.events

from pymirrord.agent.h2_incoming import _H2Connection
from pymirrord.agent.http_incoming import HttpIncoming, Sink
from pymirrord.agent.subscriptions import Subscriptions
from pymirrord.protocol import agent_to_session as to_session
from pymirrord.protocol.http_types import HttpFilterSpec
from pymirrord.protocol.types import Mode, SocketAddress

PORT = 80


class _Sink:
    """A session's outbox that accepts ``room`` offered frames, then refuses (the session lags)."""

    def __init__(self, room: int = 1_000_000) -> None:
        self.room = room
        self.messages: list[to_session.AgentToSession] = []

    def put(self, frame: bytes) -> None:
        self.messages.append(to_session.CODEC.decode(frame))

    def offer(self, frame: bytes) -> bool:
        if self.room <= 0:
            return False
        self.room -= 1
        self.put(frame)
        return True

    async def wait_writable(self) -> None:
        return None


class _Writer:
    def __init__(self) -> None:
        self.data = bytearray()

    def write(self, data: bytes) -> None:
        self.data += data

    def is_closing(self) -> bool:
        return False


async def _unreachable(_address: SocketAddress) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    raise AssertionError("the test feeds the shell itself")


def _shell(sinks: dict[int, _Sink], modes: dict[int, Mode]) -> tuple[_H2Connection, _Writer]:
    """A shell for one client connection whose sessions filter on ``x-user: me``."""
    subscriptions = Subscriptions()
    for session, mode in modes.items():
        outcome = subscriptions.subscribe(
            session, PORT, mode, http_filter=HttpFilterSpec(header="^x-user: me$")
        )
        assert outcome.error is None
    owner = HttpIncoming(subscriptions, cast(dict[int, Sink], sinks), _unreachable, 65536)
    client = SocketAddress("10.0.0.2", 40000)
    shell = _H2Connection(
        owner,
        cast(asyncio.StreamReader, None),
        cast(asyncio.StreamWriter, _Writer()),
        client,
        SocketAddress("10.0.0.1", PORT),
    )
    pod_writer = _Writer()
    shell.pod = (cast(asyncio.StreamReader, None), cast(asyncio.StreamWriter, pod_writer))
    return shell, pod_writer


def _client() -> h2.connection.H2Connection:
    client = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding=None))
    client.initiate_connection()
    return client


def _headers(user: bytes, path: bytes) -> list[tuple[bytes, bytes]]:
    return [
        (b":method", b"POST"),
        (b":path", path),
        (b":scheme", b"http"),
        (b":authority", b"a"),
        (b"x-user", user),
    ]


def _feed(shell: _H2Connection, client: h2.connection.H2Connection) -> None:
    shell.router.receive_client(client.data_to_send())
    shell.write_out()


def _pod_paths(pod_writer: _Writer) -> list[bytes]:
    pod = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False, header_encoding=None))
    pod.initiate_connection()
    events = pod.receive_data(bytes(pod_writer.data))
    return [dict(e.headers or [])[b":path"] for e in events if isinstance(e, h2.events.RequestReceived)]


def test_each_mirroring_session_gets_a_copy_and_a_lagging_one_loses_it() -> None:
    keeping, lagging = _Sink(), _Sink(room=2)  # the lagging one takes the start and one body chunk
    shell, pod_writer = _shell({1: keeping, 2: lagging}, {1: Mode.MIRROR, 2: Mode.MIRROR})
    client = _client()
    client.send_headers(1, _headers(b"me", b"/mine"))
    client.send_headers(3, _headers(b"other", b"/theirs"), end_stream=True)
    _feed(shell, client)
    for piece in (b"a", b"b", b"c"):
        client.send_data(1, piece)
        _feed(shell, client)
    client.end_stream(1)
    _feed(shell, client)
    assert _pod_paths(pod_writer) == [b"/mine", b"/theirs"], "the pod serves every stream"
    kinds = [type(m) for m in keeping.messages]
    assert kinds == [to_session.HttpRequestStart] + [to_session.HttpRequestBody] * 4 + [
        to_session.HttpRequestEnd
    ]
    start = keeping.messages[0]
    assert isinstance(start, to_session.HttpRequestStart)
    assert (start.mode, start.method, start.target, start.port) == (Mode.MIRROR, "POST", "/mine", PORT)
    assert start.head.startswith(b"POST /mine HTTP/1.1\r\n")
    assert start.matched == "header_filter"
    assert all(getattr(m, "request_id", None) == start.request_id for m in keeping.messages)
    abort = lagging.messages[-1]
    assert isinstance(abort, to_session.HttpRequestAbort) and abort.reason == "the session fell behind"
    assert [type(m) for m in lagging.messages] == [
        to_session.HttpRequestStart,
        to_session.HttpRequestBody,
        to_session.HttpRequestAbort,
    ]
    assert shell.copies == {}


def test_when_no_session_takes_a_copy_the_router_stops_making_it() -> None:
    lagging = _Sink(room=0)
    shell, pod_writer = _shell({1: lagging}, {1: Mode.MIRROR})
    client = _client()
    client.send_headers(1, _headers(b"me", b"/mine"))
    _feed(shell, client)
    assert lagging.messages == [] and shell.copies == {}
    client.send_data(1, b"body", end_stream=True)
    shell.router.receive_client(client.data_to_send())
    assert shell.router.events == [], "no copy is framed for nobody"
    assert _pod_paths(pod_writer) == [b"/mine"]


def test_a_stolen_stream_is_copied_to_the_mirroring_session() -> None:
    stealing, mirroring = _Sink(), _Sink()
    shell, pod_writer = _shell({1: stealing, 2: mirroring}, {1: Mode.STEAL, 2: Mode.MIRROR})
    client = _client()
    client.send_headers(1, _headers(b"me", b"/mine"), end_stream=True)
    _feed(shell, client)
    assert _pod_paths(pod_writer) == []
    for sink, mode in ((stealing, Mode.STEAL), (mirroring, Mode.MIRROR)):
        start = sink.messages[0]
        assert isinstance(start, to_session.HttpRequestStart) and start.mode is mode
        assert isinstance(sink.messages[-1], to_session.HttpRequestEnd)


def test_a_reset_stream_aborts_its_copies() -> None:
    mirroring = _Sink()
    shell, _ = _shell({1: mirroring}, {1: Mode.MIRROR})
    client = _client()
    client.send_headers(1, _headers(b"me", b"/mine"))
    client.send_data(1, b"part")
    _feed(shell, client)
    client.reset_stream(1)
    _feed(shell, client)
    start, abort = mirroring.messages[0], mirroring.messages[-1]
    assert isinstance(start, to_session.HttpRequestStart) and isinstance(abort, to_session.HttpRequestAbort)
    assert abort.request_id == start.request_id
    assert shell.copies == {}


def test_a_request_http1_cannot_carry_leaves_no_copy_behind() -> None:
    mirroring = _Sink()
    shell, pod_writer = _shell({1: mirroring}, {1: Mode.MIRROR})
    client = _client()
    client.send_headers(1, _headers(b"me", b"/a b"), end_stream=True)  # h2 lets a space into :path
    _feed(shell, client)
    assert mirroring.messages == [] and shell.copies == {}
    assert _pod_paths(pod_writer) == [b"/a b"]
