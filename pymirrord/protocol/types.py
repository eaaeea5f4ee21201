"""Value types shared by messages of several directions."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class Mode(str, Enum):
    """How a port's incoming traffic reaches the local app."""

    MIRROR = "mirror"
    """The pod's app keeps serving; the local app gets a copy and its replies are dropped."""
    STEAL = "steal"
    """The local app serves instead of the pod's app."""


SHARED_SOURCE = "127.0.0.2"
"""The loopback address the session connects to an app from when the connection will carry the requests of
many clients (HTTP filtering): such a connection has no one original client, so the layer asks the session
nothing when the app accepts it, and the app's accept does not wait on a round trip."""


class LogLevel(str, Enum):
    DEBUG = "debug"
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"


@dataclass(frozen=True)
class SocketAddress:
    """An IP address (v4 or v6, textual) and a port."""

    host: str
    port: int

    def __str__(self) -> str:
        if ":" in self.host:
            return f"[{self.host}]:{self.port}"
        return f"{self.host}:{self.port}"
