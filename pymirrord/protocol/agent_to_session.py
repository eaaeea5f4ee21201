"""Messages the agent sends to the session over the websocket (one message per binary frame)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Optional, Union

from pymirrord.protocol.codec import Codec, codec_for
from pymirrord.protocol.types import LogLevel, Mode, SocketAddress


@dataclass(frozen=True)
class AgentHello:
    """Agent -> session, answer to ``ClientHello``: the agent's protocol version and what it serves."""

    TAG: ClassVar[int] = 1
    protocol_version: int
    agent_version: str
    target: str


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
    follow as ``ConnectionRead`` messages with the same ``connection_id``.
    """

    TAG: ClassVar[int] = 20
    connection_id: int
    port: int
    mode: Mode
    client: SocketAddress
    local: SocketAddress


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


AgentToSession = Union[
    AgentHello, Pong, Log, ErrorReport, PortSubscribeResult, NewConnection, ConnectionRead, ConnectionClosed
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
    ],
)
