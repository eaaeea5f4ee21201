"""The protocol package's exception tree."""

from __future__ import annotations

from pymirrord.errors import PymirrordError


class ProtocolError(PymirrordError):
    """Bytes that are not a valid message of the expected direction, or a peer that breaks the protocol."""


class VersionMismatch(ProtocolError):
    """The peer speaks another protocol version."""
