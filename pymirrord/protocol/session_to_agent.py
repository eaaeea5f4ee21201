"""Messages the session sends to the agent over the websocket (one message per binary frame)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Optional, Union

from pymirrord.protocol.codec import Codec, codec_for
from pymirrord.protocol.http_types import HttpFilterSpec
from pymirrord.protocol.outgoing_types import AddressFamily, SocketKind, Transport
from pymirrord.protocol.types import Mode, SocketAddress


@dataclass(frozen=True)
class ClientHello:
    """Session -> agent, first message: the protocol version it speaks and who it is (for the agent's logs).

    The agent answers with ``AgentHello``, or with ``ErrorReport`` and a close on a version mismatch.
    ``report_traffic``: the session shows what its connections carry (an editor's sessions view), so the
    agent reports the bytes and requests of the connections it steals for it through tunnels
    (``TrafficReport``), which then reach the app without passing the session.
    """

    TAG: ClassVar[int] = 1
    protocol_version: int
    client_version: str
    session_name: str
    report_traffic: bool = False


@dataclass(frozen=True)
class Ping:
    """Session -> agent: liveness check; the agent answers ``Pong`` with the same nonce."""

    TAG: ClassVar[int] = 2
    nonce: int


@dataclass(frozen=True)
class PortSubscribe:
    """Session -> agent: deliver the pod's incoming connections on ``port`` to this session.

    ``mode`` says whether the pod's app keeps serving (mirror) or this session serves instead (steal).
    With ``handover`` the session takes stolen connections as sockets over the agent's handover channel
    (both run on one machine), so their bytes never cross the websocket. Answered by
    ``PortSubscribeResult``; subscribing again to a port replaces the earlier mode.
    With ``http_filter`` only the HTTP requests it matches are delivered (as ``HttpRequestHead`` and what
    follows it); every other request on the port keeps reaching the pod's app. A filtered port is never
    handed over: the agent must read each request to decide.
    """

    TAG: ClassVar[int] = 10
    port: int
    mode: Mode
    handover: bool
    http_filter: Optional[HttpFilterSpec] = None


@dataclass(frozen=True)
class PortUnsubscribe:
    """Session -> agent: stop delivering new connections on ``port``; the pod's app serves them again.

    Connections already delivered carry on until either side closes them.
    """

    TAG: ClassVar[int] = 11
    port: int


@dataclass(frozen=True)
class ConnectionWrite:
    """Session -> agent: bytes the local app sent back on a stolen connection, for the remote client.

    An empty ``data`` is a half-close: the local app will send nothing more (the agent shuts down
    writing towards the client). Ignored for mirrored connections, whose replies go nowhere.
    """

    TAG: ClassVar[int] = 20
    connection_id: int
    data: bytes


@dataclass(frozen=True)
class ConnectionClose:
    """Session -> agent: the local side of the connection is gone; close it towards the client.

    For a stolen connection the client's connection is closed; for a mirrored one this is the same as
    ``ConnectionUnsubscribe``. No further message about the id follows in either direction.
    """

    TAG: ClassVar[int] = 21
    connection_id: int


@dataclass(frozen=True)
class ConnectionUnsubscribe:
    """Session -> agent: stop sending copies of a mirrored connection; the pod's app keeps serving it."""

    TAG: ClassVar[int] = 22
    connection_id: int


@dataclass(frozen=True)
class OutgoingConnect:
    """Session -> agent: open a connection from the pod to ``remote`` (TCP), or a UDP socket connected to it.

    Answered by ``OutgoingConnectResult`` with the same ``request_id``. ``timeout_ms`` bounds the TCP
    handshake (0: the agent's default). With ``handover`` the session takes the connected socket itself
    over the agent's handover channel (both run on one machine), and nothing is relayed. With ``tunnel``
    (not 0, TCP only) the connection's bytes go through the session's outgoing tunnel of that id.
    """

    TAG: ClassVar[int] = 30
    request_id: int
    transport: Transport
    remote: SocketAddress
    timeout_ms: int
    handover: bool
    tunnel: int = 0


@dataclass(frozen=True)
class OutgoingWrite:
    """Session -> agent: bytes the local app sent on outgoing connection ``connection_id``.

    For TCP an empty ``data`` is a half-close (the app will send nothing more); for UDP each message is one
    datagram, an empty one included.
    """

    TAG: ClassVar[int] = 31
    connection_id: int
    data: bytes


@dataclass(frozen=True)
class OutgoingClose:
    """Session -> agent: the app is done with outgoing connection ``connection_id``; close it in the pod.

    No further message about the id follows in either direction.
    """

    TAG: ClassVar[int] = 32
    connection_id: int


@dataclass(frozen=True)
class DnsLookup:
    """Session -> agent: resolve ``host`` as ``getaddrinfo`` would inside the pod.

    ``port`` is numeric (service names are resolved by the asker); ``canonical_name`` and
    ``address_config`` are the ``AI_CANONNAME`` and ``AI_ADDRCONFIG`` flags. Answered by ``DnsResult``
    with the same ``request_id``.
    """

    TAG: ClassVar[int] = 33
    request_id: int
    host: str
    port: int
    family: AddressFamily
    kind: SocketKind
    proto: int
    canonical_name: bool
    address_config: bool


@dataclass(frozen=True)
class HttpResponseData:
    """Session -> agent: bytes of the local app's response to ``request_id``, raw as the app sent them.

    After a ``101`` these are the new protocol's bytes from the app.
    """

    TAG: ClassVar[int] = 55
    request_id: int
    data: bytes


@dataclass(frozen=True)
class HttpResponseEnd:
    """Session -> agent: the response to ``request_id`` is complete (after an upgrade: the app closed).

    No further message about the id follows in either direction.
    """

    TAG: ClassVar[int] = 56
    request_id: int


@dataclass(frozen=True)
class HttpResponseFailed:
    """Session -> agent: the local app did not answer ``request_id`` (gone, unreachable, broke off).

    If the client got nothing of the response yet, the agent sends the request to the pod's app instead;
    otherwise it closes the client's connection. No further message about the id follows.
    """

    TAG: ClassVar[int] = 57
    request_id: int
    reason: str


@dataclass(frozen=True)
class EnvRequest:
    """Session -> agent: send the target process's environment variables, chosen by name patterns.

    ``include`` (None: every variable) and ``exclude`` are patterns with ``*`` and ``?``; the agent leaves out
    variables that would break a local process unless ``include`` names them exactly. Answered by
    ``EnvResult`` with the same ``request_id``.
    """

    TAG: ClassVar[int] = 70
    request_id: int
    include: Optional[tuple[str, ...]]
    exclude: tuple[str, ...]


@dataclass(frozen=True)
class ClientReadFlow:
    """Session -> agent: stop (``paused``) or resume reading the client of stolen ``connection_id``.

    The session sends it when too many of the client's bytes wait for a local app that reads slowly, and
    resumes it once the app has caught up; the connection's other traffic and every other connection keep
    flowing. Only the stealing session may pause a connection; copies are never paused.
    """

    TAG: ClassVar[int] = 80
    connection_id: int
    paused: bool


@dataclass(frozen=True)
class OutgoingReadFlow:
    """Session -> agent: stop (``paused``) or resume reading the remote peer of outgoing ``connection_id``.

    The session sends it when too many of the peer's bytes wait for a local app that reads slowly, and
    resumes it once the app has caught up.
    """

    TAG: ClassVar[int] = 81
    connection_id: int
    paused: bool


@dataclass(frozen=True)
class HttpRequestFlow:
    """Session -> agent: stop (``paused``) or resume reading the body of stolen request ``request_id``.

    The session sends it when too much of the body waits for a local app that reads slowly, and resumes it
    once the app has caught up; other requests keep flowing.
    """

    TAG: ClassVar[int] = 82
    request_id: int
    paused: bool


@dataclass(frozen=True)
class TunnelEnd:
    """Session -> agent: the session has sent its last byte up tunnel ``tunnel_id``, ``length`` in all.

    The counterpart of the agent's own ``TunnelEnd``, for ``counted`` tunnels (they pass a Kubernetes
    port-forward, which carries no half-close): once ``length`` bytes have come out of the tunnel, the agent
    passes the end of stream on. It may arrive before the agent has put the tunnel to use.
    """

    TAG: ClassVar[int] = 90
    tunnel_id: int
    length: int


@dataclass(frozen=True)
class HttpAppTunnel:
    """Session -> agent: the session's outgoing tunnel ``tunnel_id`` now leads to its local app behind
    ``port`` (the app accepted it as a connection).

    What a session on the agent's machine hands over as a socket, for a session that reaches its agent over
    the network: the agent writes the requests that match this session's filter on ``port`` into the
    tunnel and reads the app's answers from it, so neither crosses the websocket or the session. The
    session sends one on its own when its first request for ``port`` arrives, then one for each
    ``HttpConnectionWanted``. ``notify``: the session wants to hear of the requests the agent writes to its
    app connections (``HttpRequestsServed``: its observer counts them).
    """

    TAG: ClassVar[int] = 91
    port: int
    tunnel_id: int
    notify: bool = False


SessionToAgent = Union[
    ClientHello,
    Ping,
    PortSubscribe,
    PortUnsubscribe,
    ConnectionWrite,
    ConnectionClose,
    ConnectionUnsubscribe,
    OutgoingConnect,
    OutgoingWrite,
    OutgoingClose,
    DnsLookup,
    HttpResponseData,
    HttpResponseEnd,
    HttpResponseFailed,
    EnvRequest,
    ClientReadFlow,
    OutgoingReadFlow,
    HttpRequestFlow,
    TunnelEnd,
    HttpAppTunnel,
]

CODEC: Codec[SessionToAgent] = codec_for(
    "session-to-agent",
    [
        ClientHello,
        Ping,
        PortSubscribe,
        PortUnsubscribe,
        ConnectionWrite,
        ConnectionClose,
        ConnectionUnsubscribe,
        OutgoingConnect,
        OutgoingWrite,
        OutgoingClose,
        DnsLookup,
        HttpResponseData,
        HttpResponseEnd,
        HttpResponseFailed,
        EnvRequest,
        ClientReadFlow,
        OutgoingReadFlow,
        HttpRequestFlow,
        TunnelEnd,
        HttpAppTunnel,
    ],
)
