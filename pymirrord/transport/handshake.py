"""The websocket opening handshake (RFC 6455 section 4), sans I/O, over h11.

A client sends ``ClientHandshake.request`` and feeds what comes back until it has the 101 answer (or a
refusal); a server feeds what comes in to ``ServerHandshake`` until it has the request, then answers with
``accept`` or ``reject``. Bytes after the handshake (a first frame sent right behind it) are handed on.
``BATCH_SUBPROTOCOL`` is offered by pymirrord sessions: when the agent agrees, each websocket message
carries several protocol messages (``pymirrord.protocol.batch``); plain websocket clients don't offer it.
``STREAM_SUBPROTOCOL`` turns the upgraded connection into a raw byte stream (``pymirrord.tunnel``).
"""

from __future__ import annotations

import base64
import hashlib
import http
import os
from dataclasses import dataclass

import h11

from pymirrord.transport.errors import HandshakeRejected, WebSocketProtocolError

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
BATCH_SUBPROTOCOL = "pymirrord.batch.v1"
STREAM_SUBPROTOCOL = "pymirrord.stream.v1"
"""Agreed on, the connection carries raw bytes after the handshake, not frames (a session's tunnel)."""
MAX_HEAD = 16 * 1024
"""A handshake head longer than this is refused: a peer that never ends it must not grow our memory."""


def accept_key(key: str) -> str:
    return base64.b64encode(hashlib.sha1(key.encode() + _GUID).digest()).decode()


def _phrase(status: int) -> bytes:
    try:
        return http.HTTPStatus(status).phrase.encode()
    except ValueError:
        return b""


def _header(headers: list[tuple[bytes, bytes]], name: bytes) -> str | None:
    values = [value.decode("latin-1") for key, value in headers if key == name]
    return ", ".join(values) if values else None


def _tokens(value: str | None) -> set[str]:
    return {token.strip().lower() for token in (value or "").split(",") if token.strip()}


@dataclass(frozen=True)
class Accepted:
    """The server switched to websocket: ``subprotocol`` is what it agreed to, ``rest`` the bytes after."""

    subprotocol: str | None
    rest: bytes


class ClientHandshake:
    def __init__(
        self, host: str, path: str, headers: dict[str, str], subprotocols: tuple[str, ...] = ()
    ) -> None:
        self._key = base64.b64encode(os.urandom(16)).decode()
        self._offered = subprotocols
        self._connection = h11.Connection(h11.CLIENT, max_incomplete_event_size=MAX_HEAD)
        fields = [
            ("Host", host),
            ("Upgrade", "websocket"),
            ("Connection", "Upgrade"),
            ("Sec-WebSocket-Key", self._key),
            ("Sec-WebSocket-Version", "13"),
            *headers.items(),
        ]
        if subprotocols:
            fields.append(("Sec-WebSocket-Protocol", ", ".join(subprotocols)))
        self.request = self._connection.send(h11.Request(method="GET", target=path, headers=fields)) or b""
        self.request += self._connection.send(h11.EndOfMessage()) or b""
        self._refusal: h11.Response | None = None
        self._body = bytearray()

    def feed(self, data: bytes) -> Accepted | None:
        """Bytes from the server; the result once the handshake is done (``HandshakeRejected`` if refused)."""
        try:
            self._connection.receive_data(data)
            while True:
                event = self._connection.next_event()
                if event is h11.NEED_DATA:
                    if not data and self._refusal is None:
                        raise WebSocketProtocolError("the server closed the connection during the handshake")
                    if not data:
                        break
                    return None
                if isinstance(event, h11.InformationalResponse) and event.status_code == 101:
                    return self._accepted(event)
                if isinstance(event, h11.Response):
                    self._refusal = event
                elif isinstance(event, h11.Data):
                    self._body += event.data
                elif isinstance(event, (h11.EndOfMessage, h11.ConnectionClosed)) or event is h11.PAUSED:
                    break
        except h11.RemoteProtocolError as error:
            if not data:
                raise WebSocketProtocolError(
                    "the server closed the connection during the handshake"
                ) from None
            raise WebSocketProtocolError(
                f"the server's handshake answer is not valid HTTP: {error}"
            ) from None
        if self._refusal is None:
            raise WebSocketProtocolError("the server ended the handshake without an answer")
        raise HandshakeRejected(self._refusal.status_code, bytes(self._body))

    def _accepted(self, response: h11.InformationalResponse) -> Accepted:
        headers = list(response.headers)
        if "websocket" not in _tokens(_header(headers, b"upgrade")):
            raise WebSocketProtocolError("the server's 101 answer does not upgrade to websocket")
        if _header(headers, b"sec-websocket-accept") != accept_key(self._key):
            raise WebSocketProtocolError("the server's Sec-WebSocket-Accept does not match our key")
        subprotocol = _header(headers, b"sec-websocket-protocol")
        if subprotocol is not None and subprotocol not in self._offered:
            raise WebSocketProtocolError(f"the server chose a subprotocol we did not offer: {subprotocol}")
        rest, _ = self._connection.trailing_data
        return Accepted(subprotocol, bytes(rest))


@dataclass(frozen=True)
class UpgradeRequest:
    """A client's opening request: its path, headers (lower-case names) and what it offered."""

    path: str
    headers: dict[str, str]
    key: str
    subprotocols: tuple[str, ...]
    rest: bytes


class ServerHandshake:
    def __init__(self) -> None:
        self._connection = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEAD)

    def feed(self, data: bytes) -> UpgradeRequest | None:
        """Bytes from the client; the request once its head is whole. ``WebSocketProtocolError`` carries
        the reason a request is not a websocket upgrade (answer it with ``reject(400, ...)``)."""
        try:
            self._connection.receive_data(data)
            event = self._connection.next_event()
        except h11.RemoteProtocolError as error:
            if not data:
                raise WebSocketProtocolError(
                    "the client closed the connection during the handshake"
                ) from None
            raise WebSocketProtocolError(f"not a valid HTTP request: {error}") from None
        if event is h11.NEED_DATA:
            if not data:
                raise WebSocketProtocolError("the client closed the connection during the handshake")
            return None
        if not isinstance(event, h11.Request):
            raise WebSocketProtocolError("the client closed the connection during the handshake")
        headers = list(event.headers)
        if event.method != b"GET":
            raise WebSocketProtocolError(f"a websocket handshake is a GET, not {event.method.decode()}")
        if "websocket" not in _tokens(_header(headers, b"upgrade")) or "upgrade" not in _tokens(
            _header(headers, b"connection")
        ):
            raise WebSocketProtocolError("not a websocket upgrade request")
        key = _header(headers, b"sec-websocket-key")
        if key is None or _header(headers, b"sec-websocket-version") != "13":
            raise WebSocketProtocolError("a websocket upgrade needs Sec-WebSocket-Key and version 13")
        offered = tuple(sorted(_tokens(_header(headers, b"sec-websocket-protocol"))))
        rest, _ = self._connection.trailing_data
        return UpgradeRequest(
            event.target.decode("latin-1"),
            {name.decode("latin-1"): _header(headers, name) or "" for name, _ in headers},
            key,
            offered,
            bytes(rest),
        )

    def accept(self, request: UpgradeRequest, subprotocol: str | None) -> bytes:
        fields = [
            ("Upgrade", "websocket"),
            ("Connection", "Upgrade"),
            ("Sec-WebSocket-Accept", accept_key(request.key)),
        ]
        if subprotocol is not None:
            fields.append(("Sec-WebSocket-Protocol", subprotocol))
        return (
            self._connection.send(
                h11.InformationalResponse(status_code=101, headers=fields, reason=b"Switching Protocols")
            )
            or b""
        )

    @staticmethod
    def reject(status: int, body: str, headers: dict[str, str] | None = None) -> bytes:
        """A whole HTTP answer that refuses the upgrade; the connection is closed after it."""
        connection = h11.Connection(h11.SERVER)
        # h11 answers only a request it has seen; a minimal one stands in for whatever came.
        connection.receive_data(b"GET / HTTP/1.1\r\nHost: agent\r\n\r\n")
        connection.next_event()
        encoded = body.encode()
        fields = [
            ("Content-Type", "text/plain; charset=utf-8"),
            ("Content-Length", str(len(encoded))),
            ("Connection", "close"),
            *(headers or {}).items(),
        ]
        return b"".join(
            part or b""
            for part in (
                connection.send(h11.Response(status_code=status, headers=fields, reason=_phrase(status))),
                connection.send(h11.Data(data=encoded)),
                connection.send(h11.EndOfMessage()),
            )
        )
