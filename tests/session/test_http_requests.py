"""The session's side of filtered HTTP traffic: handing the agent connections to the local app."""

from __future__ import annotations

import asyncio
import socket

from pymirrord.protocol import agent_to_session as from_agent
from pymirrord.protocol import session_to_agent as to_agent
from pymirrord.protocol.types import SocketAddress
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
