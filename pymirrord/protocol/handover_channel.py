"""The handover channel's one message: which connection the attached socket is.

A local agent and its session pass sockets over a unix SOCK_SEQPACKET socket; each message is this
header with the socket attached (SCM_RIGHTS, see ``rights``). The kind keeps the id spaces apart: an
incoming connection is named by its ``NewConnection`` id, an outgoing one by its ``OutgoingConnect``
request id, and a connection to the session's app (the one kind sent by the session) by its port.
"""

from __future__ import annotations

import struct
from enum import IntEnum

from pymirrord.protocol.errors import ProtocolError

_HEADER = struct.Struct(">BQ")
SIZE = _HEADER.size


class Kind(IntEnum):
    INCOMING = 1
    """A stolen client connection; the id is its ``NewConnection.connection_id``."""
    OUTGOING = 2
    """A connection the app asked for; the id is its ``OutgoingConnect.request_id``."""
    APP = 3
    """Session -> agent: a connection to the session's local app, answering ``HttpConnectionWanted``; the
    id is the subscribed port whose matching HTTP requests the agent may send on it."""


Key = tuple[Kind, int]


def encode(kind: Kind, identifier: int) -> bytes:
    return _HEADER.pack(kind, identifier)


def decode(data: bytes) -> Key:
    if len(data) != SIZE:
        raise ProtocolError(f"a handover message has {SIZE} bytes, not {len(data)}")
    kind, identifier = _HEADER.unpack(data)
    try:
        return Kind(kind), identifier
    except ValueError:
        raise ProtocolError(f"unknown handover kind {kind}") from None
