"""The asyncio websocket against the websockets package, each as the other's peer, on loopback."""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Coroutine
from typing import Any, TypeVar

import pytest
from websockets.asyncio.client import connect as ws_connect
from websockets.asyncio.server import ServerConnection
from websockets.asyncio.server import serve as ws_serve
from websockets.exceptions import ConnectionClosed as WsClosed
from websockets.exceptions import InvalidStatus

from pymirrord.transport.connection import READ_QUEUE_LIMIT, WebSocket, WebSocketServer, connect
from pymirrord.transport.errors import ConnectionClosed, HandshakeRejected
from pymirrord.transport.handshake import BATCH_SUBPROTOCOL, ClientHandshake, UpgradeRequest

TIMEOUT = 10.0
T = TypeVar("T")


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(asyncio.wait_for(coro, 30))


def listener() -> socket.socket:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    return sock


async def echo(websocket: WebSocket) -> None:
    """Echoes every message until the peer closes."""
    async for message in websocket:
        if isinstance(message, str):
            websocket.send(message.encode())
        else:
            websocket.send_parts([message[:3], message[3:]])
        await websocket.drain()


def allow_token(request: UpgradeRequest, peer: object) -> tuple[int, str, dict[str, str]] | None:
    if request.headers.get("authorization") == "Bearer ok":
        return None
    return 401, "no\n", {"WWW-Authenticate": "Bearer"}


async def our_server(handler: Any = echo) -> tuple[WebSocketServer, int]:
    server = WebSocketServer(
        handler,
        authenticate=allow_token,
        subprotocols=(BATCH_SUBPROTOCOL,),
        max_message=1 << 20,
        write_limit=1 << 16,
        close_timeout=2,
    )
    sock = listener()
    await server.start(sock)
    return server, sock.getsockname()[1]


def test_the_websockets_client_talks_to_our_server() -> None:
    async def scenario() -> None:
        server, port = await our_server()
        big = os.urandom(700_000)
        headers = {"Authorization": "Bearer ok"}
        async with ws_connect(f"ws://127.0.0.1:{port}/", additional_headers=headers, max_size=None) as ws:
            assert ws.subprotocol is None  # not offered, not chosen
            await ws.send(b"hello")
            assert await ws.recv() == b"hello"
            await ws.send("text")
            assert await ws.recv() == b"text"
            await ws.send(big)
            assert await ws.recv() == big
            await ws.send([b"frag", b"mented"])  # a fragmented message
            assert await ws.recv() == b"fragmented"
            pong = await ws.ping(b"p")
            await asyncio.wait_for(pong, TIMEOUT)
        server.close()
        await server.wait_closed()

    run(scenario())


def test_a_wrong_token_gets_the_authenticators_answer() -> None:
    async def scenario() -> None:
        server, port = await our_server()
        with pytest.raises(InvalidStatus) as caught:
            async with ws_connect(f"ws://127.0.0.1:{port}/"):
                pass
        assert caught.value.response.status_code == 401
        assert caught.value.response.headers["WWW-Authenticate"] == "Bearer"
        with pytest.raises(HandshakeRejected) as rejected:
            await connect("127.0.0.1", port, max_message=100, timeout=TIMEOUT)
        assert rejected.value.status == 401
        server.close()
        await server.wait_closed()

    run(scenario())


def test_our_client_and_server_agree_on_batches_and_close_cleanly() -> None:
    async def scenario() -> None:
        server, port = await our_server()
        websocket = await connect(
            "127.0.0.1",
            port,
            headers={"Authorization": "Bearer ok"},
            subprotocols=(BATCH_SUBPROTOCOL,),
            max_message=1 << 20,
            timeout=TIMEOUT,
        )
        assert websocket.subprotocol == BATCH_SUBPROTOCOL
        payloads = [os.urandom(size) for size in (0, 10, 100_000, 200_000)]
        for payload in payloads:
            websocket.send(payload)
        received: list[bytes | bytearray | str] = []
        while len(received) < len(payloads):
            received += await asyncio.wait_for(websocket.recv_many(), TIMEOUT)
        assert received == payloads
        await websocket.close()
        with pytest.raises(ConnectionClosed) as caught:
            await websocket.recv()
        assert caught.value.code == 1000
        server.close()
        await server.wait_closed()

    run(scenario())


def test_our_client_talks_to_the_websockets_server_and_sees_its_close_code() -> None:
    async def scenario() -> None:
        async def handler(ws: ServerConnection) -> None:
            message = await ws.recv()
            await ws.send(message)
            await ws.close(1002, "bad message")

        async with ws_serve(handler, "127.0.0.1", 0) as server:
            port = next(iter(server.sockets)).getsockname()[1]
            websocket = await connect("127.0.0.1", port, max_message=1 << 20, timeout=TIMEOUT)
            websocket.send(b"x" * 70_000)
            assert await websocket.recv() == b"x" * 70_000
            with pytest.raises(ConnectionClosed) as caught:
                await websocket.recv()
            assert (caught.value.code, caught.value.reason) == (1002, "bad message")
            await websocket.wait_closed()

    run(scenario())


def test_a_message_over_the_limit_closes_with_1009() -> None:
    async def scenario() -> None:
        server, port = await our_server()
        headers = {"Authorization": "Bearer ok"}
        async with ws_connect(f"ws://127.0.0.1:{port}/", additional_headers=headers, max_size=None) as ws:
            await ws.send(b"x" * ((1 << 20) + 1))
            with pytest.raises(WsClosed) as caught:
                await ws.recv()
            assert caught.value.rcvd is not None
            assert caught.value.rcvd.code == 1009
        server.close()
        await server.wait_closed()

    run(scenario())


def test_a_reader_that_falls_behind_pauses_the_socket_and_loses_nothing() -> None:
    async def scenario() -> None:
        release = asyncio.Event()
        got: list[bytes | bytearray | str] = []

        async def slow(websocket: WebSocket) -> None:
            await release.wait()
            # The socket was paused with at most one message past the bound queued for this reader.
            assert websocket._reading_paused
            assert websocket._queued <= READ_QUEUE_LIMIT + (1 << 19)
            async for message in websocket:
                got.append(message)

        server, port = await our_server(slow)
        chunk = os.urandom(1 << 19)
        headers = {"Authorization": "Bearer ok"}
        async with ws_connect(f"ws://127.0.0.1:{port}/", additional_headers=headers, max_size=None) as ws:
            sending = asyncio.gather(*(ws.send(chunk) for _ in range(64)))
            done, _ = await asyncio.wait({sending}, timeout=0.5)
            assert not done  # 32 MiB cannot all be taken while nobody reads
            release.set()
            await asyncio.wait_for(sending, TIMEOUT)
        server.close()
        await server.wait_closed()
        assert got == [chunk] * 64

    run(scenario())


def test_a_client_that_never_finishes_its_handshake_is_dropped() -> None:
    async def scenario() -> None:
        server = WebSocketServer(
            echo,
            authenticate=allow_token,
            max_message=100,
            write_limit=100,
            close_timeout=1,
            open_timeout=0.2,
        )
        sock = listener()
        await server.start(sock)
        reader, writer = await asyncio.open_connection(*sock.getsockname())
        writer.write(b"GET / HTTP/1.1\r\n")
        assert await asyncio.wait_for(reader.read(), TIMEOUT) == b""
        writer.close()
        server.close()
        await server.wait_closed()

    run(scenario())


def test_a_request_that_is_not_a_websocket_gets_400() -> None:
    async def scenario() -> None:
        server, port = await our_server()
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        answer = await asyncio.wait_for(reader.read(), TIMEOUT)
        assert answer.startswith(b"HTTP/1.1 400 ")
        assert b"not a websocket upgrade" in answer
        writer.close()
        server.close()
        await server.wait_closed()

    run(scenario())


def test_a_slow_peer_makes_our_writer_wait_and_gets_every_byte_in_order() -> None:
    async def scenario() -> None:
        chunks = [os.urandom(1 << 19) for _ in range(48)]
        paused = asyncio.Event()

        async def flood(websocket: WebSocket) -> None:
            for chunk in chunks:
                websocket.send_parts([chunk[:10], chunk[10:]])
                if websocket._writing_paused:
                    paused.set()
                await websocket.drain()
            await websocket.close()

        server, port = await our_server(flood)
        headers = {"Authorization": "Bearer ok"}
        async with ws_connect(f"ws://127.0.0.1:{port}/", additional_headers=headers, max_size=None) as ws:
            await asyncio.wait_for(paused.wait(), TIMEOUT)  # 24 MiB cannot leave while nobody reads
            received = [await asyncio.wait_for(ws.recv(), TIMEOUT) for _ in chunks]
        assert received == chunks
        server.close()
        await server.wait_closed()

    run(scenario())


def test_our_client_masks_large_batches_the_server_can_read() -> None:
    async def scenario() -> None:
        server, port = await our_server()
        websocket = await connect(
            "127.0.0.1", port, headers={"Authorization": "Bearer ok"}, max_message=1 << 21, timeout=TIMEOUT
        )
        parts = [b"head", os.urandom(900_000), b"", b"tail"]
        for _ in range(8):
            websocket.send_parts(parts)
            await websocket.drain()
        for _ in range(8):
            assert await asyncio.wait_for(websocket.recv(), TIMEOUT) == b"".join(parts)
        await websocket.close()
        server.close()
        await server.wait_closed()

    run(scenario())


def test_a_peer_that_answers_no_ping_is_dropped() -> None:
    async def scenario() -> None:
        ended: asyncio.Future[ConnectionClosed] = asyncio.get_running_loop().create_future()

        async def pinging(websocket: WebSocket) -> None:
            websocket.keep_alive(0.05, 0.2)
            try:
                await websocket.recv()
            except ConnectionClosed as closed:
                ended.set_result(closed)

        server, port = await our_server(pinging)
        # A peer that completes the handshake and then reads nothing and answers nothing.
        handshake = ClientHandshake(f"127.0.0.1:{port}", "/", {"Authorization": "Bearer ok"})
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(handshake.request)
        closed = await asyncio.wait_for(ended, TIMEOUT)
        assert closed.code == 1011
        assert "ping" in closed.reason
        writer.close()
        server.close()
        await server.wait_closed()

    run(scenario())
