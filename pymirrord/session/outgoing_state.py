"""The session's bookkeeping of outgoing connections and lookups, without I/O.

A layer's request gets a request id towards the agent; the agent's answer is matched back to the layer that
asked, which may have gone meanwhile (then a connection opened for it is closed again at once). Each open
connection remembers its layer (a UDP socket's end is only known from its layer) and how far each direction
has come: a TCP connection is over once the app and the remote peer have both finished sending.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

from pymirrord.protocol import session_to_agent as to_agent
from pymirrord.protocol.layer_to_session import ConnectRequest, ResolveRequest
from pymirrord.protocol.outgoing_types import Transport

LayerId = int


@dataclass
class PendingConnect:
    layer: LayerId
    request: ConnectRequest
    abandoned: bool = False
    """The layer stopped waiting (it left, or the answer came too late): an opened connection is closed."""


@dataclass
class OutgoingConnectionState:
    connection_id: int
    layer: LayerId
    transport: Transport
    app_done: bool = False
    remote_done: bool = False
    bytes_out: int = 0
    bytes_in: int = 0

    @property
    def finished(self) -> bool:
        return self.app_done and self.remote_done


class OutgoingState:
    """Every outgoing request in flight and every open outgoing connection of the session."""

    def __init__(self) -> None:
        self._request_ids = itertools.count(1)
        self.pending_connects: dict[int, PendingConnect] = {}
        self.pending_lookups: dict[int, LayerId] = {}
        self.connections: dict[int, OutgoingConnectionState] = {}

    # Requests -------------------------------------------------------------------------------

    def connect(
        self, layer: LayerId, request: ConnectRequest, *, handover: bool = False, tunnel: int = 0
    ) -> tuple[int, to_agent.OutgoingConnect]:
        """``handover``: ask for the connected socket itself (a local agent); ``tunnel``: the session's
        outgoing tunnel to carry the connection's bytes."""
        request_id = next(self._request_ids)
        self.pending_connects[request_id] = PendingConnect(layer, request)
        message = to_agent.OutgoingConnect(
            request_id, request.transport, request.remote, request.timeout_ms, handover, tunnel
        )
        return request_id, message

    def connect_answered(
        self, request_id: int, connection_id: int, succeeded: bool
    ) -> tuple[PendingConnect | None, list[to_agent.SessionToAgent]]:
        """The agent answered a connect: the request it answers (None if unknown) and messages to send back.

        A connection opened for a layer that stopped waiting is closed again at once.
        """
        pending = self.pending_connects.pop(request_id, None)
        if pending is None:
            return None, [to_agent.OutgoingClose(connection_id)] if succeeded else []
        if pending.abandoned:
            return None, [to_agent.OutgoingClose(connection_id)] if succeeded else []
        if succeeded:
            self.connections[connection_id] = OutgoingConnectionState(
                connection_id, pending.layer, pending.request.transport
            )
        return pending, []

    def handed_over(self, request_id: int) -> bool:
        """The agent passed the connected socket itself; True while the layer still waits for it."""
        pending = self.pending_connects.pop(request_id, None)
        return pending is not None and not pending.abandoned

    def abandon_connect(self, request_id: int) -> None:
        """The layer stopped waiting for ``request_id``; its answer, when it comes, is cleaned up."""
        pending = self.pending_connects.get(request_id)
        if pending is not None:
            pending.abandoned = True

    def lookup(self, layer: LayerId, request: ResolveRequest) -> tuple[int, to_agent.DnsLookup]:
        request_id = next(self._request_ids)
        self.pending_lookups[request_id] = layer
        message = to_agent.DnsLookup(
            request_id,
            request.host,
            request.port,
            request.family,
            request.kind,
            request.proto,
            request.canonical_name,
            request.address_config,
        )
        return request_id, message

    def lookup_answered(self, request_id: int) -> LayerId | None:
        return self.pending_lookups.pop(request_id, None)

    # Connections ----------------------------------------------------------------------------

    def from_app(self, connection_id: int, size: int) -> OutgoingConnectionState | None:
        """The app sent ``size`` bytes (0: a TCP half-close); None when the connection is already over."""
        connection = self.connections.get(connection_id)
        if connection is None:
            return None
        connection.bytes_out += size
        if size == 0 and connection.transport is Transport.TCP:
            connection.app_done = True
        return connection

    def from_remote(self, connection_id: int, size: int) -> OutgoingConnectionState | None:
        """The remote peer sent ``size`` bytes (0: end of stream); None when the connection is over."""
        connection = self.connections.get(connection_id)
        if connection is None:
            return None
        connection.bytes_in += size
        if size == 0 and connection.transport is Transport.TCP:
            connection.remote_done = True
        return connection

    def closed_by_app(
        self, connection_id: int, layer: LayerId | None = None
    ) -> list[to_agent.SessionToAgent]:
        """The app's side is gone: forget the connection and close it in the pod.

        With ``layer``, only a connection of that layer is closed (a layer names only its own).
        """
        connection = self.connections.get(connection_id)
        if connection is None or (layer is not None and connection.layer != layer):
            return []
        del self.connections[connection_id]
        return [to_agent.OutgoingClose(connection_id)]

    def closed_by_agent(self, connection_id: int) -> OutgoingConnectionState | None:
        """The agent closed the connection; nothing more is sent to it about the id."""
        return self.connections.pop(connection_id, None)

    def layer_gone(self, layer: LayerId) -> tuple[list[int], list[to_agent.SessionToAgent]]:
        """A layer disconnected (its process ended): its UDP connections end, its requests are abandoned.

        Returns the ids of the connections to release locally and the messages for the agent. TCP
        connections end by themselves when the app's sockets close.
        """
        for pending in self.pending_connects.values():
            if pending.layer == layer:
                pending.abandoned = True
        for request_id in [r for r, owner in self.pending_lookups.items() if owner == layer]:
            del self.pending_lookups[request_id]
        gone = [
            c.connection_id
            for c in self.connections.values()
            if c.layer == layer and c.transport is Transport.UDP
        ]
        messages: list[to_agent.SessionToAgent] = []
        for connection_id in gone:
            messages += self.closed_by_app(connection_id)
        return gone, messages

    def agent_lost(self) -> list[int]:
        """The agent is gone: every connection and request is over; returns the connection ids."""
        gone = list(self.connections)
        self.connections.clear()
        self.pending_connects.clear()
        self.pending_lookups.clear()
        return gone
