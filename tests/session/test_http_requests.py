"""The session's side of filtered HTTP traffic: handing the agent connections to the local app, and flow
control towards an app that reads a body slowly or a client that reads a response slowly."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import os
import socket
from collections.abc import Awaitable

from pymirrord.protocol import agent_to_session as from_agent
from pymirrord.protocol import session_to_agent as to_agent
from pymirrord.protocol.types import Mode, SocketAddress
from pymirrord.session.http_requests import HttpRequests


async def _nothing_sent(message: to_agent.SessionToAgent) -> None:
    raise AssertionError(f"nothing goes to the agent here, yet {message} did")


def test_a_wanted_connection_reaches_the_app_and_is_handed_over() -> None:
    async def scenario() -> None:
        accepted: asyncio.Queue[asyncio.StreamWriter] = asyncio.Queue()

        async def on_client(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await accepted.put(writer)

        server = await asyncio.start_server(on_client, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        handed: asyncio.Queue[tuple[int, int]] = asyncio.Queue()

        def hand_over(subscribed: int, sock: socket.socket) -> bool:
            handed.put_nowait((subscribed, sock.getpeername()[1]))
            return True

        logs: list[str] = []
        http = HttpRequests(
            _nothing_sent, lambda p: SocketAddress("127.0.0.1", port) if p == 80 else None, logs.append
        )
        http.hand_over = hand_over
        await http.on_agent_message(from_agent.HttpConnectionWanted(80))
        await http.on_agent_message(from_agent.HttpConnectionWanted(81))  # no app listens for port 81
        assert await asyncio.wait_for(handed.get(), 5) == (80, port)
        writer = await asyncio.wait_for(accepted.get(), 5)
        writer.close()
        await http.close()
        assert handed.empty() and not logs
        server.close()
        await server.wait_closed()

    asyncio.run(scenario())


def test_without_a_channel_nothing_is_opened() -> None:
    async def scenario() -> None:
        peers: asyncio.Queue[int] = asyncio.Queue()

        async def on_client(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await peers.put(writer.get_extra_info("peername")[1])
            writer.close()

        server = await asyncio.start_server(on_client, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        logs: list[str] = []
        http = HttpRequests(_nothing_sent, lambda p: SocketAddress("127.0.0.1", port), logs.append)
        await http.on_agent_message(from_agent.HttpConnectionWanted(80))  # no channel: nothing to do
        handed: asyncio.Queue[int] = asyncio.Queue()

        def hand_over(_port: int, sock: socket.socket) -> bool:
            handed.put_nowait(sock.getsockname()[1])
            return True

        http.hand_over = hand_over
        await http.on_agent_message(from_agent.HttpConnectionWanted(80))
        handed_port = await asyncio.wait_for(handed.get(), 5)
        # Connections reach the app in the order they were made: a first one would be the unwanted one.
        assert await asyncio.wait_for(peers.get(), 5) == handed_port
        await http.close()
        assert not logs
        server.close()
        await server.wait_closed()

    asyncio.run(scenario())


def test_an_app_that_refuses_is_logged() -> None:
    async def scenario() -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            closed_port = probe.getsockname()[1]  # bound, never listening: connecting is refused
            logs: list[str] = []
            logged = asyncio.Event()

            def log(text: str) -> None:
                logs.append(text)
                logged.set()

            http = HttpRequests(_nothing_sent, lambda p: SocketAddress("127.0.0.1", closed_port), log)
            http.hand_over = lambda port, sock: True
            await http.on_agent_message(from_agent.HttpConnectionWanted(80))
            await asyncio.wait_for(logged.wait(), 5)
            await http.close()
        assert logs and "could not open a connection to the app" in logs[0]

    asyncio.run(scenario())


MIB = 1024 * 1024
CLIENT = SocketAddress("10.0.0.9", 40000)
LOCAL = SocketAddress("10.0.0.2", 80)


class Recorder:
    """Plays the agent link: keeps what the session sends, and wakes whoever waits for one message."""

    def __init__(self) -> None:
        self.sent: list[to_agent.SessionToAgent] = []
        self.changed = asyncio.Event()

    async def send(self, message: to_agent.SessionToAgent) -> None:
        self.sent.append(message)
        self.changed.set()

    async def wait_for(self, message: to_agent.SessionToAgent) -> None:
        while message not in self.sent:
            self.changed.clear()
            await asyncio.wait_for(self.changed.wait(), 10)


def response_of(agent: Recorder, request_id: int) -> bytes:
    sent = agent.sent
    return b"".join(
        m.data for m in sent if isinstance(m, to_agent.HttpResponseData) and m.request_id == request_id
    )


def post(request_id: int, path: str, size: int) -> from_agent.HttpRequestStart:
    head = f"POST {path} HTTP/1.1\r\nHost: app\r\nContent-Length: {size}\r\n\r\n".encode()
    return from_agent.HttpRequestStart(request_id, 80, Mode.STEAL, CLIENT, LOCAL, "POST", path, "path", head)


def test_an_app_that_does_not_read_a_body_pauses_that_request_only() -> None:
    async def scenario() -> None:
        release = asyncio.Event()

        async def app(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            head = await reader.readuntil(b"\r\n\r\n")
            if head.startswith(b"POST /hold "):
                await release.wait()
            size = int(head.split(b"Content-Length: ")[1].split(b"\r\n")[0])
            body = await reader.readexactly(size)
            answer = f"{len(body)} {hashlib.sha256(body).hexdigest()}".encode()
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(answer), answer))
            await writer.drain()

        server = await asyncio.start_server(app, "127.0.0.1", 0)
        address = SocketAddress("127.0.0.1", server.sockets[0].getsockname()[1])
        agent = Recorder()
        http = HttpRequests(agent.send, lambda port: address, lambda text: None)
        chunk, chunks = os.urandom(MIB), 24
        await http.on_agent_message(post(1, "/hold", chunks * MIB))
        for _ in range(chunks):
            await http.on_agent_message(from_agent.HttpRequestBody(1, chunk))
        await http.on_agent_message(from_agent.HttpRequestEnd(1))
        await agent.wait_for(to_agent.HttpRequestFlow(1, True))
        # The pump is free: another request is served to its end meanwhile.
        await http.on_agent_message(post(2, "/quick", 4))
        await http.on_agent_message(from_agent.HttpRequestBody(2, b"ping"))
        await http.on_agent_message(from_agent.HttpRequestEnd(2))
        await agent.wait_for(to_agent.HttpResponseEnd(2))
        assert to_agent.HttpRequestFlow(1, False) not in agent.sent
        release.set()
        await agent.wait_for(to_agent.HttpRequestFlow(1, False))
        await agent.wait_for(to_agent.HttpResponseEnd(1))
        assert response_of(agent, 1).endswith(
            f"{chunks * MIB} {hashlib.sha256(chunk * chunks).hexdigest()}".encode()
        )
        await http.close()
        server.close()

    asyncio.run(asyncio.wait_for(scenario(), 60))


def test_the_agent_holds_one_response_while_its_client_is_slow() -> None:
    async def scenario() -> None:
        async def app(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            head = await reader.readuntil(b"\r\n\r\n")
            path = head.split()[1]
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\n")
            await writer.drain()
            await reader.readexactly(4)  # the go-ahead for the rest of the response
            writer.write(path[:8].ljust(8, b"."))
            await writer.drain()

        server = await asyncio.start_server(app, "127.0.0.1", 0)
        address = SocketAddress("127.0.0.1", server.sockets[0].getsockname()[1])
        agent = Recorder()
        http = HttpRequests(agent.send, lambda port: address, lambda text: None)
        for request_id, path in ((1, "/held"), (2, "/free")):
            await http.on_agent_message(post(request_id, path, 4))
        await http.on_agent_message(from_agent.HttpResponseFlow(1, True))
        for request_id in (1, 2):
            await http.on_agent_message(from_agent.HttpRequestBody(request_id, b"go.."))
            await http.on_agent_message(from_agent.HttpRequestEnd(request_id))
        await agent.wait_for(to_agent.HttpResponseEnd(2))
        assert response_of(agent, 2).endswith(b"/free...")
        assert response_of(agent, 1) == b"", "held back by the agent"
        await http.on_agent_message(from_agent.HttpResponseFlow(1, False))
        await agent.wait_for(to_agent.HttpResponseEnd(1))
        assert response_of(agent, 1).endswith(b"/held...")
        await http.close()
        server.close()

    asyncio.run(asyncio.wait_for(scenario(), 60))


def test_a_mirrored_request_the_app_does_not_read_is_dropped_not_paused() -> None:
    async def scenario() -> None:
        connected = asyncio.Event()

        async def app(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            connected.set()
            await reader.readuntil(b"\r\n\r\n")
            await asyncio.Event().wait()  # reads nothing more

        server = await asyncio.start_server(app, "127.0.0.1", 0)
        address = SocketAddress("127.0.0.1", server.sockets[0].getsockname()[1])
        agent = Recorder()
        logs: list[str] = []
        http = HttpRequests(agent.send, lambda port: address, logs.append)
        start = post(1, "/copy", 96 * MIB)
        await http.on_agent_message(dataclasses.replace(start, mode=Mode.MIRROR))
        await asyncio.wait_for(connected.wait(), 10)
        for _ in range(96):
            await http.on_agent_message(from_agent.HttpRequestBody(1, bytes(MIB)))
            if not http.active:
                break
        assert http.active == 0
        assert logs == ["mirrored request POST /copy dropped: the app fell more than 64 MiB behind"]
        assert agent.sent == [], "a copy is never paused, and nothing answers it"
        await http.close()
        server.close()

    asyncio.run(asyncio.wait_for(scenario(), 60))


def test_app_tunnels_go_with_the_first_stolen_request_of_a_port_and_with_each_ask() -> None:
    """A session with tunnels gives the agent one for a port when its first stolen HTTP/1 request arrives
    (which tells the agent it may ask for more), and one per ask; none for mirrored or HTTP/2 requests, and
    none for a port nothing listens on."""

    async def scenario() -> None:
        agent = Recorder()
        given: list[tuple[int, SocketAddress]] = []

        def app_tunnel(port: int, address: SocketAddress) -> Awaitable[None]:
            given.append((port, address))
            return asyncio.sleep(0)

        app = SocketAddress("127.0.0.1", 9)  # never connected to: the requests fail, which is not the point
        http = HttpRequests(agent.send, lambda p: app if p in (80, 81) else None, lambda _: None)
        http.app_tunnel = app_tunnel
        mirrored = dataclasses.replace(post(1, "/m", 0), mode=Mode.MIRROR)
        over_h2 = dataclasses.replace(post(2, "/h", 0), http2=True)
        for message in (mirrored, over_h2):
            await http.on_agent_message(message)
        assert given == []
        await http.on_agent_message(post(3, "/a", 0))
        await http.on_agent_message(post(4, "/b", 0))
        await http.on_agent_message(dataclasses.replace(post(5, "/c", 0), port=81))
        await http.on_agent_message(from_agent.HttpConnectionWanted(80))
        await http.on_agent_message(from_agent.HttpConnectionWanted(82))  # nothing listens there
        await http.close()
        assert given == [(80, app), (81, app), (80, app)]

    asyncio.run(scenario())
