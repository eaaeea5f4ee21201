"""Messages a layer (inside the user's process) sends to the session over the local socket.

Every request is answered before the layer sends the next one on the same socket, so requests
carry no ids: the layer serialises them with a lock.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Union

from pymirrord.protocol.codec import Codec, codec_for
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


LayerToSession = Union[LayerHello, ListenRequest, ListenClosed, PeerQuery]

CODEC: Codec[LayerToSession] = codec_for(
    "layer-to-session", [LayerHello, ListenRequest, ListenClosed, PeerQuery]
)
