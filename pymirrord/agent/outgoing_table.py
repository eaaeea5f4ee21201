"""Bookkeeping of the agent's outgoing connections, without I/O.

Each connection belongs to the session that opened it; only that session may write to or close it. A TCP
connection is over when both directions have ended (the app half-closed and the remote peer did too), when
either side breaks, or when the session closes it. ``OutgoingTable`` answers the questions the asyncio shell
asks on each of those events; ``describe_error`` turns an ``OSError`` into the portable errno name the
protocol carries.
"""

from __future__ import annotations

import errno
import itertools
from collections.abc import Iterator
from dataclasses import dataclass

from pymirrord.protocol.outgoing_types import Transport
from pymirrord.protocol.types import SocketAddress


@dataclass
class OutgoingConnection:
    id: int
    session: int
    transport: Transport
    remote: SocketAddress
    local: SocketAddress
    app_done: bool = False
    """The app half-closed (sent an empty write): nothing more goes to the remote peer."""
    remote_done: bool = False
    """The remote peer half-closed: nothing more comes from it."""
    bytes_out: int = 0
    bytes_in: int = 0


class OutgoingTable:
    """Every open outgoing connection of the agent, by id and by session."""

    def __init__(self) -> None:
        self._ids = itertools.count(1)
        self._connections: dict[int, OutgoingConnection] = {}

    def __len__(self) -> int:
        return len(self._connections)

    def __iter__(self) -> Iterator[OutgoingConnection]:
        return iter(list(self._connections.values()))

    def open(self, session: int, transport: Transport, remote: SocketAddress, local: SocketAddress) -> int:
        connection_id = next(self._ids)
        self._connections[connection_id] = OutgoingConnection(
            connection_id, session, transport, remote, local
        )
        return connection_id

    def owned(self, session: int, connection_id: int) -> OutgoingConnection | None:
        """The connection if ``session`` owns it; a session never touches another session's connections."""
        connection = self._connections.get(connection_id)
        if connection is None or connection.session != session:
            return None
        return connection

    def get(self, connection_id: int) -> OutgoingConnection | None:
        return self._connections.get(connection_id)

    def from_app(self, connection_id: int, size: int) -> bool:
        """The app sent ``size`` bytes (0: a TCP half-close); True when both directions are now done."""
        connection = self._connections.get(connection_id)
        if connection is None:
            return False
        connection.bytes_out += size
        if size == 0 and connection.transport is Transport.TCP:
            connection.app_done = True
        return connection.app_done and connection.remote_done

    def from_remote(self, connection_id: int, size: int) -> bool:
        """The remote peer sent ``size`` bytes (0: end of stream); True when both directions are now done."""
        connection = self._connections.get(connection_id)
        if connection is None:
            return False
        connection.bytes_in += size
        if size == 0 and connection.transport is Transport.TCP:
            connection.remote_done = True
        return connection.app_done and connection.remote_done

    def forget(self, connection_id: int) -> OutgoingConnection | None:
        return self._connections.pop(connection_id, None)

    def session_gone(self, session: int) -> list[int]:
        """Forgets the session's connections; returns their ids (the shell closes their sockets)."""
        gone = [c.id for c in self._connections.values() if c.session == session]
        for connection_id in gone:
            del self._connections[connection_id]
        return gone


def describe_error(error: BaseException) -> tuple[str, str]:
    """The errno name (``ECONNREFUSED``) and a message for a failed connect or a broken connection."""
    if isinstance(error, OSError) and error.errno is not None:
        name = errno.errorcode.get(error.errno, "EIO")
        return name, error.strerror or name
    if isinstance(error, TimeoutError):
        return "ETIMEDOUT", "the connection attempt timed out"
    return "EIO", str(error) or type(error).__name__
