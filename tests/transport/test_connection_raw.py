"""Raw byte streams (``STREAM_SUBPROTOCOL``): ``open_raw`` on the client, ``opened_raw``/
``detach`` on the server, what each hands over of the bytes that came right behind the handshake, and how
long ``open_raw`` says the handshake was each way."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Coroutine
from dataclasses import dataclass, field
from typing import Any, TypeVar

import pytest

from pymirrord.transport.connection import WebSocket, WebSocketServer, connect, open_raw
from pymirrord.transport.errors import HandshakeRejected, WebSocketProtocolError
from pymirrord.transport.handshake import (
    BATCH_SUBPROTOCOL,
    STREAM_SUBPROTOCOL,
    ClientHandshake,
    ServerHandshake,
    UpgradeRequest,
)

TIMEOUT = 10.0
T = TypeVar("T")


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(asyncio.wait_for(coro, 30))


def listener() -> socket.socket:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    return sock


def allow_token(request: UpgradeRequest, peer: object) -> tuple[int, str, dict[str, str]] | None:
    if request.headers.get("authorization") == "Bearer ok":
        return None
    return 401, "no\n", {"WWW-Authenticate": "Bearer"}


@dataclass
class Served:
    """What the server's handler saw: each detached stream (with its request), or the error detach raised."""

    port: int
    streams: asyncio.Queue[tuple[socket.socket, bytes, UpgradeRequest | None]] = field(
        default_factory=asyncio.Queue
    )
    errors: asyncio.Queue[BaseException] = field(default_factory=asyncio.Queue)
    opened: list[socket.socket] = field(default_factory=list)


@contextlib.asynccontextmanager
async def raw_server(subprotocols: tuple[str, ...] = (STREAM_SUBPROTOCOL,)) -> AsyncIterator[Served]:
    served: Served

    async def handler(websocket: WebSocket) -> None:
        try:
            sock, rest = await websocket.detach()
        except Exception as error:
            served.errors.put_nowait(error)
            return
        served.opened.append(sock)
        served.streams.put_nowait((sock, rest, websocket.request))

    server = WebSocketServer(
        handler,
        authenticate=allow_token,
        subprotocols=subprotocols,
        max_message=1 << 20,
        write_limit=1 << 16,
        close_timeout=2,
    )
    sock = listener()
    await server.start(sock)
    served = Served(sock.getsockname()[1])
    try:
        yield served
    finally:
        server.close()
        await server.wait_closed()
        for opened in served.opened:
            opened.close()


async def recv_exactly(sock: socket.socket, size: int) -> bytes:
    loop = asyncio.get_running_loop()
    received = bytearray()
    while len(received) < size:
        chunk = await asyncio.wait_for(loop.sock_recv(sock, size - len(received)), TIMEOUT)
        assert chunk, f"end of stream after {len(received)} of {size} bytes"
        received += chunk
    return bytes(received)


async def exchange(one: socket.socket, other: socket.socket) -> None:
    """Bytes go both ways between two ends of one connection, several times."""
    loop = asyncio.get_running_loop()
    for round_ in range(3):
        ask, answer = f"question {round_}".encode(), f"answer {round_}".encode() * 1000
        await loop.sock_sendall(one, ask)
        assert await recv_exactly(other, len(ask)) == ask
        await loop.sock_sendall(other, answer)
        assert await recv_exactly(one, len(answer)) == answer


def test_open_raw_and_detach_hand_over_the_two_ends_of_one_connection() -> None:
    async def scenario() -> None:
        async with raw_server() as served:
            opened = await open_raw(
                "127.0.0.1",
                served.port,
                path="/tunnel",
                headers={"Authorization": "Bearer ok", "X-Tunnel": "7"},
                timeout=TIMEOUT,
            )
            client, rest = opened.sock, opened.rest
            with client:
                assert rest == b""
                assert not client.getblocking()
                server_end, server_rest, request = await asyncio.wait_for(served.streams.get(), TIMEOUT)
                assert server_rest == b""
                assert not server_end.getblocking()
                assert request is not None
                assert request.path == "/tunnel"
                assert request.headers["x-tunnel"] == "7"
                assert server_end.getpeername() == client.getsockname()
                await exchange(client, server_end)
                # The server's end is the connection's only owner now: closing it ends the stream.
                server_end.close()
                assert (
                    await asyncio.wait_for(asyncio.get_running_loop().sock_recv(client, 10), TIMEOUT) == b""
                )

    run(scenario())


def test_detach_hands_over_the_bytes_the_client_sent_right_behind_its_request() -> None:
    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        async with raw_server() as served:
            handshake = ClientHandshake(
                f"127.0.0.1:{served.port}", "/", {"Authorization": "Bearer ok"}, (STREAM_SUBPROTOCOL,)
            )
            client = socket.socket()
            client.setblocking(False)
            with client:
                await loop.sock_connect(client, ("127.0.0.1", served.port))
                await loop.sock_sendall(client, handshake.request + b"too early")
                accepted = None
                while accepted is None:
                    accepted = handshake.feed(await asyncio.wait_for(loop.sock_recv(client, 4096), TIMEOUT))
                assert accepted.subprotocol == STREAM_SUBPROTOCOL
                server_end, rest, _ = await asyncio.wait_for(served.streams.get(), TIMEOUT)
                assert rest == b"too early"
                # What comes later is not read by the websocket: it waits on the detached socket.
                await loop.sock_sendall(client, b"later")
                assert await recv_exactly(server_end, 5) == b"later"
                await exchange(client, server_end)

    run(scenario())


def test_open_raw_hands_over_the_bytes_the_server_sent_right_behind_its_answer() -> None:
    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        with listener() as listening:
            listening.setblocking(False)
            port = listening.getsockname()[1]

            async def serve_once() -> socket.socket:
                sock, _ = await loop.sock_accept(listening)
                handshake = ServerHandshake()
                request = None
                while request is None:
                    request = handshake.feed(await loop.sock_recv(sock, 4096))
                assert STREAM_SUBPROTOCOL in request.subprotocols
                await loop.sock_sendall(sock, handshake.accept(request, STREAM_SUBPROTOCOL) + b"right behind")
                return sock

            serving = loop.create_task(serve_once())
            opened = await open_raw("127.0.0.1", port, timeout=TIMEOUT)
            client, rest = opened.sock, opened.rest
            server_end = await asyncio.wait_for(serving, TIMEOUT)
            with client, server_end:
                assert rest == b"right behind"
                await exchange(client, server_end)

    run(scenario())


def test_open_raw_to_a_server_without_raw_streams_is_refused() -> None:
    async def scenario() -> None:
        async with raw_server(subprotocols=(BATCH_SUBPROTOCOL,)) as served:
            with pytest.raises(WebSocketProtocolError, match="raw streams"):
                await open_raw(
                    "127.0.0.1", served.port, headers={"Authorization": "Bearer ok"}, timeout=TIMEOUT
                )

    run(scenario())


def test_open_raw_sees_the_authenticators_refusal() -> None:
    async def scenario() -> None:
        async with raw_server() as served:
            with pytest.raises(HandshakeRejected) as caught:
                await open_raw("127.0.0.1", served.port, timeout=TIMEOUT)
            assert caught.value.status == 401
            assert caught.value.body == b"no\n"
            assert served.streams.empty()

    run(scenario())


def test_open_raw_to_a_server_that_hangs_up_during_the_handshake_fails() -> None:
    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        with listener() as listening:
            listening.setblocking(False)

            async def hang_up() -> None:
                sock, _ = await loop.sock_accept(listening)
                with sock:
                    await loop.sock_recv(sock, 4096)

            hanging_up = loop.create_task(hang_up())
            with pytest.raises(WebSocketProtocolError, match="closed the connection"):
                await open_raw("127.0.0.1", listening.getsockname()[1], timeout=TIMEOUT)
            await asyncio.wait_for(hanging_up, TIMEOUT)

    run(scenario())


def test_open_raw_gives_up_after_its_timeout() -> None:
    async def scenario() -> None:
        # The listener accepts (into its backlog) and never answers.
        with listener() as silent, pytest.raises(asyncio.TimeoutError):
            await open_raw("127.0.0.1", silent.getsockname()[1], timeout=0.1)

    run(scenario())


def test_a_websocket_that_is_not_a_raw_stream_cannot_be_detached() -> None:
    async def scenario() -> None:
        async with raw_server(subprotocols=(BATCH_SUBPROTOCOL, STREAM_SUBPROTOCOL)) as served:
            websocket = await connect(
                "127.0.0.1",
                served.port,
                headers={"Authorization": "Bearer ok"},
                subprotocols=(BATCH_SUBPROTOCOL,),
                max_message=1 << 20,
                timeout=TIMEOUT,
            )
            # The server's side: a websocket with a subprotocol, but not the raw one.
            error = await asyncio.wait_for(served.errors.get(), TIMEOUT)
            assert isinstance(error, RuntimeError)
            # The client's side.
            with pytest.raises(RuntimeError, match="raw stream"):
                await websocket.detach()
            await websocket.close()

    run(scenario())


def test_a_websocket_without_a_subprotocol_cannot_be_detached() -> None:
    async def scenario() -> None:
        async with raw_server() as served:
            websocket = await connect(
                "127.0.0.1",
                served.port,
                headers={"Authorization": "Bearer ok"},
                max_message=100,
                timeout=TIMEOUT,
            )
            error = await asyncio.wait_for(served.errors.get(), TIMEOUT)
            assert isinstance(error, RuntimeError)
            assert websocket.subprotocol is None
            await websocket.close()

    run(scenario())


@pytest.mark.parametrize("pieces", [1, 3], ids=["whole", "in-pieces"])
@pytest.mark.parametrize("behind", [b"", b"right behind"], ids=["nothing-behind", "bytes-behind"])
def test_open_raw_reports_the_handshakes_lengths_as_the_server_saw_them(pieces: int, behind: bytes) -> None:
    """``request_length`` is what the server read, ``answer_length`` what it wrote before the stream's own
    bytes (those come back as ``rest``), however the answer is cut up."""

    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        with listener() as listening:
            listening.setblocking(False)
            port = listening.getsockname()[1]

            async def serve_once() -> tuple[socket.socket, int, int]:
                sock, _ = await loop.sock_accept(listening)
                handshake = ServerHandshake()
                request, read = None, 0
                while request is None:
                    data = await loop.sock_recv(sock, 4096)
                    assert data, "the client hung up during its request"
                    read += len(data)
                    request = handshake.feed(data)
                answer = handshake.accept(request, STREAM_SUBPROTOCOL)
                step = -(-len(answer) // pieces)
                for start in range(0, len(answer), step):
                    await loop.sock_sendall(sock, answer[start : start + step])
                if behind:
                    await loop.sock_sendall(sock, behind)
                return sock, read, len(answer)

            serving = loop.create_task(serve_once())
            stream = await open_raw(
                "127.0.0.1", port, path="/tunnel", headers={"X-Tunnel": "7"}, timeout=TIMEOUT
            )
            server_end, read, written = await asyncio.wait_for(serving, TIMEOUT)
            with stream.sock, server_end:
                assert stream.request_length == read
                assert stream.answer_length == written
                rest = stream.rest + await recv_exactly(stream.sock, len(behind) - len(stream.rest))
                assert rest == behind
                await exchange(stream.sock, server_end)

    run(scenario())


def test_open_raw_against_the_server_counts_its_request_and_the_servers_answer() -> None:
    """Against ``WebSocketServer``: the lengths are those of the client's request and of the server's
    acceptance of it (keys and accept values have fixed lengths, so a twin handshake measures them)."""

    async def scenario() -> None:
        async with raw_server() as served:
            host, headers = f"127.0.0.1:{served.port}", {"Authorization": "Bearer ok"}
            stream = await open_raw("127.0.0.1", served.port, headers=headers, timeout=TIMEOUT)
            with stream.sock:
                server_end, server_rest, _ = await asyncio.wait_for(served.streams.get(), TIMEOUT)
                assert stream.rest == b"" and server_rest == b""
                twin = ClientHandshake(host, "/", headers, (STREAM_SUBPROTOCOL,))
                server = ServerHandshake()
                twin_request = server.feed(twin.request)
                assert twin_request is not None
                assert stream.request_length == len(twin.request)
                assert stream.answer_length == len(server.accept(twin_request, STREAM_SUBPROTOCOL))
                assert not stream.sock.getblocking()
                await exchange(stream.sock, server_end)

    run(scenario())
