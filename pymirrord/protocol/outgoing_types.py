"""Value types of outgoing connections and name resolution, shared by several directions.

Everything here is portable between the machines at both ends: socket families, socket types and errors
travel as names, never as the numbers of one operating system (``AF_INET6`` is 10 on Linux, 30 on macOS).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class Transport(str, Enum):
    """The transport of an outgoing connection."""

    TCP = "tcp"
    UDP = "udp"


class AddressFamily(str, Enum):
    """``AF_UNSPEC``, ``AF_INET`` or ``AF_INET6`` of a lookup or of one of its answers."""

    ANY = "any"
    IPV4 = "ipv4"
    IPV6 = "ipv6"


class SocketKind(str, Enum):
    """``0`` (any), ``SOCK_STREAM``, ``SOCK_DGRAM`` or ``SOCK_RAW`` of a lookup or of one of its answers."""

    ANY = "any"
    STREAM = "stream"
    DGRAM = "dgram"
    RAW = "raw"


class ResolveError(str, Enum):
    """Why a lookup failed, as ``getaddrinfo`` reports it (each maps to one ``socket.EAI_*`` code)."""

    NO_NAME = "noname"
    """EAI_NONAME: the name does not exist."""
    NO_DATA = "nodata"
    """EAI_NODATA: the name exists but has no address of the family asked for."""
    AGAIN = "again"
    """EAI_AGAIN: no name server answered in time, or one failed temporarily."""
    FAIL = "fail"
    """EAI_FAIL: a name server refused or failed for good."""
    FAMILY = "family"
    """EAI_FAMILY: the family asked for is not supported."""


@dataclass(frozen=True)
class AddressInfo:
    """One answer of a lookup: what ``getaddrinfo`` returns as ``(family, type, proto, canonname, sockaddr)``.

    ``proto`` is the IANA protocol number (6 TCP, 17 UDP, 0 unspecified), the same everywhere.
    """

    family: AddressFamily
    kind: SocketKind
    proto: int
    host: str
    port: int
