"""Handing stolen connections to sessions on the agent's own machine, as sockets.

A session that runs next to the agent (a local target) opens the agent's unix SOCK_SEQPACKET socket and
sends the key it got in ``AgentHello``. From then on each connection it steals arrives there as the
client's socket itself (SCM_RIGHTS, one message per connection carrying its id), so its bytes never
cross the websocket and the app ends up talking to the client directly. Sessions elsewhere (through a
Kubernetes port-forward) cannot open the socket and keep the websocket relay.

The channel also carries sockets the other way: connections to a session's local app, which the agent asked
for (``HttpConnectionWanted``) to send that session's matching HTTP requests on. They go to ``on_app``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import shutil
import socket
import tempfile
from collections.abc import Callable

from pymirrord.protocol import handover_channel, rights
from pymirrord.protocol.errors import ProtocolError
from pymirrord.protocol.handover_channel import Kind

log = logging.getLogger("pymirrord.agent")

_KEY_BYTES = 16


def private_directory() -> str:
    """A new directory only this user (root, for a local agent) can enter, for the handover socket."""
    return tempfile.mkdtemp(prefix="pymirrord-agent-")


class HandoverChannels:
    """The agent's handover socket and, per session, the channel that session opened on it."""

    def __init__(self, directory: str) -> None:
        """``directory``: private (0700, see ``private_directory``); the channel's socket lives in it, and
        ``close`` removes it (the agent's guard does, if the agent is killed)."""
        self._directory = directory
        self.path = os.path.join(self._directory, "handover.sock")
        self._listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self._listener.bind(self.path)
        self._listener.listen(16)
        self._listener.setblocking(False)
        self._keys: dict[str, int] = {}
        self._channels: dict[int, socket.socket] = {}
        self._task: asyncio.Task[None] | None = None
        self._registering: set[asyncio.Task[None]] = set()
        self.on_app: Callable[[int, int, socket.socket], None] | None = None
        """Takes (session, port, socket) for each app connection a session hands over; it owns the socket."""

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._accept_loop())

    def key_for(self, session: int) -> str:
        """A fresh key that lets ``session`` (and nobody else) open its channel."""
        key = secrets.token_hex(_KEY_BYTES)
        self._keys[key] = session
        return key

    def forget(self, session: int) -> None:
        for key in [key for key, owner in self._keys.items() if owner == session]:
            del self._keys[key]
        channel = self._channels.pop(session, None)
        if channel is not None:
            self._stop_reading(channel)
            channel.close()

    def can_take(self, session: int) -> bool:
        return session in self._channels

    def send(self, session: int, kind: Kind, identifier: int, sock: socket.socket) -> bool:
        """Passes ``sock`` to the session; False (the caller relays instead) when that is not possible."""
        channel = self._channels.get(session)
        if channel is None:
            return False
        try:
            channel.sendmsg([handover_channel.encode(kind, identifier)], rights.carrying(sock.fileno()))
        except OSError as error:
            # A full or broken channel: this connection is relayed, later ones may still be handed over.
            log.warning(
                "could not hand %s %d to session %d: %s", kind.name.lower(), identifier, session, error
            )
            return False
        return True

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for channel in self._channels.values():
            self._stop_reading(channel)
            channel.close()
        self._channels.clear()
        self._listener.close()
        shutil.rmtree(self._directory, ignore_errors=True)

    async def _accept_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            channel, _ = await loop.sock_accept(self._listener)
            task = loop.create_task(self._register(channel))
            self._registering.add(task)
            task.add_done_callback(self._registering.discard)

    async def _register(self, channel: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        try:
            key = (await asyncio.wait_for(loop.sock_recv(channel, 256), 10)).decode("ascii", "replace")
        except (OSError, asyncio.TimeoutError):
            channel.close()
            return
        session = self._keys.pop(key.strip(), None)
        if session is None:
            log.warning("a handover channel presented an unknown key; closed")
            channel.close()
            return
        channel.setblocking(False)
        self._channels[session] = channel
        loop.add_reader(channel.fileno(), self._readable, session, channel)
        log.info("session %d takes stolen connections as sockets", session)

    def _stop_reading(self, channel: socket.socket) -> None:
        with contextlib.suppress(ValueError, RuntimeError):  # closed already, or the loop is gone
            asyncio.get_running_loop().remove_reader(channel.fileno())

    def _readable(self, session: int, channel: socket.socket) -> None:
        while True:
            try:
                data, ancillary, _, _ = channel.recvmsg(handover_channel.SIZE, rights.SPACE_FOR_ONE)
            except BlockingIOError:
                return
            except OSError:
                data, ancillary = b"", []
            received = _sockets(rights.descriptors(ancillary))
            if not data:
                self._stop_reading(channel)  # the session closed its end; forget() closes ours
                for sock in received:
                    sock.close()
                return
            key: handover_channel.Key | None = None
            try:
                key = handover_channel.decode(data)
            except ProtocolError as error:
                log.warning("session %d sent a bad handover message: %s", session, error)
            on_app = self.on_app
            if (
                key is None
                or key[0] is not Kind.APP
                or len(received) != 1
                or received[0].type != socket.SOCK_STREAM
                or on_app is None
            ):
                for sock in received:
                    sock.close()
                continue
            on_app(session, key[1], received[0])


def _sockets(descriptors: list[int]) -> list[socket.socket]:
    """The received descriptors as sockets; any that is not a socket is closed and left out."""
    found: list[socket.socket] = []
    for descriptor in descriptors:
        try:
            found.append(socket.socket(fileno=descriptor))
        except OSError:
            os.close(descriptor)
    return found
