"""Messages the session sends to a layer over the local socket, each the answer to one request."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Optional, Union

from pymirrord.protocol.codec import Codec, codec_for
from pymirrord.protocol.outgoing_types import AddressInfo, ResolveError
from pymirrord.protocol.types import Mode, SocketAddress


@dataclass(frozen=True)
class SessionHello:
    """Session -> layer, answer to ``LayerHello``: the session's protocol version."""

    TAG: ClassVar[int] = 1
    protocol_version: int


@dataclass(frozen=True)
class ListenResult:
    """Session -> layer, answer to ``ListenRequest``: the port is served now, or ``error`` says why not."""

    TAG: ClassVar[int] = 10
    port: int
    mode: Optional[Mode]
    error: Optional[str]


@dataclass(frozen=True)
class PeerAnswer:
    """Session -> layer, answer to ``PeerQuery``: the remote client and the pod-side address it reached.

    Both are absent when the connection did not come from the session (a genuinely local client).
    With ``handover`` the frame carries the client's own socket (SCM_RIGHTS): the layer puts it in
    place of the accepted connection, so the app talks to the client directly.
    """

    TAG: ClassVar[int] = 12
    client: Optional[SocketAddress]
    local: Optional[SocketAddress]
    handover: bool


@dataclass(frozen=True)
class ConnectAnswer:
    """Session -> layer, answer to ``ConnectRequest``.

    On success: ``interceptor`` is where the layer connects the app's socket, ``local`` the connection's
    address in the pod (what ``getsockname`` shows), ``connection_id`` names it (for ``ConnectionDone``).
    On failure ``interceptor`` is absent, ``error`` the errno's name (``ECONNREFUSED``) and ``message`` the
    reason in words. With ``handover`` the frame carries the connected socket itself (SCM_RIGHTS), made
    in the pod by a local agent: the layer puts it in place of the app's socket, and there is no
    interceptor.
    """

    TAG: ClassVar[int] = 30
    connection_id: int
    interceptor: Optional[SocketAddress]
    local: Optional[SocketAddress]
    error: str
    message: str
    handover: bool


@dataclass(frozen=True)
class ResolveAnswer:
    """Session -> layer, answer to ``ResolveRequest``: the addresses, or the ``getaddrinfo`` error."""

    TAG: ClassVar[int] = 32
    addresses: tuple[AddressInfo, ...]
    canonical_name: Optional[str]
    error: Optional[ResolveError]
    message: str


SessionToLayer = Union[SessionHello, ListenResult, PeerAnswer, ConnectAnswer, ResolveAnswer]

CODEC: Codec[SessionToLayer] = codec_for(
    "session-to-layer", [SessionHello, ListenResult, PeerAnswer, ConnectAnswer, ResolveAnswer]
)
