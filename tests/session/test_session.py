"""The session's observer hooks, with a fake agent link and a real layer socket."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, cast

from pymirrord.protocol import PROTOCOL_VERSION
from pymirrord.protocol import agent_to_session as from_agent
from pymirrord.protocol import layer_to_session as to_session
from pymirrord.protocol.framing import frame
from pymirrord.protocol.types import Mode, SocketAddress
from pymirrord.session.agent_link import AgentLink
from pymirrord.session.session import ConnectionEvent, RequestEvent, Session, SessionObserver

CLIENT = SocketAddress("10.0.0.9", 40000)
LOCAL = SocketAddress("10.0.0.2", 80)


class FakeLink:
    def __init__(self) -> None:
        self.hello = from_agent.AgentHello(PROTOCOL_VERSION, "test", "netns/x", None, "")
        self.inbox: asyncio.Queue[from_agent.AgentToSession | None] = asyncio.Queue()
        self.sent: list[Any] = []

    async def send(self, message: Any) -> None:
        self.sent.append(message)

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
            await observer.wait_for(5)
            assert observer.seen[1:5] == [
                ConnectionEvent("opened", 7, 80, Mode.STEAL, CLIENT),
                ConnectionEvent("data", 7, data=b"GET / HTTP/1.1\r\n\r\n"),
                ConnectionEvent("closed", 7),
                RequestEvent(3, 8080, Mode.STEAL, CLIENT, "GET", "/api", "path"),
            ]

            writer.close()
            await observer.wait_for(6)
            assert observer.seen[5] == ("gone", 4242)
            del reader
        finally:
            await session.close()

    asyncio.run(asyncio.wait_for(scenario(), 30))
