"""Messages the agent sends to the session over the websocket (one message per binary frame)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Optional, Union

from pymirrord.protocol.codec import Codec, codec_for
from pymirrord.protocol.outgoing_types import AddressInfo, ResolveError, Transport
from pymirrord.protocol.types import LogLevel, Mode, SocketAddress


@dataclass(frozen=True)
class AgentHello:
    """Agent -> session, answer to ``ClientHello``: the agent's protocol version and what it serves.

    ``handover_path`` is the agent's unix (SOCK_SEQPACKET) socket for handing over stolen connections
    to a session on the same machine; a session that opens it first sends ``handover_key``.
    ``tunnel_key`` (empty: the agent opens no tunnels) names this session on the tunnels it opens to
    the agent (``pymirrord.tunnel``).
    """

    TAG: ClassVar[int] = 1
    protocol_version: int
    agent_version: str
    target: str
    handover_path: Optional[str]
    handover_key: str
    tunnel_key: str = ""


@dataclass(frozen=True)
class Pong:
    """Agent -> session: answer to ``Ping`` with the same nonce."""

    TAG: ClassVar[int] = 2
    nonce: int


@dataclass(frozen=True)
class Log:
    """Agent -> session: something the user should see in the session's log."""

    TAG: ClassVar[int] = 3
    level: LogLevel
    message: str


@dataclass(frozen=True)
class ErrorReport:
    """Agent -> session: a failure not tied to one request (bad handshake, broken rules).

    ``code`` is stable for programs, ``message`` and ``hint`` are for people.
    """

    TAG: ClassVar[int] = 4
    code: str
    message: str
    hint: str


@dataclass(frozen=True)
class PortSubscribeResult:
    """Agent -> session, answer to ``PortSubscribe``: the port is now delivered, or ``error`` says why not."""

    TAG: ClassVar[int] = 10
    port: int
    mode: Mode
    error: Optional[str]


@dataclass(frozen=True)
class NewConnection:
    """Agent -> session: a client connected to a subscribed port of the pod.

    ``client`` is the remote peer as the pod sees it, ``local`` the pod-side address it connected to
    (its original destination), ``port`` the subscribed pod port (``local.port``). The client's bytes
    follow as ``ConnectionRead`` messages with the same ``connection_id`` unless ``handed_over``: then
    the client's socket itself comes over the handover channel, and no other message uses the id. With
    ``tunnel`` (not 0) the client's bytes flow both ways through the session's idle tunnel of that id,
    and only ``ConnectionClosed`` follows here.
    """

    TAG: ClassVar[int] = 20
    connection_id: int
    port: int
    mode: Mode
    client: SocketAddress
    local: SocketAddress
    handed_over: bool
    tunnel: int = 0


@dataclass(frozen=True)
class ConnectionRead:
    """Agent -> session: bytes the remote client sent; an empty ``data`` means the client half-closed."""

    TAG: ClassVar[int] = 21
    connection_id: int
    data: bytes


@dataclass(frozen=True)
class ConnectionClosed:
    """Agent -> session: the connection is gone on the pod side; no further message uses its id."""

    TAG: ClassVar[int] = 22
    connection_id: int
    reason: str


@dataclass(frozen=True)
class OutgoingConnectResult:
    """Agent -> session, answer to ``OutgoingConnect``: the connection is open, or why it is not.

    On success ``connection_id`` names it from now on and ``local`` is its address in the pod (what
    ``getsockname`` shows); ``error`` is empty. On failure ``error`` is the errno's name (``ECONNREFUSED``,
    portable between systems whose errno numbers differ) and ``message`` says it for people.
    ``handed_over``: the connected socket went over the handover channel; no id is in use. ``tunnel``: the
    tunnel named in the request carries the connection's bytes (0: they come as ``OutgoingRead``, and the
    session closes the tunnel it offered).
    """

    TAG: ClassVar[int] = 30
    request_id: int
    transport: Transport
    connection_id: int
    local: Optional[SocketAddress]
    error: str
    message: str
    handed_over: bool
    tunnel: int = 0


@dataclass(frozen=True)
class OutgoingRead:
    """Agent -> session: bytes the remote peer sent on outgoing connection ``connection_id``.

    For TCP an empty ``data`` means the peer half-closed; for UDP each message is one datagram.
    """

    TAG: ClassVar[int] = 31
    connection_id: int
    data: bytes


@dataclass(frozen=True)
class OutgoingClosed:
    """Agent -> session: outgoing connection ``connection_id`` is gone in the pod; its id is free again.

    ``error`` is the errno's name when it broke (``ECONNRESET``), empty when it ended normally.
    """

    TAG: ClassVar[int] = 32
    connection_id: int
    error: str
    message: str


@dataclass(frozen=True)
class DnsResult:
    """Agent -> session, answer to ``DnsLookup``: the addresses, or ``error`` (then ``addresses`` is empty).

    ``canonical_name`` is filled when the lookup asked for it. ``message`` explains an error for people.
    """

    TAG: ClassVar[int] = 33
    request_id: int
    addresses: tuple[AddressInfo, ...]
    canonical_name: Optional[str]
    error: Optional[ResolveError]
    message: str


@dataclass(frozen=True)
class HttpRequestStart:
    """Agent -> session: an HTTP request on a filtered port matched this session's filter.

    ``head`` is the request line and headers exactly as the client sent them (final CRLF CRLF included);
    the body follows as ``HttpRequestBody`` messages, raw (chunk framing and trailers as sent), then
    ``HttpRequestEnd``. In steal mode the session answers with ``HttpResponseData`` and ``HttpResponseEnd``
    (or ``HttpResponseFailed``); in mirror mode it answers nothing. ``matched`` names the filter part that
    matched (for the user's log). If the local app switches protocols (``101``), the client's further bytes
    keep coming as ``HttpRequestBody`` until ``HttpRequestEnd``. ``http2``: the client sent the request as
    an HTTP/2 stream (``head`` and body are its HTTP/1.1 form), so the local app may want HTTP/2 too.
    """

    TAG: ClassVar[int] = 50
    request_id: int
    port: int
    mode: Mode
    client: SocketAddress
    local: SocketAddress
    method: str
    target: str
    matched: str
    head: bytes
    http2: bool = False


@dataclass(frozen=True)
class HttpRequestBody:
    """Agent -> session: more bytes of request ``request_id``, raw as the client sent them."""

    TAG: ClassVar[int] = 51
    request_id: int
    data: bytes


@dataclass(frozen=True)
class HttpRequestEnd:
    """Agent -> session: request ``request_id`` is complete (after an upgrade: the client half-closed)."""

    TAG: ClassVar[int] = 52
    request_id: int


@dataclass(frozen=True)
class HttpRequestAbort:
    """Agent -> session: the client of request ``request_id`` went away; drop it and its app connection.

    No further message about the id follows in either direction.
    """

    TAG: ClassVar[int] = 53
    request_id: int
    reason: str


@dataclass(frozen=True)
class HttpConnectionWanted:
    """Agent -> session, only to a session with a handover channel or one that sent ``HttpAppTunnel``: the
    agent would like a connection to the local app behind ``port``, to send the requests matching this
    session's filter there itself.

    The session answers by handing such a connection over on the channel (kind ``APP``, id ``port``), with
    an ``HttpAppTunnel``, or not at all; until one arrives, matching requests keep coming as
    ``HttpRequestStart``.
    """

    TAG: ClassVar[int] = 54
    port: int


@dataclass(frozen=True)
class EnvVariable:
    """One environment variable of the target (part of ``EnvResult``)."""

    name: str
    value: str


@dataclass(frozen=True)
class EnvResult:
    """Agent -> session, answer to ``EnvRequest``: the target process's chosen environment variables.

    ``source`` says where they were read (``process 4242``; empty when nowhere); ``warning``, when set, says
    why some or all are missing (no process in the namespace, names or values that are not UTF-8).
    """

    TAG: ClassVar[int] = 70
    request_id: int
    variables: tuple[EnvVariable, ...]
    source: str
    warning: Optional[str]


@dataclass(frozen=True)
class ConnectionWriteFlow:
    """Agent -> session: stop (``paused``) or resume sending ``ConnectionWrite`` for ``connection_id``.

    The agent sends it when too many of the local app's bytes wait for a remote client that reads slowly,
    and resumes it once the client has caught up; the session then stops reading the app's side of that
    connection only.
    """

    TAG: ClassVar[int] = 80
    connection_id: int
    paused: bool


@dataclass(frozen=True)
class OutgoingWriteFlow:
    """Agent -> session: stop (``paused``) or resume sending ``OutgoingWrite`` for ``connection_id``.

    The agent sends it when too many of the local app's bytes wait for a remote peer that reads slowly, and
    resumes it once the peer has caught up; the session then stops reading the app's side of that
    connection only.
    """

    TAG: ClassVar[int] = 81
    connection_id: int
    paused: bool


@dataclass(frozen=True)
class HttpResponseFlow:
    """Agent -> session: stop (``paused``) or resume sending ``HttpResponseData`` for ``request_id``.

    The agent sends it when too much of the response waits for a client that reads slowly, and resumes it
    once the client has caught up; the session then stops reading that response from the app only.
    """

    TAG: ClassVar[int] = 82
    request_id: int
    paused: bool


@dataclass(frozen=True)
class TunnelEnd:
    """Agent -> session: the agent has sent its last byte down tunnel ``tunnel_id``, ``length`` in all.

    Sent in place of a half-close on tunnels that cannot carry one (``counted`` tunnels, which pass a
    Kubernetes port-forward): once ``length`` bytes have come out of the tunnel, the session passes the end
    of stream on as if the tunnel itself had half-closed. The tunnel stays open for the other direction.
    """

    TAG: ClassVar[int] = 90
    tunnel_id: int
    length: int


@dataclass(frozen=True)
class ServedRequest:
    """One request of ``HttpRequestsServed``: fields as in ``HttpRequestStart``."""

    request_id: int
    port: int
    client: SocketAddress
    method: str
    target: str
    matched: str


@dataclass(frozen=True)
class HttpRequestsServed:
    """Agent -> session, only to a session that asked for them (``HttpAppTunnel.notify``): the agent wrote
    ``count`` requests that matched this session's filter (stolen ones) to its app connections itself
    since the last of these, and ``last`` describes the latest of them, oldest first (at most
    ``SERVED_LISTED``).

    For the session's observer only (an editor's sessions view counts every request and lists the last
    few): the session has nothing to do for it. One message per short spell rather than one per request,
    so that counting costs neither the agent nor the session anything per request.
    """

    TAG: ClassVar[int] = 55
    count: int
    last: tuple[ServedRequest, ...]


SERVED_LISTED = 20
"""Requests an ``HttpRequestsServed`` describes at most: as many as the sessions view lists."""


@dataclass(frozen=True)
class ConnectionTraffic:
    """Bytes one connection of ``TrafficReport`` carried since the last report."""

    connection_id: int
    to_app: int
    """From the client towards the app."""
    from_app: int


@dataclass(frozen=True)
class SeenRequest:
    """A request head the agent saw in a connection of ``TrafficReport``."""

    connection_id: int
    method: str
    target: str


@dataclass(frozen=True)
class TrafficReport:
    """Agent -> session, only to a session that asked (``ClientHello.report_traffic``): what the connections
    the agent stole for it through tunnels carried since the last report, sent every short spell and when
    such a connection ends (before its ``ConnectionClosed``).

    ``connections``: the bytes of each connection that moved any; ``requests``: how many HTTP request
    heads the agent saw in their client bytes (until a connection's bytes turned out not to be HTTP/1),
    of which ``last`` are the latest, oldest first (at most ``SERVED_LISTED``). For the session's observer
    only: the bytes themselves went down the tunnel.
    """

    TAG: ClassVar[int] = 56
    connections: tuple[ConnectionTraffic, ...]
    requests: int
    last: tuple[SeenRequest, ...]


AgentToSession = Union[
    AgentHello,
    Pong,
    Log,
    ErrorReport,
    PortSubscribeResult,
    NewConnection,
    ConnectionRead,
    ConnectionClosed,
    OutgoingConnectResult,
    OutgoingRead,
    OutgoingClosed,
    DnsResult,
    HttpRequestStart,
    HttpRequestBody,
    HttpRequestEnd,
    HttpRequestAbort,
    HttpConnectionWanted,
    EnvResult,
    ConnectionWriteFlow,
    OutgoingWriteFlow,
    HttpResponseFlow,
    TunnelEnd,
    HttpRequestsServed,
    TrafficReport,
]

CODEC: Codec[AgentToSession] = codec_for(
    "agent-to-session",
    [
        AgentHello,
        Pong,
        Log,
        ErrorReport,
        PortSubscribeResult,
        NewConnection,
        ConnectionRead,
        ConnectionClosed,
        OutgoingConnectResult,
        OutgoingRead,
        OutgoingClosed,
        DnsResult,
        HttpRequestStart,
        HttpRequestBody,
        HttpRequestEnd,
        HttpRequestAbort,
        HttpConnectionWanted,
        EnvResult,
        ConnectionWriteFlow,
        OutgoingWriteFlow,
        HttpResponseFlow,
        TunnelEnd,
        HttpRequestsServed,
        TrafficReport,
    ],
)
