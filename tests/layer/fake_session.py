"""A stand-in for the session, speaking the real layer protocol over a unix socket, for layer tests.

It answers LayerHello, answers ListenRequest with a configurable ListenResult, records every message
with the connection it came on, and plays the session's part of delivering a connection: it connects
to the app's real listener from a local port it registered first, so that the PeerQuery for that port
gets the chosen client and pod-side address.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import socketserver
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import TypeVar

from pymirrord.protocol import PROTOCOL_VERSION
from pymirrord.protocol import layer_to_session as to_session
from pymirrord.protocol import session_to_layer as to_layer
from pymirrord.protocol.framing import FrameDecoder, frame
from pymirrord.protocol.types import Mode, SocketAddress

WAIT = 20.0
"""Bound for every wait: generous because a test app may be a cold interpreter importing a framework."""

M = TypeVar("M", bound=to_session.LayerToSession)


@dataclass(frozen=True)
class Received:
    connection: int
    """Numbered in accept order, from 0."""
    message: to_session.LayerToSession


class FakeSession:
    def __init__(self, *, mode: Mode = Mode.MIRROR, protocol_version: int = PROTOCOL_VERSION) -> None:
        # Its own short directory: unix socket paths are limited to about 100 bytes, pytest's are long.
        self._directory = tempfile.mkdtemp(prefix="pmd-layer-")
        self.path = os.path.join(self._directory, "session.sock")
        self.mode = mode
        self.protocol_version = protocol_version
        self.listen_errors: dict[int, str] = {}
        """Pod port -> the error its ListenRequest is answered with."""
        self.received: list[Received] = []
        self._peers: dict[int, tuple[SocketAddress | None, SocketAddress | None]] = {}
        self._changed = threading.Condition()
        self._connections = 0
        self._server = _Server(self.path, self)
        self._thread = threading.Thread(target=self._server.serve_forever, name="fake-session", daemon=True)

    def __enter__(self) -> FakeSession:
        self._thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._server.close_connections()
        self._thread.join(WAIT)
        shutil.rmtree(self._directory, ignore_errors=True)

    # -- what tests read

    def messages(self, kind: type[M]) -> list[tuple[int, M]]:
        with self._changed:
            return [(r.connection, r.message) for r in self.received if isinstance(r.message, kind)]

    def wait_for(
        self, kind: type[M], where: Callable[[M], bool] = lambda _m: True, timeout: float = WAIT
    ) -> M:
        """The first ``kind`` message matching ``where``, waiting for it up to ``timeout`` seconds."""
        found: list[M] = []

        def ready() -> bool:
            found[:] = [m for _c, m in self.messages(kind) if where(m)]
            return bool(found)

        with self._changed:
            if not self._changed.wait_for(ready, timeout):
                raise AssertionError(f"no {kind.__name__} within {timeout} s; received {self.received}")
        return found[0]

    def wait_listen(self, port: int, timeout: float = WAIT) -> to_session.ListenRequest:
        return self.wait_for(to_session.ListenRequest, lambda m: m.port == port, timeout)

    # -- playing the session's part of a delivered connection

    def connect(
        self, address: SocketAddress, client: SocketAddress | None, local: SocketAddress | None = None
    ) -> socket.socket:
        """Connects to the app's real listener as the session does, announcing ``client`` and ``local``."""
        family = socket.AF_INET6 if ":" in address.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.settimeout(WAIT)
            sock.bind((address.host, 0))
            port = sock.getsockname()[1]
            with self._changed:
                self._peers[port] = (client, local)
            sock.connect((address.host, address.port))
        except BaseException:
            sock.close()
            raise
        return sock

    def http_get(
        self,
        address: SocketAddress,
        client: SocketAddress | None,
        local: SocketAddress | None = None,
        path: str = "/",
    ) -> tuple[int, bytes]:
        """One HTTP/1.0 request over a delivered connection; the status and body of the answer."""
        with self.connect(address, client, local) as sock:
            sock.sendall(f"GET {path} HTTP/1.0\r\nHost: user-service\r\nConnection: close\r\n\r\n".encode())
            chunks = []
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                chunks.append(chunk)
        response = b"".join(chunks)
        head, _, body = response.partition(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        return status, body

    # -- called by the server's handler threads

    def _new_connection(self) -> int:
        with self._changed:
            number = self._connections
            self._connections += 1
            return number

    def _answer(self, connection: int, message: to_session.LayerToSession) -> to_layer.SessionToLayer | None:
        with self._changed:
            self.received.append(Received(connection, message))
            self._changed.notify_all()
            if isinstance(message, to_session.LayerHello):
                return to_layer.SessionHello(self.protocol_version)
            if isinstance(message, to_session.ListenRequest):
                error = self.listen_errors.get(message.port)
                if error is not None:
                    return to_layer.ListenResult(message.port, None, error)
                return to_layer.ListenResult(message.port, self.mode, None)
            if isinstance(message, to_session.PeerQuery):
                client, local = self._peers.get(message.port, (None, None))
                return to_layer.PeerAnswer(client, local, handover=False)
            return None


class _Handler(socketserver.BaseRequestHandler):
    server: _Server

    def handle(self) -> None:
        session = self.server.session
        connection = session._new_connection()
        decoder = FrameDecoder()
        sock: socket.socket = self.request
        self.server.track(sock)
        while True:
            try:
                data = sock.recv(65536)
            except OSError:
                return
            if not data:
                return
            for payload in decoder.feed(data):
                answer = session._answer(connection, to_session.CODEC.decode(payload))
                if answer is not None:
                    sock.sendall(frame(to_layer.CODEC.encode(answer)))


class _Server(socketserver.ThreadingUnixStreamServer):
    daemon_threads = True

    def __init__(self, path: str, session: FakeSession) -> None:
        self.session = session
        self._open: list[socket.socket] = []
        self._open_lock = threading.Lock()
        super().__init__(path, _Handler)

    def track(self, sock: socket.socket) -> None:
        with self._open_lock:
            self._open.append(sock)

    def close_connections(self) -> None:
        """Ends every layer connection, as a session that exits does."""
        with self._open_lock:
            for sock in self._open:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
