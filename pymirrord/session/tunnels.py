"""The session's idle tunnels to its agent, opened ahead so that a new connection waits for none.

Two pools, by what their tunnels are for. The agent picks an **incoming** tunnel for each stolen
connection it can tunnel and names it in ``NewConnection``; the session takes it from here (waiting if its
handshake is still under way). The session itself picks an **outgoing** tunnel (one whose handshake is
done) for a connection it asks the agent to make. Each tunnel taken is replaced by a new one. A pool that
cannot open tunnels (an agent that refuses them) stops trying: connections then travel as messages on
the websocket, as before.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import socket
from collections.abc import Callable

from pymirrord.session.tunnel_ends import TunnelEnds
from pymirrord.transport.connection import open_raw
from pymirrord.transport.errors import TransportError
from pymirrord.tunnel import ENDS_HEADER, ID_HEADER, KEY_HEADER, PATH, USE_HEADER

POOL_SIZE = 4
"""Idle tunnels kept open: enough for a burst of connections while replacements are opened."""
OPEN_TIMEOUT = 10.0
RESERVE_WAIT = 2.0
"""How long a connection of the session's own waits for a tunnel still opening before it goes as messages."""
SWITCH = "PYMIRRORD_TUNNELS"
"""Set to 0, stolen connections travel as messages on the websocket (to measure or rule out tunnels)."""


def tunnels_wanted() -> bool:
    return os.environ.get(SWITCH, "1") != "0"


class TunnelError(Exception):
    """A tunnel the agent picked cannot be used."""


class TunnelPool:
    def __init__(
        self,
        host: str,
        port: int,
        *,
        token: str,
        key: str,
        on_log: Callable[[str], None],
        use: str = "incoming",
        size: int = POOL_SIZE,
        first_id: int = 1,
        ends: TunnelEnds | None = None,
    ) -> None:
        """``ends``: the tunnels pass a port-forward, so they are counted (see ``tunnel_ends``)."""
        self._host = host
        self._port = port
        self._headers = {"Authorization": f"Bearer {token}", KEY_HEADER: key, USE_HEADER: use}
        if ends is not None:
            self._headers[ENDS_HEADER] = "counted"
        self._ends = ends
        self._on_log = on_log
        self._size = size
        self._ids = itertools.count(first_id, 2)  # two pools of one session never share a number
        self._opening: dict[int, asyncio.Task[tuple[socket.socket, bytes]]] = {}
        self._broken = False
        self._closed = False

    def start(self) -> None:
        for _ in range(self._size):
            self._open_one()

    def _open_one(self) -> None:
        if self._broken or self._closed:
            return
        tunnel_id = next(self._ids)
        headers = dict(self._headers, **{ID_HEADER: str(tunnel_id)})
        task = asyncio.get_running_loop().create_task(self._connect(tunnel_id, headers))
        self._opening[tunnel_id] = task
        task.add_done_callback(lambda done: self._opened(tunnel_id, done))

    async def _connect(self, tunnel_id: int, headers: dict[str, str]) -> tuple[socket.socket, bytes]:
        stream = await open_raw(self._host, self._port, path=PATH, headers=headers, timeout=OPEN_TIMEOUT)
        if self._ends is not None:
            peer = stream.sock.getsockname()
            self._ends.opened(tunnel_id, (peer[0], peer[1]), stream.request_length, stream.answer_length)
        return stream.sock, stream.rest

    def _opened(self, tunnel_id: int, task: asyncio.Task[tuple[socket.socket, bytes]]) -> None:
        if task.cancelled() or task.exception() is None:
            return
        self._opening.pop(tunnel_id, None)
        if not self._broken and not self._closed:
            self._broken = True
            self._on_log(
                f"connections are relayed on the websocket: cannot open a tunnel: {task.exception()}"
            )

    async def take(self, tunnel_id: int) -> tuple[socket.socket, bytes]:
        """The tunnel the agent picked (its socket, and bytes already read from it); a new one replaces it."""
        task = self._opening.pop(tunnel_id, None)
        if task is None:
            raise TunnelError(f"the agent picked tunnel {tunnel_id}, which this session has not opened")
        self._open_one()
        try:
            return await task
        except (OSError, TransportError, asyncio.TimeoutError) as error:
            raise TunnelError(f"tunnel {tunnel_id} failed: {error}") from None

    def reserve(self) -> tuple[int, asyncio.Task[tuple[socket.socket, bytes]]] | None:
        """An open tunnel this session picks for a connection of its own (outgoing), or None."""
        for tunnel_id, task in self._opening.items():
            if task.done() and not task.cancelled() and task.exception() is None:
                del self._opening[tunnel_id]
                self._open_one()
                return tunnel_id, task
        return None

    async def reserve_soon(
        self, timeout: float = RESERVE_WAIT
    ) -> tuple[int, asyncio.Task[tuple[socket.socket, bytes]]] | None:
        """``reserve``, waiting up to ``timeout`` for a handshake under way when no tunnel is open yet.

        A connection that finds no tunnel travels as messages for the whole of its life, at a fraction of a
        tunnel's speed: the app's first connections, made as it starts while the pool's handshakes are
        still on their way, are often its long-lived ones (a database, a broker)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while (reserved := self.reserve()) is None:
            pending = [task for task in self._opening.values() if not task.done()]
            remaining = deadline - loop.time()
            if not pending or self._broken or self._closed or remaining <= 0:
                return None
            await asyncio.wait(pending, timeout=remaining, return_when=asyncio.FIRST_COMPLETED)
        return reserved

    async def close(self) -> None:
        self._closed = True
        tasks = list(self._opening.values())
        self._opening.clear()
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(BaseException):
                sock, _ = await task
                sock.close()
