"""The layer's connection to the session: blocking, one request at a time, reconnected after fork.

The session's unix socket carries length-prefixed frames of the layer protocol. Every request is
answered before the next is sent, so a lock around send-and-receive is the whole concurrency story.
A process that forks must not share the connection with its child (their requests and answers would
interleave on one stream): the child forgets the inherited connection and opens its own on first use.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
from typing import TypeVar

from pymirrord.protocol import PROTOCOL_VERSION, rights
from pymirrord.protocol import layer_to_session as to_session
from pymirrord.protocol import session_to_layer as to_layer
from pymirrord.protocol.errors import ProtocolError
from pymirrord.protocol.framing import FrameDecoder, frame
from pymirrord.protocol.outgoing_types import AddressFamily, SocketKind, Transport
from pymirrord.protocol.types import SocketAddress

SOCKET_ENV = "PYMIRRORD_LAYER_SOCKET"
CONNECT_TIMEOUT = 5.0
LISTEN_TIMEOUT = 15.0
"""The session asks the agent before it answers, which may take a round trip to the cluster."""
PEER_TIMEOUT = 5.0
"""The session knows the answer locally: this only bounds a hung session."""

Address = tuple[str, int]
OUTGOING_TIMEOUT = 40.0
"""The session asks the agent, which connects or looks up (each bounded below this) before answering."""

Carrier = TypeVar("Carrier", to_layer.PeerAnswer, to_layer.ConnectAnswer)
Answer = TypeVar(
    "Answer",
    to_layer.SessionHello,
    to_layer.ListenResult,
    to_layer.PeerAnswer,
    to_layer.ConnectAnswer,
    to_layer.ResolveAnswer,
)


class SessionUnavailable(Exception):
    """The session cannot be reached or broke the protocol; the message says how, for one stderr line."""


class SessionClient:
    """Requests to the session, safe to call from any thread of the app."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._sock: socket.socket | None = None
        self._decoder = FrameDecoder()
        self._received: list[int] = []  # descriptors that came with the last answer
        # Once connecting has failed in this process, later calls fail at once instead of retrying on
        # every accept; a forked child gets a fresh chance.
        self._unreachable: str | None = None

    def connect(self) -> None:
        """Opens the connection now (at start-up, so an unreachable session is reported at once)."""
        with self._lock:
            self._ensure_connected()

    def listen(self, port: int, host: str, real_port: int) -> str | None:
        """Asks the session to serve pod ``port`` at the real listener; ``None`` or the reason it won't."""
        request = to_session.ListenRequest(port, SocketAddress(host, real_port))
        try:
            result = self._request(request, to_layer.ListenResult, LISTEN_TIMEOUT)
        except SessionUnavailable as error:
            return str(error)
        return result.error

    def listen_closed(self, port: int, host: str, real_port: int) -> None:
        """Tells the session the app closed its listener for pod ``port``; best effort, no answer."""
        with self._lock:
            if self._sock is None:
                # Nothing to tell: without a connection the session holds nothing of ours.
                return
            try:
                message = to_session.ListenClosed(port, SocketAddress(host, real_port))
                self._sock.settimeout(PEER_TIMEOUT)
                self._sock.sendall(frame(to_session.CODEC.encode(message)))
            except OSError:
                self._drop()

    def peer(self, port: int) -> tuple[Address | None, Address | None, int | None]:
        """The original client and pod-side address behind a connection from local ``port``.

        Both are ``None`` for a genuinely local client, and when the session cannot say. The third item
        is a descriptor of the client's own socket when the session hands it over (the caller owns it).
        """
        answer, handed = self._request_carrying(to_session.PeerQuery(port), to_layer.PeerAnswer, PEER_TIMEOUT)
        return _address(answer.client), _address(answer.local), handed

    def connect_out(
        self, transport: Transport, host: str, port: int, ipv6_socket: bool, timeout: float | None
    ) -> tuple[to_layer.ConnectAnswer, int | None]:
        """Opens a connection from the pod to ``host``:``port``.

        The answer names the local interceptor to connect to, or (a local agent) comes with the connected
        socket itself: then the second item is its descriptor, which the caller owns. ``timeout``
        (seconds, None for the default) bounds the handshake in the pod.
        """
        timeout_ms = int(timeout * 1000) if timeout else 0
        request = to_session.ConnectRequest(transport, SocketAddress(host, port), ipv6_socket, timeout_ms)
        return self._request_carrying(request, to_layer.ConnectAnswer, OUTGOING_TIMEOUT)

    def connection_done(self, connection_id: int) -> None:
        """Tells the session the app closed the socket of outgoing connection ``connection_id``."""
        with self._lock:
            if self._sock is None:
                return
            try:
                self._sock.settimeout(PEER_TIMEOUT)
                self._sock.sendall(frame(to_session.CODEC.encode(to_session.ConnectionDone(connection_id))))
            except OSError:
                self._drop()

    def resolve(
        self,
        host: str,
        port: int,
        family: AddressFamily,
        kind: SocketKind,
        proto: int,
        *,
        canonical_name: bool = False,
        address_config: bool = False,
    ) -> to_layer.ResolveAnswer:
        """``getaddrinfo`` inside the pod."""
        request = to_session.ResolveRequest(host, port, family, kind, proto, canonical_name, address_config)
        return self._request(request, to_layer.ResolveAnswer, OUTGOING_TIMEOUT)

    def after_fork_in_child(self) -> None:
        """Forgets the parent's connection; the child connects on its first request.

        The lock may have been held by another thread of the parent at fork time, so it is replaced.
        Closing our copy of the descriptor leaves the parent's connection open (no shutdown).
        """
        self._lock = threading.Lock()
        sock, self._sock = self._sock, None
        self._decoder = FrameDecoder()
        self._unreachable = None
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.close()

    def close(self) -> None:
        with self._lock:
            self._drop()

    def _request(self, message: to_session.LayerToSession, expect: type[Answer], timeout: float) -> Answer:
        with self._lock:
            sock = self._ensure_connected()
            try:
                return self._exchange(sock, message, expect, timeout)
            except SessionUnavailable:
                # A late or half-read answer leaves the stream out of step: start afresh next time.
                self._drop()
                raise

    def _request_carrying(
        self, message: to_session.LayerToSession, expect: type[Carrier], timeout: float
    ) -> tuple[Carrier, int | None]:
        """A request whose answer may carry a socket (its ``handover`` flag): the descriptor, or None."""
        with self._lock:
            sock = self._ensure_connected()
            try:
                answer = self._exchange(sock, message, expect, timeout)
            except SessionUnavailable:
                self._drop()
                raise
            handed = self._received.pop(0) if answer.handover and self._received else None
            self._close_received()  # anything else that came along is not ours to keep
        return answer, handed

    def _ensure_connected(self) -> socket.socket:
        if self._sock is not None:
            return self._sock
        if self._unreachable is not None:
            raise SessionUnavailable(self._unreachable)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(CONNECT_TIMEOUT)
            sock.connect(self.path)
        except OSError as error:
            sock.close()
            self._unreachable = f"cannot reach the session at {self.path} ({_describe(error)})"
            raise SessionUnavailable(self._unreachable) from None
        self._decoder = FrameDecoder()
        hello = to_session.LayerHello(PROTOCOL_VERSION, os.getpid(), os.getppid())
        try:
            answer = self._exchange(sock, hello, to_layer.SessionHello, CONNECT_TIMEOUT)
        except SessionUnavailable as error:
            sock.close()
            self._unreachable = str(error)
            raise
        if answer.protocol_version != PROTOCOL_VERSION:
            sock.close()
            self._unreachable = (
                f"the session speaks protocol version {answer.protocol_version}, this layer"
                f" {PROTOCOL_VERSION} (pymirrord installations differ)"
            )
            raise SessionUnavailable(self._unreachable)
        self._sock = sock
        return sock

    def _exchange(
        self, sock: socket.socket, message: to_session.LayerToSession, expect: type[Answer], timeout: float
    ) -> Answer:
        try:
            sock.settimeout(timeout)
            sock.sendall(frame(to_session.CODEC.encode(message)))
            while True:
                data, ancillary, _, _ = sock.recvmsg(65536, rights.SPACE_FOR_ONE)
                self._received.extend(rights.descriptors(ancillary))
                if not data:
                    raise SessionUnavailable("the session closed the connection")
                frames = self._decoder.feed(data)
                if not frames:
                    continue
                if len(frames) > 1 or self._decoder.pending:
                    raise SessionUnavailable("the session sent more than one answer to one request")
                answer = to_layer.CODEC.decode(frames[0])
                break
        except socket.timeout:
            raise SessionUnavailable(
                f"the session did not answer {type(message).__name__} within {timeout:g} s"
            ) from None
        except OSError as error:
            raise SessionUnavailable(f"lost the session ({_describe(error)})") from None
        except ProtocolError as error:
            raise SessionUnavailable(f"the session broke the protocol ({error})") from None
        if not isinstance(answer, expect):
            raise SessionUnavailable(
                f"the session answered {type(message).__name__} with {type(answer).__name__}"
            )
        return answer

    def _close_received(self) -> None:
        for descriptor in self._received:
            with contextlib.suppress(OSError):
                os.close(descriptor)
        self._received.clear()

    def _drop(self) -> None:
        self._close_received()
        sock, self._sock = self._sock, None
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.close()


def _address(address: SocketAddress | None) -> Address | None:
    return None if address is None else (address.host, address.port)


def _describe(error: OSError) -> str:
    return error.strerror or str(error) or type(error).__name__
