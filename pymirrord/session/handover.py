"""Receiving stolen connections from a local agent as sockets, and passing them on to a layer.

The agent sends each one on its SOCK_SEQPACKET handover socket: an 8-byte connection id with the
client's socket attached (SCM_RIGHTS). The matching ``NewConnection`` arrives on the websocket, before or
after; whichever comes second completes the pair.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct

from pymirrord.protocol import rights

_HEADER = struct.Struct(">Q")
_WAIT = 10.0
"""How long a connection announced on the websocket may wait for its socket before it is given up."""


class HandoverReceiver:
    """The session's end of an agent's handover socket."""

    def __init__(self, channel: socket.socket) -> None:
        self._channel = channel
        self._sockets: dict[int, socket.socket] = {}
        self._waiters: dict[int, asyncio.Future[None]] = {}
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(channel.fileno(), self._readable)

    @classmethod
    def open(cls, path: str, key: str) -> HandoverReceiver:
        channel = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            channel.connect(path)
            channel.sendall(key.encode("ascii"))
        except OSError:
            channel.close()
            raise
        channel.setblocking(False)
        return cls(channel)

    def expect(self, connection_id: int) -> None:
        if connection_id not in self._sockets:
            self._waiters.setdefault(connection_id, self._loop.create_future())

    async def wait_for(self, connection_id: int) -> None:
        """Returns once the connection's socket is here; ``TimeoutError`` if it does not come."""
        waiter = self._waiters.get(connection_id)
        if waiter is None:
            return
        try:
            await asyncio.wait_for(asyncio.shield(waiter), _WAIT)
        except asyncio.TimeoutError:
            raise TimeoutError(f"the agent did not hand over connection {connection_id}") from None

    def take(self, connection_id: int) -> socket.socket | None:
        """The connection's socket, now the caller's to pass on and close."""
        return self._sockets.pop(connection_id, None)

    def discard(self, connection_id: int) -> None:
        """Forgets the connection; a socket nobody took is closed (the client sees the connection end)."""
        waiter = self._waiters.pop(connection_id, None)
        if waiter is not None:
            waiter.cancel()
        leftover = self._sockets.pop(connection_id, None)
        if leftover is not None:
            leftover.close()

    def close(self) -> None:
        self._loop.remove_reader(self._channel.fileno())
        self._channel.close()
        for connection_id in list(self._sockets) + list(self._waiters):
            self.discard(connection_id)

    def _readable(self) -> None:
        while True:
            try:
                data, ancillary, _, _ = self._channel.recvmsg(_HEADER.size, rights.SPACE_FOR_ONE)
            except BlockingIOError:
                return
            except OSError:
                data, ancillary = b"", []
            descriptors = rights.descriptors(ancillary)
            if not data:
                self._loop.remove_reader(self._channel.fileno())
                for waiter in self._waiters.values():
                    if not waiter.done():
                        waiter.set_exception(ConnectionError("the agent closed the handover channel"))
                return
            if len(data) != _HEADER.size or len(descriptors) != 1:
                for descriptor in descriptors:
                    socket.socket(fileno=descriptor).close()
                continue
            (connection_id,) = _HEADER.unpack(data)
            self._sockets[connection_id] = socket.socket(fileno=descriptors[0])
            expected = self._waiters.pop(connection_id, None)
            if expected is not None and not expected.done():
                expected.set_result(None)


async def send_with_socket(channel: socket.socket, payload: bytes, attached: socket.socket) -> None:
    """Sends ``payload`` on the stream socket ``channel`` with ``attached`` riding on its first byte."""
    loop = asyncio.get_running_loop()
    while True:
        try:
            sent = channel.sendmsg([payload], rights.carrying(attached.fileno()))
            break
        except BlockingIOError:
            writable = loop.create_future()
            loop.add_writer(channel.fileno(), writable.set_result, None)
            try:
                await writable
            finally:
                loop.remove_writer(channel.fileno())
    if sent < len(payload):
        with contextlib.suppress(BlockingIOError):
            await loop.sock_sendall(channel, payload[sent:])
