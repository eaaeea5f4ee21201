"""The session with a fake agent link and real sockets: its observer hooks, its flow control to slow apps."""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any, cast

from pymirrord.protocol import PROTOCOL_VERSION
from pymirrord.protocol import agent_to_session as from_agent
from pymirrord.protocol import layer_to_session as to_session
from pymirrord.protocol import session_to_agent as to_agent
from pymirrord.protocol.framing import frame
from pymirrord.protocol.types import Mode, SocketAddress
from pymirrord.session.agent_link import AgentLink
from pymirrord.session.session import ConnectionEvent, RequestEvent, Session, SessionEvent, SessionObserver
from pymirrord.session.state import Listener, ListenerState

CLIENT = SocketAddress("10.0.0.9", 40000)
LOCAL = SocketAddress("10.0.0.2", 80)


class FakeLink:
    def __init__(self) -> None:
        self.hello = from_agent.AgentHello(PROTOCOL_VERSION, "test", "netns/x", None, "")
        self.inbox: asyncio.Queue[from_agent.AgentToSession | None] = asyncio.Queue()
        self.sent: list[Any] = []
        self.changed = asyncio.Event()
        self.report_traffic = False

    async def send(self, message: Any) -> None:
        self.sent.append(message)
        self.changed.set()

    async def wait_sent(self, message: Any) -> None:
        while message not in self.sent:
            self.changed.clear()
            await asyncio.wait_for(self.changed.wait(), 10)

    async def messages(self) -> AsyncIterator[from_agent.AgentToSession]:
        while (message := await self.inbox.get()) is not None:
            yield message

    async def close(self) -> None:
        self.inbox.put_nowait(None)


class Recorder(SessionObserver):
    def __init__(self) -> None:
        self.seen: list[object] = []
        self.changed = asyncio.Event()

    def layer_connected(self, pid: int, parent_pid: int) -> None:
        self._note(("connected", pid, parent_pid))

    def layer_gone(self, pid: int) -> None:
        self._note(("gone", pid))

    def connection(self, event: ConnectionEvent) -> None:
        self._note(event)

    def request(self, event: RequestEvent) -> None:
        self._note(event)

    def requests_served(self, count: int, last: Sequence[RequestEvent]) -> None:
        self._note(("served", count, list(last)))

    def requests_seen(self, count: int, last: Sequence[tuple[int, str, str]]) -> None:
        self._note(("seen", count, list(last)))

    def _note(self, item: object) -> None:
        self.seen.append(item)
        self.changed.set()

    async def wait_for(self, count: int) -> None:
        while len(self.seen) < count:
            self.changed.clear()
            await asyncio.wait_for(self.changed.wait(), 10)


def test_the_observer_hears_of_layers_connections_and_requests(tmp_path: Path) -> None:
    async def scenario() -> None:
        link = FakeLink()
        observer = Recorder()
        socket_path = str(tmp_path / "layer.sock")
        session = Session(
            cast(AgentLink, link), Mode.STEAL, socket_path, lambda event: None, observer=observer
        )
        await session.start()
        try:
            reader, writer = await asyncio.open_unix_connection(socket_path)
            writer.write(frame(to_session.CODEC.encode(to_session.LayerHello(PROTOCOL_VERSION, 4242, 1))))
            await observer.wait_for(1)
            assert observer.seen == [("connected", 4242, 1)]

            link.inbox.put_nowait(from_agent.NewConnection(7, 80, Mode.STEAL, CLIENT, LOCAL, False))
            link.inbox.put_nowait(from_agent.ConnectionRead(7, b"GET / HTTP/1.1\r\n\r\n"))
            link.inbox.put_nowait(from_agent.ConnectionClosed(7, ""))
            start = from_agent.HttpRequestStart(
                3, 8080, Mode.STEAL, CLIENT, LOCAL, "GET", "/api", "path", b""
            )
            link.inbox.put_nowait(start)
            # Requests the agent wrote to the app's tunnels itself: 40 of them, the last two described.
            described = tuple(
                from_agent.ServedRequest(n, 8080, CLIENT, "GET", f"/{n}", "header_filter") for n in (9, 10)
            )
            link.inbox.put_nowait(from_agent.HttpRequestsServed(40, described))
            # The traffic of a connection the agent relayed straight to the app: counted as if it passed.
            traffic = (from_agent.ConnectionTraffic(7, 300, 40),)
            seen = (from_agent.SeenRequest(7, "GET", "/seen"),)
            link.inbox.put_nowait(from_agent.TrafficReport(traffic, 3, seen))
            await observer.wait_for(7)
            assert observer.seen[6] == ("seen", 3, [(7, "GET", "/seen")])
            counters = session.state.counters
            assert (counters.bytes_in, counters.bytes_out) == (300, 40)
            assert observer.seen[1:6] == [
                ConnectionEvent("opened", 7, 80, Mode.STEAL, CLIENT),
                ConnectionEvent("data", 7, data=b"GET / HTTP/1.1\r\n\r\n"),
                ConnectionEvent("closed", 7),
                RequestEvent(3, 8080, Mode.STEAL, CLIENT, "GET", "/api", "path"),
                (
                    "served",
                    40,
                    [
                        RequestEvent(9, 8080, Mode.STEAL, CLIENT, "GET", "/9", "header_filter"),
                        RequestEvent(10, 8080, Mode.STEAL, CLIENT, "GET", "/10", "header_filter"),
                    ],
                ),
            ]

            writer.close()
            await observer.wait_for(8)
            assert observer.seen[7] == ("gone", 4242)
            del reader
        finally:
            await session.close()

    asyncio.run(asyncio.wait_for(scenario(), 30))


MIB = 1024 * 1024


class SlowApp:
    """An app listener whose connections are not read until ``release``; then it counts and hashes."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.received: asyncio.Queue[tuple[int, str]] = asyncio.Queue()
        self.connected = asyncio.Event()
        self.port = 0

    async def start(self) -> asyncio.Server:
        server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = server.sockets[0].getsockname()[1]
        return server

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connected.set()
        await self.release.wait()
        digest = hashlib.sha256()
        size = 0
        while data := await reader.read(MIB):
            digest.update(data)
            size += len(data)
        self.received.put_nowait((size, digest.hexdigest()))
        writer.close()


async def echo_line(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    line = await reader.readline()
    writer.write(b"echo:" + line)
    await writer.drain()
    writer.close()


def serve_port(session: Session, port: int, app_port: int) -> None:
    address = SocketAddress("127.0.0.1", app_port)
    session.state.listeners[port] = Listener(1, port, [address], ListenerState.ACTIVE)


def test_an_app_connection_that_does_not_read_pauses_its_client_only(tmp_path: Path) -> None:
    async def scenario() -> None:
        link = FakeLink()
        session = Session(cast(AgentLink, link), Mode.STEAL, str(tmp_path / "layer.sock"), lambda event: None)
        slow = SlowApp()
        slow_server = await slow.start()
        quick_server = await asyncio.start_server(echo_line, "127.0.0.1", 0)
        await session.start()
        try:
            serve_port(session, 80, slow.port)
            serve_port(session, 81, quick_server.sockets[0].getsockname()[1])
            link.inbox.put_nowait(from_agent.NewConnection(1, 80, Mode.STEAL, CLIENT, LOCAL, False))
            upload = os.urandom(MIB)
            chunks = 24  # far more than the socket buffers and the high-water mark together
            for _ in range(chunks):
                link.inbox.put_nowait(from_agent.ConnectionRead(1, upload))
            link.inbox.put_nowait(from_agent.ConnectionRead(1, b""))
            await link.wait_sent(to_agent.ClientReadFlow(1, True))
            # The stalled connection holds up nobody: another one is served to its end.
            link.inbox.put_nowait(from_agent.NewConnection(2, 81, Mode.STEAL, CLIENT, LOCAL, False))
            link.inbox.put_nowait(from_agent.ConnectionRead(2, b"ping\n"))
            await link.wait_sent(to_agent.ConnectionWrite(2, b"echo:ping\n"))
            assert to_agent.ClientReadFlow(1, False) not in link.sent
            slow.release.set()
            size, digest = await asyncio.wait_for(slow.received.get(), 10)
            assert size == chunks * MIB
            assert digest == hashlib.sha256(upload * chunks).hexdigest()
            await link.wait_sent(to_agent.ClientReadFlow(1, False))
        finally:
            await session.close()
            slow_server.close()
            quick_server.close()

    asyncio.run(asyncio.wait_for(scenario(), 60))


def test_a_mirrored_copy_that_falls_behind_is_dropped_not_paused(tmp_path: Path) -> None:
    async def scenario() -> None:
        link = FakeLink()
        events: list[SessionEvent] = []
        session = Session(cast(AgentLink, link), Mode.MIRROR, str(tmp_path / "layer.sock"), events.append)
        slow = SlowApp()
        slow_server = await slow.start()
        await session.start()
        try:
            serve_port(session, 80, slow.port)
            link.inbox.put_nowait(from_agent.NewConnection(1, 80, Mode.MIRROR, CLIENT, LOCAL, False))
            for _ in range(96):
                link.inbox.put_nowait(from_agent.ConnectionRead(1, bytes(MIB)))
            await link.wait_sent(to_agent.ConnectionUnsubscribe(1))
            assert not any(isinstance(message, to_agent.ClientReadFlow) for message in link.sent)
            dropped = [event.message for event in events if "dropped" in event.message]
            assert dropped == ["mirrored connection 1 dropped: the app fell more than 64 MiB behind"]
            assert 1 not in session.state.connections
        finally:
            await session.close()
            slow_server.close()

    asyncio.run(asyncio.wait_for(scenario(), 60))


def test_the_agent_holds_one_connections_writes_while_its_client_is_slow(tmp_path: Path) -> None:
    async def scenario() -> None:
        link = FakeLink()
        observer = Recorder()
        session = Session(
            cast(AgentLink, link),
            Mode.STEAL,
            str(tmp_path / "layer.sock"),
            lambda event: None,
            observer=observer,
        )
        apps: dict[int, asyncio.Queue[asyncio.StreamWriter]] = {80: asyncio.Queue(), 81: asyncio.Queue()}
        servers = []
        for port, accepted in apps.items():

            async def talker(
                reader: asyncio.StreamReader,
                writer: asyncio.StreamWriter,
                accepted: asyncio.Queue[asyncio.StreamWriter] = accepted,
            ) -> None:
                accepted.put_nowait(writer)
                await reader.read()

            server = await asyncio.start_server(talker, "127.0.0.1", 0)
            servers.append(server)
            serve_port(session, port, server.sockets[0].getsockname()[1])
        await session.start()
        try:
            link.inbox.put_nowait(from_agent.NewConnection(1, 80, Mode.STEAL, CLIENT, LOCAL, False))
            link.inbox.put_nowait(from_agent.NewConnection(2, 81, Mode.STEAL, CLIENT, LOCAL, False))
            held = await asyncio.wait_for(apps[80].get(), 10)
            free = await asyncio.wait_for(apps[81].get(), 10)
            link.inbox.put_nowait(from_agent.ConnectionWriteFlow(1, True))
            # The pump takes messages in order: once this one is observed, the pause is in force.
            link.inbox.put_nowait(from_agent.ConnectionRead(2, b"sync"))
            await observer.wait_for(3)
            assert observer.seen[2] == ConnectionEvent("data", 2, data=b"sync")
            held.write(b"held")
            free.write(b"free")
            await link.wait_sent(to_agent.ConnectionWrite(2, b"free"))
            assert to_agent.ConnectionWrite(1, b"held") not in link.sent
            link.inbox.put_nowait(from_agent.ConnectionWriteFlow(1, False))
            await link.wait_sent(to_agent.ConnectionWrite(1, b"held"))
        finally:
            await session.close()
            for server in servers:
                server.close()

    asyncio.run(asyncio.wait_for(scenario(), 60))
