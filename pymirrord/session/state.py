"""The session's bookkeeping, without I/O: which layer serves which pod port, who is behind each local
connection, and where each relayed connection stands.

The asyncio shell feeds events in (a layer asked to listen, the agent confirmed, a connection arrived,
bytes flowed) and carries out the actions that come back. Everything here is plain data, so every
lifecycle edge (a layer vanishing mid-subscription, data for a finished connection) is unit-tested.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import Enum

from pymirrord.protocol import session_to_agent as to_agent
from pymirrord.protocol import session_to_layer as to_layer
from pymirrord.protocol.http_types import HttpFilterSpec
from pymirrord.protocol.types import Mode, SocketAddress

LayerId = int


@dataclass(frozen=True)
class SendToAgent:
    message: to_agent.SessionToAgent


@dataclass(frozen=True)
class ReplyToLayer:
    layer: LayerId
    message: to_layer.SessionToLayer


@dataclass(frozen=True)
class OpenToApp:
    """Connect to the app's real listener at ``address`` and relay connection ``connection_id``.

    ``handed_over``: the client's socket itself comes from the agent; the app gets it in place of the
    connection it accepts, and nothing is relayed. ``tunnel`` (not 0): the connection's bytes come and
    go through that tunnel, not as messages.
    """

    connection_id: int
    address: SocketAddress
    mode: Mode
    handed_over: bool = False
    tunnel: int = 0


@dataclass(frozen=True)
class PortServed:
    """A pod port's subscription became active; the user is told (``pymirrord: port 80 stolen``)."""

    port: int
    mode: Mode


Action = SendToAgent | ReplyToLayer | OpenToApp | PortServed


class ListenerState(Enum):
    PENDING = "pending"
    ACTIVE = "active"


@dataclass
class Listener:
    """A pod port served by one layer; an app may listen on it twice (``0.0.0.0:80`` and ``[::]:80``)."""

    layer: LayerId
    port: int
    addresses: list[SocketAddress]
    state: ListenerState

    @property
    def address(self) -> SocketAddress:
        """Where connections go: the app's first listener that is still open."""
        return self.addresses[0]


@dataclass
class Connection:
    connection_id: int
    port: int
    mode: Mode
    client: SocketAddress
    local: SocketAddress
    source_port: int | None = None
    bytes_in: int = 0
    bytes_out: int = 0


@dataclass
class Counters:
    connections: dict[Mode, int] = field(default_factory=lambda: {Mode.MIRROR: 0, Mode.STEAL: 0})
    bytes_in: int = 0
    bytes_out: int = 0


class SessionState:
    """All the session knows about its layers, its pod ports and its live connections."""

    def __init__(self, mode: Mode, handover: bool = False) -> None:
        self.mode = mode
        self.handover = handover
        """Stolen connections may come as sockets (the agent runs on this machine)."""
        self.listeners: dict[int, Listener] = {}
        self.connections: dict[int, Connection] = {}
        self.counters = Counters()
        self._peers: dict[int, int] = {}  # local source port -> connection id
        self.http_filter: HttpFilterSpec | None = None
        """Only the HTTP requests this matches are delivered, on ``http_ports`` only."""
        self.http_ports: tuple[int, ...] = (80, 8080)

    # Layers ---------------------------------------------------------------------------------

    def layer_listen(self, layer: LayerId, port: int, address: SocketAddress) -> list[Action]:
        current = self.listeners.get(port)
        if current is not None and current.layer != layer:
            error = f"port {port} is already served by another process of this session"
            return [ReplyToLayer(layer, to_layer.ListenResult(port, None, error))]
        if current is not None:
            # The layer asks one request at a time, so a second listener finds the first one answered.
            current.addresses.append(address)
            return [ReplyToLayer(layer, to_layer.ListenResult(port, self.mode, None))]
        if self.http_filter is not None and port not in self.http_ports:
            covered = ", ".join(str(p) for p in self.http_ports)
            error = (
                f"port {port} is not in http_filter.ports ({covered}): with an HTTP filter only those "
                f"ports are {'stolen' if self.mode is Mode.STEAL else 'mirrored'}; "
                f"add {port} to http_filter.ports to filter it as HTTP"
            )
            return [ReplyToLayer(layer, to_layer.ListenResult(port, None, error))]
        self.listeners[port] = Listener(layer, port, [address], ListenerState.PENDING)
        if self.http_filter is not None:
            return [SendToAgent(to_agent.PortSubscribe(port, self.mode, False, self.http_filter))]
        # The agent's sockets are IPv4: an IPv6 listener gets its connections relayed.
        handover = self.handover and self.mode is Mode.STEAL and ":" not in address.host
        return [SendToAgent(to_agent.PortSubscribe(port, self.mode, handover))]

    def layer_closed_listener(self, layer: LayerId, port: int, address: SocketAddress) -> list[Action]:
        listener = self.listeners.get(port)
        if listener is None or listener.layer != layer or address not in listener.addresses:
            return []
        listener.addresses.remove(address)
        if listener.addresses:
            return []
        del self.listeners[port]
        return [SendToAgent(to_agent.PortUnsubscribe(port))]

    def layer_gone(self, layer: LayerId) -> list[Action]:
        actions: list[Action] = []
        for port in [p for p, listener in self.listeners.items() if listener.layer == layer]:
            del self.listeners[port]
            actions.append(SendToAgent(to_agent.PortUnsubscribe(port)))
        return actions

    def peer_of(self, source_port: int) -> to_layer.PeerAnswer:
        connection_id = self._peers.get(source_port)
        connection = self.connections.get(connection_id) if connection_id is not None else None
        if connection is None:
            return to_layer.PeerAnswer(None, None, handover=False)
        return to_layer.PeerAnswer(connection.client, connection.local, handover=False)

    def connection_at(self, source_port: int) -> int | None:
        """The connection the relay opened from local ``source_port``, if any."""
        return self._peers.get(source_port)

    # Agent ----------------------------------------------------------------------------------

    def subscribe_result(self, port: int, mode: Mode, error: str | None) -> list[Action]:
        listener = self.listeners.get(port)
        if listener is None:
            # The layer closed its listener before the agent answered: undo the subscription.
            return [] if error else [SendToAgent(to_agent.PortUnsubscribe(port))]
        if error is not None:
            del self.listeners[port]
            return [ReplyToLayer(listener.layer, to_layer.ListenResult(port, None, error))]
        listener.state = ListenerState.ACTIVE
        return [
            ReplyToLayer(listener.layer, to_layer.ListenResult(port, mode, None)),
            PortServed(port, mode),
        ]

    def new_connection(
        self,
        connection_id: int,
        port: int,
        mode: Mode,
        client: SocketAddress,
        local: SocketAddress,
        *,
        handed_over: bool = False,
        tunnel: int = 0,
    ) -> list[Action]:
        listener = self.listeners.get(port)
        # A pending listener takes connections too: the agent's rule goes live just before its answer.
        if listener is None:
            return [SendToAgent(to_agent.ConnectionClose(connection_id))]
        self.connections[connection_id] = Connection(connection_id, port, mode, client, local)
        self.counters.connections[mode] += 1
        return [OpenToApp(connection_id, listener.address, mode, handed_over, tunnel)]

    # Connections ----------------------------------------------------------------------------

    def app_connecting(self, connection_id: int, source_port: int) -> None:
        """The relay bound its socket to ``source_port`` and is about to connect to the app."""
        connection = self.connections.get(connection_id)
        if connection is not None:
            connection.source_port = source_port
            self._peers[source_port] = connection_id

    def app_unreachable(self, connection_id: int) -> list[Action]:
        if self.forget(connection_id) is None:
            return []
        return [SendToAgent(to_agent.ConnectionClose(connection_id))]

    def from_client(self, connection_id: int, size: int) -> bool:
        """Counts bytes the remote client sent; False when the connection is unknown (already over)."""
        connection = self.connections.get(connection_id)
        if connection is None:
            return False
        connection.bytes_in += size
        self.counters.bytes_in += size
        return True

    def tunnel_moved(self, connection_id: int, to_app: bool, size: int) -> None:
        """Counts bytes a tunnel carried: from the client to the app, or back."""
        connection = self.connections.get(connection_id)
        if to_app:
            self.counters.bytes_in += size
            if connection is not None:
                connection.bytes_in += size
        else:
            self.counters.bytes_out += size
            if connection is not None:
                connection.bytes_out += size

    def from_app(self, connection_id: int, data: bytes) -> list[Action]:
        """Bytes (or EOF, when empty) the local app sent; only a stolen connection's reach the client."""
        connection = self.connections.get(connection_id)
        if connection is None or connection.mode is not Mode.STEAL:
            return []
        connection.bytes_out += len(data)
        self.counters.bytes_out += len(data)
        return [SendToAgent(to_agent.ConnectionWrite(connection_id, data))]

    def app_closed(self, connection_id: int) -> list[Action]:
        """The app's side of the connection is finished or broken: release it towards the agent."""
        connection = self.forget(connection_id)
        if connection is None:
            return []
        if connection.mode is Mode.MIRROR:
            return [SendToAgent(to_agent.ConnectionUnsubscribe(connection_id))]
        return [SendToAgent(to_agent.ConnectionClose(connection_id))]

    def forget(self, connection_id: int) -> Connection | None:
        connection = self.connections.pop(connection_id, None)
        if connection is not None and connection.source_port is not None:
            self._peers.pop(connection.source_port, None)
        return connection

    def ports(self) -> Iterator[Listener]:
        return iter(self.listeners.values())
