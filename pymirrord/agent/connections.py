"""The life of each redirected connection: ids, who serves it, who gets copies, half-closes (sans-I/O).

``ConnectionTable`` is fed what happens on the client's socket (data, end of stream, gone) and what sessions
ask (write, close, unsubscribe, disconnect), and answers with effects for the I/O shell to carry out:
messages to send to sessions, bytes or a half-close to write to the client, a client socket to close.

A connection is *owned* by the session that steals it, or by the pod's app (``owner`` None) when it is only
mirrored; mirroring sessions hold *copies*. Messages about copies are marked ``copy=True``: the shell may
refuse them when that session lags far behind, and then calls ``drop_copy`` so the session hears about it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from pymirrord.agent.subscriptions import Route
from pymirrord.protocol.agent_to_session import (
    AgentToSession,
    ConnectionClosed,
    ConnectionRead,
    ConnectionWriteFlow,
    Log,
    NewConnection,
)
from pymirrord.protocol.types import LogLevel, Mode, SocketAddress


@dataclass(frozen=True)
class Send:
    """Send ``message`` to ``session``; ``copy`` marks mirrored data the shell may refuse (``drop_copy``)."""

    session: int
    message: AgentToSession
    copy: bool = False


@dataclass(frozen=True)
class WriteClient:
    """Write ``data`` to the client; empty ``data`` shuts down writing (the client reads end of stream)."""

    connection_id: int
    data: bytes


@dataclass(frozen=True)
class CloseClient:
    """Close the client's socket; nothing more is read from or written to it."""

    connection_id: int


@dataclass(frozen=True)
class PauseClient:
    """Stop (``paused``) or resume reading the client; its other direction and other connections go on."""

    connection_id: int
    paused: bool


Effect = Send | WriteClient | CloseClient | PauseClient


@dataclass
class Connection:
    """What the table knows about one connection."""

    id: int
    port: int
    client: SocketAddress
    local: SocketAddress
    owner: int | None
    # A dict keeps the subscription order, so copies go out in a predictable order.
    copies: dict[int, None] = field(default_factory=dict)
    client_eof: bool = False
    """The client will send nothing more."""
    owner_eof: bool = False
    """The stealing session will send nothing more (it sent an empty ``ConnectionWrite``)."""
    reading_paused: bool = False
    """The stealing session asked to stop reading the client until its app catches up."""
    writes_paused: bool = False
    """The stealing session was asked to stop writing until the client catches up."""

    def audience(self) -> Iterable[tuple[int, bool]]:
        """Every session told about this connection, with whether its messages are copies."""
        if self.owner is not None:
            yield self.owner, False
        for session in self.copies:
            yield session, True


class ConnectionTable:
    """Bookkeeping for every open redirected connection that at least one session hears about."""

    def __init__(self) -> None:
        self._connections: dict[int, Connection] = {}
        self._next_id = 1

    def __len__(self) -> int:
        return len(self._connections)

    def get(self, connection_id: int) -> Connection | None:
        return self._connections.get(connection_id)

    def ids(self) -> tuple[int, ...]:
        return tuple(self._connections)

    # --- the client's side -------------------------------------------------------------------------------

    def open(
        self,
        port: int,
        route: Route,
        client: SocketAddress,
        local: SocketAddress,
        *,
        tunnel: int = 0,
        copy_tunnels: Mapping[int, int] | None = None,
    ) -> tuple[int, list[Effect]]:
        """A client connected to ``port``; announce it to the stealer and the mirrors of ``route``.

        ``tunnel``: the stealer's tunnel that carries the bytes (a route without mirrors only);
        ``copy_tunnels``: the tunnel of each mirroring session that gets its copy through one (all of them,
        or the copies go as messages)."""
        if tunnel and route.mirrors:
            raise ValueError("a tunneled stolen connection has no copies: mirrors need its bytes")
        connection_id = self._next_id
        self._next_id += 1
        connection = Connection(connection_id, port, client, local, route.stealer)
        connection.copies = dict.fromkeys(session for session in route.mirrors if session != route.stealer)
        self._connections[connection_id] = connection
        effects: list[Effect] = []
        for session, is_copy in connection.audience():
            mode = Mode.MIRROR if is_copy else Mode.STEAL
            through = (copy_tunnels or {}).get(session, 0) if is_copy else tunnel
            # The announcement is never refused: a copy dropped later is then reported under a known id.
            effects.append(
                Send(session, NewConnection(connection_id, port, mode, client, local, False, through))
            )
        return connection_id, effects

    def hand_over(
        self, port: int, session: int, client: SocketAddress, local: SocketAddress
    ) -> tuple[int, list[Effect]]:
        """A client's socket goes to ``session`` itself: an id and the announcement, nothing to track."""
        connection_id = self._next_id
        self._next_id += 1
        announcement = NewConnection(connection_id, port, Mode.STEAL, client, local, handed_over=True)
        return connection_id, [Send(session, announcement)]

    def client_data(self, connection_id: int, data: bytes) -> list[Effect]:
        """The client sent ``data`` (never empty: an end of stream is ``client_eof``)."""
        if not data:
            raise ValueError("client_data needs bytes; an end of stream is client_eof")
        connection = self._connections.get(connection_id)
        if connection is None:
            return []
        message = ConnectionRead(connection_id, data)
        return [Send(session, message, is_copy) for session, is_copy in connection.audience()]

    def client_eof(self, connection_id: int) -> list[Effect]:
        """The client half-closed: it will send nothing more but may still read."""
        connection = self._connections.get(connection_id)
        if connection is None or connection.client_eof:
            return []
        connection.client_eof = True
        message = ConnectionRead(connection_id, b"")
        effects: list[Effect] = [Send(session, message) for session, _ in connection.audience()]
        if connection.owner is not None and connection.owner_eof:
            effects.extend(self._finish(connection, "both sides closed"))
        return effects

    def closed(self, connection_id: int, reason: str) -> list[Effect]:
        """The connection is gone on the pod's side (client reset, passthrough finished, I/O error)."""
        connection = self._connections.pop(connection_id, None)
        if connection is None:
            return []
        message = ConnectionClosed(connection_id, reason)
        return [Send(session, message) for session, _ in connection.audience()]

    # --- the sessions' side ------------------------------------------------------------------------------

    def write(self, session: int, connection_id: int, data: bytes) -> list[Effect]:
        """``session`` sent ``data`` for the client; only the owner's writes count (mirrors' go nowhere)."""
        connection = self._connections.get(connection_id)
        if connection is None or connection.owner != session:
            # Unknown ids are normal: the client may have gone while the session was still writing.
            return []
        if connection.owner_eof:
            if not data:
                return []
            return [
                Send(
                    session,
                    Log(
                        LogLevel.WARNING, f"connection {connection_id}: data after the half-close was dropped"
                    ),
                )
            ]
        if data:
            return [WriteClient(connection_id, data)]
        connection.owner_eof = True
        effects: list[Effect] = [WriteClient(connection_id, b"")]
        if connection.client_eof:
            effects.extend(self._finish(connection, "both sides closed"))
        return effects

    def close(self, session: int, connection_id: int) -> list[Effect]:
        """``session`` is done with the connection: the owner closes the client, a mirror stops its copy."""
        connection = self._connections.get(connection_id)
        if connection is None:
            return []
        if connection.owner == session:
            del self._connections[connection_id]
            message = ConnectionClosed(connection_id, "closed by the session that stole it")
            effects: list[Effect] = [CloseClient(connection_id)]
            effects.extend(Send(copy, message) for copy in connection.copies)
            return effects
        connection.copies.pop(session, None)
        return []

    def read_flow(self, session: int, connection_id: int, paused: bool) -> list[Effect]:
        """``session`` asks to stop or resume reading the client; only its owner may (never a copy)."""
        connection = self._connections.get(connection_id)
        if connection is None or connection.owner != session or connection.reading_paused == paused:
            return []
        connection.reading_paused = paused
        return [PauseClient(connection_id, paused)]

    def write_flow(self, connection_id: int, paused: bool) -> list[Effect]:
        """Too much (``paused``) or again little of the owner's data waits for the client: tell the owner."""
        connection = self._connections.get(connection_id)
        if connection is None or connection.owner is None or connection.writes_paused == paused:
            return []
        connection.writes_paused = paused
        return [Send(connection.owner, ConnectionWriteFlow(connection_id, paused))]

    def unsubscribe(self, session: int, connection_id: int) -> list[Effect]:
        """``session`` wants no more copies; for the stealer this is a close (nobody else would serve it)."""
        return self.close(session, connection_id)

    def drop_copy(self, session: int, connection_id: int, reason: str) -> list[Effect]:
        """The shell could not queue a copy for ``session``: end its copy and tell it why."""
        connection = self._connections.get(connection_id)
        if connection is None or session not in connection.copies:
            return []
        del connection.copies[session]
        return [
            Send(session, Log(LogLevel.WARNING, f"mirrored connection {connection_id} dropped: {reason}")),
            Send(session, ConnectionClosed(connection_id, reason)),
        ]

    def session_gone(self, session: int) -> list[Effect]:
        """``session`` disconnected: close what it stole, stop its copies; it hears nothing more."""
        effects: list[Effect] = []
        for connection in list(self._connections.values()):
            if connection.owner == session:
                del self._connections[connection.id]
                effects.append(CloseClient(connection.id))
                message = ConnectionClosed(connection.id, "the session that stole it disconnected")
                effects.extend(Send(copy, message) for copy in connection.copies if copy != session)
            else:
                connection.copies.pop(session, None)
        return effects

    def _finish(self, connection: Connection, reason: str) -> list[Effect]:
        del self._connections[connection.id]
        message = ConnectionClosed(connection.id, reason)
        effects: list[Effect] = [CloseClient(connection.id)]
        effects.extend(Send(session, message) for session, _ in connection.audience())
        return effects
