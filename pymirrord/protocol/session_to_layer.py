"""Messages the session sends to a layer over the local socket, each the answer to one request."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Optional, Union

from pymirrord.protocol.codec import Codec, codec_for
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
    """

    TAG: ClassVar[int] = 12
    client: Optional[SocketAddress]
    local: Optional[SocketAddress]


SessionToLayer = Union[SessionHello, ListenResult, PeerAnswer]

CODEC: Codec[SessionToLayer] = codec_for("session-to-layer", [SessionHello, ListenResult, PeerAnswer])
