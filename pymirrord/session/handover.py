"""Receiving stolen connections from a local agent as sockets, and passing them on to a layer.

The agent sends each one on its SOCK_SEQPACKET handover socket: an 8-byte connection id with the
client's socket attached (SCM_RIGHTS). The matching ``NewConnection`` arrives on the websocket, before or
after; whichever comes second completes the pair.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket

from pymirrord.protocol import handover_channel, rights
from pymirrord.protocol.errors import ProtocolError
from pymirrord.protocol.handover_channel import Key, Kind

_WAIT = 10.0
"""How long a connection announced on the websocket may wait for its socket before it is given up."""


class HandoverReceiver:
    """The session's end of an agent's handover socket."""

    def __init__(self, channel: socket.socket) -> None:
        self._channel = channel
        self._sockets: dict[Key, socket.socket] = {}
        self._waiters: dict[Key, asyncio.Future[None]] = {}
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

    def expect(self, key: Key) -> None:
        if key not in self._sockets:
            self._waiters.setdefault(key, self._loop.create_future())

    async def wait_for(self, key: Key) -> None:
        """Returns once the socket for ``key`` is here; ``TimeoutError`` if it does not come."""
        waiter = self._waiters.get(key)
        if waiter is None:
            return
        try:
            await asyncio.wait_for(asyncio.shield(waiter), _WAIT)
        except asyncio.TimeoutError:
            raise TimeoutError(f"the agent did not hand over {key[0].name.lower()} {key[1]}") from None

    async def receive(self, key: Key) -> socket.socket:
        """The socket for ``key``, waiting for it if it has not arrived yet."""
        self.expect(key)
        try:
            await self.wait_for(key)
        finally:
            self._waiters.pop(key, None)
        sock = self.take(key)
        if sock is None:
            raise TimeoutError(f"the agent did not hand over {key[0].name.lower()} {key[1]}")
        return sock

    def take(self, key: Key) -> socket.socket | None:
        """The socket for ``key``, now the caller's to pass on and close."""
        return self._sockets.pop(key, None)

    def discard(self, key: Key) -> None:
        """Forgets ``key``; a socket nobody took is closed (its peer sees the connection end)."""
        waiter = self._waiters.pop(key, None)
        if waiter is not None:
            waiter.cancel()
        leftover = self._sockets.pop(key, None)
        if leftover is not None:
            leftover.close()

    def give(self, kind: Kind, identifier: int, sock: socket.socket) -> bool:
        """Sends ``sock`` to the agent (the agent gets its own duplicate); False if the channel cannot
        take it now."""
        try:
            self._channel.sendmsg([handover_channel.encode(kind, identifier)], rights.carrying(sock.fileno()))
        except OSError:
            return False
        return True

    def close(self) -> None:
        self._loop.remove_reader(self._channel.fileno())
        self._channel.close()
        for key in list(self._sockets) + list(self._waiters):
            self.discard(key)

    def _readable(self) -> None:
        while True:
            try:
                data, ancillary, _, _ = self._channel.recvmsg(handover_channel.SIZE, rights.SPACE_FOR_ONE)
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
            try:
                key = handover_channel.decode(data)
            except ProtocolError:
                key = None
            if key is None or len(descriptors) != 1:
                for descriptor in descriptors:
                    socket.socket(fileno=descriptor).close()
                continue
            self._sockets[key] = socket.socket(fileno=descriptors[0])
            expected = self._waiters.pop(key, None)
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
