"""Messages a layer (inside the user's process) sends to the session over the local socket.

Every request is answered before the layer sends the next one on the same socket, so requests
carry no ids: the layer serialises them with a lock.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Union

from pymirrord.protocol.codec import Codec, codec_for
from pymirrord.protocol.outgoing_types import AddressFamily, SocketKind, Transport
from pymirrord.protocol.types import SocketAddress


@dataclass(frozen=True)
class LayerHello:
    """Layer -> session, first message: protocol version and which process this layer lives in.

    Answered by ``SessionHello``.
    """

    TAG: ClassVar[int] = 1
    protocol_version: int
    pid: int
    parent_pid: int


@dataclass(frozen=True)
class ListenRequest:
    """Layer -> session: the app listens on pod ``port``; deliver that port's connections to ``address``.

    ``address`` is where the app's socket really listens on this machine. Answered by ``ListenResult``
    once the agent has confirmed (or refused) the subscription.
    """

    TAG: ClassVar[int] = 10
    port: int
    address: SocketAddress


@dataclass(frozen=True)
class ListenClosed:
    """Layer -> session: the app closed its listener at ``address`` for pod ``port``; no answer.

    An app may listen on one pod port twice (IPv4 and IPv6); the port is released when both are closed.
    """

    TAG: ClassVar[int] = 11
    port: int
    address: SocketAddress


@dataclass(frozen=True)
class PeerQuery:
    """Layer -> session: who is really behind the connection that the app accepted from local ``port``?

    The session connects to the app's listener from a local port it records first, so the answer is
    known by the time the app accepts. Answered by ``PeerAnswer``.
    """

    TAG: ClassVar[int] = 12
    port: int


@dataclass(frozen=True)
class ConnectRequest:
    """Layer -> session: the app connects a socket to ``remote``; open that connection from the pod.

    The session asks the agent, then opens a local interceptor that relays to the pod's connection, and
    answers ``ConnectAnswer`` with the interceptor's address, to which the layer really connects the app's
    socket. ``ipv6_socket`` says the app's socket is ``AF_INET6`` (the interceptor must be reachable from
    it); ``timeout_ms`` bounds the handshake in the pod (0: the default).
    """

    TAG: ClassVar[int] = 30
    transport: Transport
    remote: SocketAddress
    ipv6_socket: bool
    timeout_ms: int


@dataclass(frozen=True)
class ConnectionDone:
    """Layer -> session: the app closed its (UDP) socket of outgoing connection ``connection_id``; no answer.

    A TCP interceptor sees the app's socket close by itself; a UDP one cannot.
    """

    TAG: ClassVar[int] = 31
    connection_id: int


@dataclass(frozen=True)
class ResolveRequest:
    """Layer -> session: ``getaddrinfo(host, port, family, kind, proto, flags)`` inside the pod.

    Answered by ``ResolveAnswer``. ``port`` is numeric: the layer resolves service names itself.
    """

    TAG: ClassVar[int] = 32
    host: str
    port: int
    family: AddressFamily
    kind: SocketKind
    proto: int
    canonical_name: bool
    address_config: bool


LayerToSession = Union[
    LayerHello, ListenRequest, ListenClosed, PeerQuery, ConnectRequest, ConnectionDone, ResolveRequest
]

CODEC: Codec[LayerToSession] = codec_for(
    "layer-to-session",
    [LayerHello, ListenRequest, ListenClosed, PeerQuery, ConnectRequest, ConnectionDone, ResolveRequest],
)
