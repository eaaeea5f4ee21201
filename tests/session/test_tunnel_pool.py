"""``TunnelPool`` against a real ``WebSocketServer`` that detaches every raw stream, as the agent does.

(Named ``test_tunnel_pool`` rather than ``test_tunnels``: ``tests/agent/test_tunnels.py`` has that module
name already, and neither folder is a package.)
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Coroutine
from dataclasses import dataclass, field
from typing import Any, TypeVar

import pytest

from pymirrord.session.tunnels import SWITCH, TunnelError, TunnelPool, tunnels_wanted
from pymirrord.transport.connection import WebSocket, WebSocketServer
from pymirrord.transport.handshake import STREAM_SUBPROTOCOL, UpgradeRequest
from pymirrord.tunnel import ID_HEADER, KEY_HEADER, PATH, USE_HEADER

TIMEOUT = 10.0
T = TypeVar("T")


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(asyncio.wait_for(coro, 30))


@dataclass
class Agent:
    """The agent's side: every tunnel detached, by its number, with the request that opened it."""

    port: int
    tunnels: dict[int, tuple[socket.socket, UpgradeRequest]] = field(default_factory=dict)
    arrived: asyncio.Queue[int] = field(default_factory=asyncio.Queue)
    handshakes: int = 0

    async def next_tunnel(self) -> tuple[int, socket.socket, UpgradeRequest]:
        tunnel_id = await asyncio.wait_for(self.arrived.get(), TIMEOUT)
        sock, request = self.tunnels[tunnel_id]
        return tunnel_id, sock, request

    async def tunnels_arrived(self, count: int) -> set[int]:
        return {(await self.next_tunnel())[0] for _ in range(count)}


@contextlib.asynccontextmanager
async def agent(token: str = "secret") -> AsyncIterator[Agent]:
    state: Agent

    def authenticate(request: UpgradeRequest, peer: object) -> tuple[int, str, dict[str, str]] | None:
        state.handshakes += 1
        if request.headers.get("authorization") == f"Bearer {token}":
            return None
        return 403, "tunnels are not for you\n", {}

    async def handler(websocket: WebSocket) -> None:
        sock, _ = await websocket.detach()
        assert websocket.request is not None
        tunnel_id = int(websocket.request.headers[ID_HEADER])
        state.tunnels[tunnel_id] = (sock, websocket.request)
        state.arrived.put_nowait(tunnel_id)

    server = WebSocketServer(
        handler,
        authenticate=authenticate,
        subprotocols=(STREAM_SUBPROTOCOL,),
        max_message=1 << 20,
        write_limit=1 << 16,
        close_timeout=2,
    )
    listening = socket.socket()
    listening.bind(("127.0.0.1", 0))
    listening.listen()
    await server.start(listening)
    state = Agent(listening.getsockname()[1])
    try:
        yield state
    finally:
        server.close()
        await server.wait_closed()
        for sock, _ in state.tunnels.values():
            sock.close()


def new_pool(
    port: int, logs: list[str], *, token: str = "secret", use: str = "incoming", first_id: int = 1
) -> TunnelPool:
    return TunnelPool(
        "127.0.0.1", port, token=token, key="session-key", on_log=logs.append, use=use, first_id=first_id
    )


async def all_opened(pool: TunnelPool) -> None:
    """Waits for the handshakes under way (white box: the tasks the pool keeps) to end, however they end."""
    tasks = list(pool._opening.values())
    if tasks:
        await asyncio.wait(tasks, timeout=TIMEOUT)


async def recv_exactly(sock: socket.socket, size: int) -> bytes:
    loop = asyncio.get_running_loop()
    received = bytearray()
    while len(received) < size:
        chunk = await asyncio.wait_for(loop.sock_recv(sock, size - len(received)), TIMEOUT)
        assert chunk, f"end of stream after {len(received)} of {size} bytes"
        received += chunk
    return bytes(received)


async def exchange(one: socket.socket, other: socket.socket) -> None:
    loop = asyncio.get_running_loop()
    await loop.sock_sendall(one, b"hello agent")
    assert await recv_exactly(other, 11) == b"hello agent"
    big = bytes(range(256)) * 2000
    await asyncio.gather(loop.sock_sendall(other, big), recv_and_check(one, big))


async def recv_and_check(sock: socket.socket, expected: bytes) -> None:
    assert await recv_exactly(sock, len(expected)) == expected


async def end_of_stream(sock: socket.socket) -> bytes:
    return await asyncio.wait_for(asyncio.get_running_loop().sock_recv(sock, 1), TIMEOUT)


def test_start_opens_a_pool_of_named_tunnels() -> None:
    async def scenario() -> None:
        async with agent() as server:
            logs: list[str] = []
            pool = new_pool(server.port, logs)
            pool.start()
            assert await server.tunnels_arrived(4) == {1, 3, 5, 7}
            for _, request in server.tunnels.values():
                assert request.path == PATH
                assert request.headers[KEY_HEADER] == "session-key"
                assert request.headers[USE_HEADER] == "incoming"
                assert request.headers["authorization"] == "Bearer secret"
            await pool.close()
            assert logs == []

    run(scenario())


def test_a_second_pool_numbers_its_tunnels_apart() -> None:
    async def scenario() -> None:
        async with agent() as server:
            pool = new_pool(server.port, [], use="outgoing", first_id=2)
            pool.start()
            assert await server.tunnels_arrived(4) == {2, 4, 6, 8}
            assert {request.headers[USE_HEADER] for _, request in server.tunnels.values()} == {"outgoing"}
            await pool.close()

    run(scenario())


def test_take_hands_over_a_tunnel_connected_to_the_agents_end_and_opens_another() -> None:
    async def scenario() -> None:
        async with agent() as server:
            logs: list[str] = []
            pool = new_pool(server.port, logs)
            pool.start()
            await server.tunnels_arrived(4)
            sock, head = await asyncio.wait_for(pool.take(3), TIMEOUT)
            with sock:
                assert head == b""
                assert not sock.getblocking()
                agent_end, _ = server.tunnels[3]
                assert agent_end.getpeername() == sock.getsockname()
                await exchange(sock, agent_end)
                await exchange(agent_end, sock)
                # Its replacement, with the next number.
                replacement, _, _ = await server.next_tunnel()
                assert replacement == 9
                with pytest.raises(TunnelError, match="has not opened"):
                    await pool.take(3)  # a tunnel is used once
                await pool.close()
                await exchange(sock, agent_end)  # taken: the pool's close leaves it alone
            assert logs == []

    run(scenario())


def test_take_waits_for_a_tunnel_whose_handshake_is_under_way() -> None:
    async def scenario() -> None:
        async with agent() as server:
            pool = new_pool(server.port, [])
            pool.start()
            sock, _ = await asyncio.wait_for(pool.take(1), TIMEOUT)  # at once, before anything arrived
            with sock:
                arrived = await server.tunnels_arrived(5)
                assert 1 in arrived and 9 in arrived
                await exchange(sock, server.tunnels[1][0])
            await pool.close()

    run(scenario())


def test_an_unknown_tunnel_number_is_an_error() -> None:
    async def scenario() -> None:
        async with agent() as server:
            pool = new_pool(server.port, [])
            pool.start()
            with pytest.raises(TunnelError, match="tunnel 2"):
                await pool.take(2)
            await pool.close()

    run(scenario())


def test_reserve_picks_an_opened_tunnel_and_opens_another() -> None:
    async def scenario() -> None:
        async with agent() as server:
            pool = new_pool(server.port, [], use="outgoing", first_id=2)
            assert pool.reserve() is None  # nothing opened yet
            pool.start()
            assert pool.reserve() is None  # nothing opened yet
            await all_opened(pool)
            reserved = pool.reserve()
            assert reserved is not None
            tunnel_id, task = reserved
            assert task.done()
            sock, _ = task.result()
            with sock:
                await server.tunnels_arrived(4)
                await exchange(sock, server.tunnels[tunnel_id][0])
                assert (await server.next_tunnel())[0] == 10
            await pool.close()

    run(scenario())


def test_reserve_soon_waits_for_a_handshake_under_way() -> None:
    # A connection made as the session starts must not go as messages just because no handshake has ended.
    async def scenario() -> None:
        async with agent() as server:
            pool = new_pool(server.port, [], use="outgoing", first_id=2)
            assert await pool.reserve_soon() is None  # nothing opening: no wait at all
            pool.start()
            assert pool.reserve() is None  # nothing opened yet
            reserved = await pool.reserve_soon()
            assert reserved is not None
            tunnel_id, task = reserved
            sock, _ = task.result()
            with sock:
                arrived = await server.tunnels_arrived(5)
                assert tunnel_id in arrived
                await exchange(sock, server.tunnels[tunnel_id][0])
            await pool.close()

    run(scenario())


def test_reserve_soon_gives_up_on_a_broken_pool_or_at_its_timeout() -> None:
    async def scenario() -> None:
        async with agent() as server:
            broken = TunnelPool("127.0.0.1", server.port, token="wrong", key="k", on_log=lambda _: None)
            broken.start()
            assert await broken.reserve_soon(TIMEOUT) is None  # every handshake refused
            await broken.close()
        silent = socket.socket()  # accepts connections, never answers a handshake
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        with silent:
            pool = new_pool(silent.getsockname()[1], [])
            pool.start()
            assert await pool.reserve_soon(0.05) is None
            await pool.close()

    run(scenario())


def test_a_refused_tunnel_breaks_the_pool_and_is_logged_once() -> None:
    async def scenario() -> None:
        async with agent() as server:
            logged = asyncio.Event()
            logs: list[str] = []

            def on_log(text: str) -> None:
                logs.append(text)
                logged.set()

            pool = TunnelPool("127.0.0.1", server.port, token="wrong", key="session-key", on_log=on_log)
            pool.start()
            await asyncio.wait_for(logged.wait(), TIMEOUT)
            for tunnel_id in (1, 3, 5, 7):
                with pytest.raises(TunnelError):
                    await pool.take(tunnel_id)
            # Every handshake has ended now, and none was opened in place of a failed one.
            assert server.handshakes == 4
            assert server.tunnels == {}
            assert len(logs) == 1
            assert "cannot open a tunnel" in logs[0]
            assert "403" in logs[0]
            assert pool.reserve() is None
            pool.start()  # a broken pool opens nothing more
            with pytest.raises(TunnelError):
                await pool.take(9)
            await pool.close()
            assert server.handshakes == 4
            assert len(logs) == 1

    run(scenario())


def test_close_closes_every_open_tunnel() -> None:
    async def scenario() -> None:
        async with agent() as server:
            pool = new_pool(server.port, [])
            pool.start()
            await server.tunnels_arrived(4)
            await all_opened(pool)
            await pool.close()
            for agent_end, _ in server.tunnels.values():
                assert await end_of_stream(agent_end) == b""
            with pytest.raises(TunnelError):
                await pool.take(1)
            assert pool.reserve() is None

    run(scenario())


def test_close_while_handshakes_are_under_way_leaves_nothing_open() -> None:
    async def scenario() -> None:
        async with agent() as server:
            logs: list[str] = []
            pool = new_pool(server.port, logs)
            pool.start()
            await pool.close()  # before any handshake could end
            pool.start()  # a closed pool opens nothing
            assert pool.reserve() is None
            for agent_end, _ in server.tunnels.values():  # any that got through before the cancel
                assert await end_of_stream(agent_end) == b""
            assert logs == []

    run(scenario())


def test_tunnels_are_wanted_unless_switched_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(SWITCH, raising=False)
    assert tunnels_wanted()
    monkeypatch.setenv(SWITCH, "1")
    assert tunnels_wanted()
    monkeypatch.setenv(SWITCH, "0")
    assert not tunnels_wanted()
