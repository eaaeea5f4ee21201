"""Socket helpers the relay tests share: run a coroutine with a deadline, send and read to an end."""

from __future__ import annotations

import asyncio
import fcntl
import socket
import struct
import termios
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import pytest

TIMEOUT = 10.0
T = TypeVar("T")


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(asyncio.wait_for(coro, TIMEOUT))


async def send_and_shut(sock: socket.socket, data: bytes) -> None:
    await asyncio.get_running_loop().sock_sendall(sock, data)
    sock.shutdown(socket.SHUT_WR)


async def recv_until_eof(sock: socket.socket) -> bytes:
    loop = asyncio.get_running_loop()
    received = bytearray()
    while chunk := await loop.sock_recv(sock, 256 * 1024):
        received += chunk
    return bytes(received)


async def recv_exactly(sock: socket.socket, size: int) -> bytes:
    loop = asyncio.get_running_loop()
    received = bytearray()
    while len(received) < size:
        chunk = await loop.sock_recv(sock, size - len(received))
        assert chunk, f"end of stream after {len(received)} of {size} bytes"
        received += chunk
    return bytes(received)


def assert_no_end_of_stream(sock: socket.socket) -> None:
    """Nothing waits on ``sock`` (non-blocking), in particular no end of stream."""
    with pytest.raises(BlockingIOError):
        sock.recv(1)


def length_recorder() -> tuple[asyncio.Future[int], Callable[[int], None]]:
    """An end announcement (``end_far``, a copy's end) that resolves a future with the length it is
    given (and fails if called twice)."""
    heard: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    return heard, heard.set_result


def fill(sock: socket.socket, limit: int) -> bytes:
    """Sends from non-blocking ``sock`` what its peer takes now, up to ``limit`` bytes; returns it."""
    data = bytearray()
    chunk = b"z" * 16384
    while len(data) < limit:
        try:
            sent = sock.send(chunk[: limit - len(data)])
        except BlockingIOError:
            break
        data += chunk[:sent]
    return bytes(data)


def unread(sock: socket.socket) -> int:
    """Bytes waiting in ``sock``'s receive queue."""
    return int(struct.unpack("i", fcntl.ioctl(sock.fileno(), termios.FIONREAD, b"\0" * 4))[0])
