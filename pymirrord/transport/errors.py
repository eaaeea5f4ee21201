"""The transport's exceptions."""

from __future__ import annotations

from pymirrord.errors import PymirrordError


class TransportError(PymirrordError):
    """Something went wrong on the websocket between a session and an agent."""


class WebSocketProtocolError(TransportError):
    """The peer broke RFC 6455 (a bad frame, a bad handshake); the message names the place."""


class MessageTooBig(WebSocketProtocolError):
    """The peer sent a message over the agreed size limit."""


class HandshakeRejected(TransportError):
    """The server answered the opening handshake with an HTTP status other than 101."""

    def __init__(self, status: int, body: bytes, hint: str = "") -> None:
        super().__init__(f"the server answered HTTP {status}", hint)
        self.status = status
        self.body = body


class ConnectionClosed(TransportError):
    """The websocket is closed; ``code`` and ``reason`` are the close frame's (1006: none came)."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(f"the websocket closed ({code}{': ' + reason if reason else ''})")
        self.code = code
        self.reason = reason
