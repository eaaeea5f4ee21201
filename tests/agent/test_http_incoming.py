"""A filtered connection's requests, over loopback sockets: an agent's ``HttpIncoming`` between a client, a
pod's app and a session's app connection, each a real socket in this process's loop."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import cast

from pymirrord.agent.http_incoming import HttpIncoming, Sink
from pymirrord.agent.subscriptions import Subscriptions
from pymirrord.http1 import NEED_DATA, End, FramingError, RequestHead, RequestReader
from pymirrord.protocol import agent_to_session as to_session
from pymirrord.protocol.http_types import HttpFilterSpec
from pymirrord.protocol.types import Mode, SocketAddress
from pymirrord.streams import open_stream

PORT = 80
SESSION = 1
TIMEOUT = 10
Answer = Callable[[str, int], bytes | None]
"""What an upstream answers (target, the request's number on its connection from 1); None: it closes
the connection instead."""


def _ok(body: bytes) -> bytes:
    return b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n%s" % (len(body), body)


def _named(name: str) -> Answer:
    return lambda target, _nth: _ok(f"{name}:{target}".encode())


@dataclass
class _Upstream:
    """An app that answers what ``answer`` says; bytes that are not HTTP are kept in ``not_http``."""

    name: str
    answer: Answer
    connections: int = 0
    not_http: bytearray = field(default_factory=bytearray)
    closed: asyncio.Event = field(default_factory=asyncio.Event)
    """Set when a connection of it saw its peer's end."""

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        requests = RequestReader()
        nth = 0
        head: RequestHead | None = None
        try:
            while True:
                try:
                    event = requests.next_event()
                except FramingError:
                    self.not_http += requests.take_buffered()
                    writer.write(b"not http seen")
                    return
                if event is NEED_DATA:
                    data = await reader.read(65536)
                    if not data:
                        self.closed.set()
                        return
                    requests.feed(data)
                elif isinstance(event, RequestHead):
                    head = event
                    nth += 1
                elif isinstance(event, End):
                    assert head is not None
                    answer = self.answer(head.target, nth)
                    if answer is None:
                        return
                    writer.write(answer)
                    await writer.drain()
        finally:
            writer.close()


class _Sink:
    """A session's outbox: its messages, decoded."""

    def __init__(self) -> None:
        self.messages: list[to_session.AgentToSession] = []
        self.arrived = asyncio.Event()

    def put(self, frame: bytes) -> None:
        self.messages.append(to_session.CODEC.decode(frame))
        self.arrived.set()

    def offer(self, frame: bytes) -> bool:
        self.put(frame)
        return True

    async def wait_writable(self) -> None:
        return None

    async def next_start(self) -> to_session.HttpRequestStart:
        while True:
            for message in self.messages:
                if isinstance(message, to_session.HttpRequestStart):
                    self.messages.remove(message)
                    return message
            self.arrived.clear()
            await self.arrived.wait()


@dataclass
class _Agent:
    owner: HttpIncoming
    sink: _Sink
    pod: _Upstream
    app: _Upstream
    servers: list[asyncio.Server]

    async def hand_app_connection(self, address: tuple[str, int]) -> None:
        """The session hands over one connection to its app (as its first tunnel does)."""
        sock = socket.create_connection(address)
        self.owner.app_socket(SESSION, PORT, sock, unasked=True)
        await asyncio.gather(*self.owner._adopting)

    @asynccontextmanager
    async def client(
        self, *, agent_sndbuf: int = 0
    ) -> AsyncIterator[tuple[asyncio.StreamReader, asyncio.StreamWriter, asyncio.Task[None]]]:
        """A client connection the agent serves; ``agent_sndbuf``: the agent's side sends little at once."""
        agents_side, clients_side = socket.socketpair()
        if agent_sndbuf:
            agents_side.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, agent_sndbuf)
        reader, writer = await open_stream(agents_side, 65536)
        serving = asyncio.ensure_future(
            self.owner.serve(
                reader, writer, SocketAddress("10.0.0.2", 40000), SocketAddress("10.0.0.1", PORT)
            )
        )
        client_reader, client_writer = await asyncio.open_connection(sock=clients_side)
        try:
            yield client_reader, client_writer, serving
        finally:
            client_writer.close()
            serving.cancel()
            await asyncio.gather(serving, return_exceptions=True)
            writer.close()


@asynccontextmanager
async def _agent(pod_answer: Answer, app_answer: Answer) -> AsyncIterator[_Agent]:
    """An agent whose session steals what carries ``x-user: me``; everything else is the pod's."""
    pod = _Upstream("pod", pod_answer)
    app = _Upstream("app", app_answer)
    pod_server = await asyncio.start_server(pod.serve, "127.0.0.1", 0)
    app_server = await asyncio.start_server(app.serve, "127.0.0.1", 0)
    pod_address = pod_server.sockets[0].getsockname()

    async def connect(_destination: SocketAddress) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        return await open_stream(socket.create_connection(pod_address), 65536)

    subscriptions = Subscriptions()
    outcome = subscriptions.subscribe(
        SESSION, PORT, Mode.STEAL, http_filter=HttpFilterSpec(header="^x-user: me$")
    )
    assert outcome.error is None
    sink = _Sink()
    owner = HttpIncoming(subscriptions, cast(dict[int, Sink], {SESSION: sink}), connect, 65536)
    owner.has_channel = lambda _session: True
    agent = _Agent(owner, sink, pod, app, [pod_server, app_server])
    await agent.hand_app_connection(app_server.sockets[0].getsockname())
    try:
        yield agent
    finally:
        owner.session_gone(SESSION)
        for server in agent.servers:
            server.close()


def _request(target: str, *, mine: bool) -> bytes:
    user = b"me" if mine else b"someone"
    return b"GET %s HTTP/1.1\r\nhost: a\r\nx-user: %s\r\n\r\n" % (target.encode(), user)


async def _answer(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
    return await reader.readexactly(length)


def _run(scenario: Callable[[], object]) -> None:
    async def bounded() -> None:
        await asyncio.wait_for(cast(asyncio.Future[None], scenario()), TIMEOUT)

    asyncio.run(bounded())


def test_pipelined_requests_are_answered_in_order_each_by_whom_it_matched() -> None:
    """Twenty requests in one write, alternating between the session's app connection and the pod's: the
    answers come back in the order asked, over one connection to each."""

    async def scenario() -> None:
        async with _agent(_named("pod"), _named("app")) as agent, agent.client() as (reader, writer, _):
            writer.write(b"".join(_request(f"/{n}", mine=n % 2 == 1) for n in range(20)))
            for n in range(20):
                assert await _answer(reader) == (f"app:/{n}" if n % 2 else f"pod:/{n}").encode()
            assert (agent.pod.connections, agent.app.connections) == (1, 1)

    _run(scenario)


def test_an_upstream_that_closed_its_kept_connection_meanwhile_gets_the_request_again() -> None:
    """The pod's app closes as the second request on its connection arrives: that request goes out again
    on a new connection. The app's connection does the same: that request goes through the session."""

    def pod_answer(target: str, nth: int) -> bytes | None:
        return None if nth == 2 else _ok(f"pod:{target}".encode())

    async def scenario() -> None:
        async with (
            _agent(pod_answer, lambda _target, _nth: None) as agent,
            agent.client() as (reader, writer, _),
        ):
            writer.write(_request("/first", mine=False))
            assert await _answer(reader) == b"pod:/first"
            writer.write(_request("/again", mine=False))
            assert await _answer(reader) == b"pod:/again"
            assert agent.pod.connections == 2

            writer.write(_request("/mine", mine=True))
            start = await agent.sink.next_start()
            assert start.target == "/mine"
            await agent.owner.response_data(SESSION, start.request_id, _ok(b"through the session"))
            agent.owner.response_end(SESSION, start.request_id)
            assert await _answer(reader) == b"through the session"

    _run(scenario)


def test_an_answer_the_client_takes_slowly_arrives_whole_before_the_next() -> None:
    """16 MiB cannot leave at once through a small send buffer: it is relayed as the client takes it,
    whole, and the request sent behind it is answered after it."""
    big = bytes(range(256)) * (16 * 4096)

    def pod_answer(target: str, _nth: int) -> bytes:
        return _ok(big if target == "/big" else b"small")

    async def scenario() -> None:
        async with (
            _agent(pod_answer, _named("app")) as agent,
            agent.client(agent_sndbuf=8192) as (reader, writer, _),
        ):
            writer.write(_request("/big", mine=False) + _request("/after", mine=False))
            assert await _answer(reader) == big
            assert await _answer(reader) == b"small"

    _run(scenario)


def test_bytes_that_are_not_http_after_requests_reach_the_pod_as_they_are() -> None:
    async def scenario() -> None:
        async with _agent(_named("pod"), _named("app")) as agent, agent.client() as (reader, writer, serving):
            writer.write(_request("/one", mine=False))
            assert await _answer(reader) == b"pod:/one"
            writer.write(_request("/two", mine=False))
            assert await _answer(reader) == b"pod:/two"
            writer.write(b"\x16\x03\x01 not http\r\n\r\n")
            assert await reader.read() == b"not http seen"
            writer.close()  # the tunnel lasts until both sides are done
            await serving
            assert agent.pod.not_http == b"\x16\x03\x01 not http\r\n\r\n"

    _run(scenario)


def test_a_connection_stopped_while_the_app_answers_closes_that_app_connection() -> None:
    """The agent stops (its connection's task is cancelled) while a request waits on a session's app: the
    app's connection is closed, not kept with an answer still to come."""
    arrived = asyncio.Event()

    def silent(_target: str, _nth: int) -> bytes | None:
        arrived.set()
        return b""  # answers nothing, and keeps the connection

    async def scenario() -> None:
        async with _agent(_named("pod"), silent) as agent, agent.client() as (_reader, writer, serving):
            writer.write(_request("/mine", mine=True))
            await arrived.wait()
            serving.cancel()
            await asyncio.gather(serving, return_exceptions=True)
            await agent.app.closed.wait()

    _run(scenario)
