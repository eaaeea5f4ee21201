"""A websocket connection on an asyncio ``BufferedProtocol``: the I/O shell around ``frames`` and
``handshake``.

Built for the session-agent link, where it carries every relayed byte: the socket reads straight into the
frame parser's buffer, whole messages are queued for the reader without a future per message, and what
is written leaves through ``os.writev`` from a queue of views, so no payload is joined to its header or
copied into a send buffer (the transport reads; it never writes). Writers call ``drain`` to respect the
high-water mark; a reader that falls behind pauses the socket.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import itertools
import os
import socket
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Any, cast

from pymirrord.protocol.batch import batch_parts
from pymirrord.transport import frames
from pymirrord.transport.errors import ConnectionClosed, MessageTooBig, WebSocketProtocolError
from pymirrord.transport.frames import Control, Message, Opcode
from pymirrord.transport.handshake import (
    STREAM_SUBPROTOCOL,
    Accepted,
    ClientHandshake,
    ServerHandshake,
    UpgradeRequest,
)

Bytes = bytes | bytearray | memoryview

CLOSE_NORMAL = 1000
CLOSE_GOING_AWAY = 1001
CLOSE_PROTOCOL_ERROR = 1002
CLOSE_TOO_BIG = 1009
CLOSE_ABNORMAL = 1006
CLOSE_INTERNAL_ERROR = 1011
READ_QUEUE_LIMIT = 16 * 1024 * 1024
"""Bytes of received messages waiting for the reader before the socket stops being read."""
_IOV_MAX = 64
"""Views handed to one ``writev``; the system's limit is higher, the gain past this small."""
_HANDSHAKE_CHUNK = 4096


class WebSocket(asyncio.BufferedProtocol):
    """One websocket, client or server side; made by ``connect`` or ``WebSocketServer``."""

    def __init__(self, *, client: bool, max_message: int, write_limit: int, close_timeout: float) -> None:
        self.client = client
        self.subprotocol: str | None = None
        self.request: UpgradeRequest | None = None
        self._parser = frames.FrameParser(masked=not client, max_message=max_message)
        self._write_limit = write_limit
        self._close_timeout = close_timeout
        self._loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self._open = False
        self._handshake_buffer = bytearray(_HANDSHAKE_CHUNK)
        self._on_handshake: Callable[[bytes], None] | None = None
        self._messages: collections.deque[bytes | bytearray | str] = collections.deque()
        self._queued = 0
        self._reading_paused = False
        self._reader: asyncio.Future[None] | None = None
        self._writable: asyncio.Future[None] | None = None
        self._writing_paused = False
        self._out: collections.deque[memoryview] = collections.deque()
        self._out_bytes = 0
        self._fd = -1
        self._watching = False
        self._close_when_flushed = False
        self.on_writable: Callable[[], None] | None = None
        """Called when the queue of unwritten bytes has drained below half the high-water mark."""
        self._close_sent = False
        self._closed: ConnectionClosed | None = None
        self._lost = self._loop.create_future()
        self._pongs: dict[bytes, asyncio.Future[None]] = {}
        self._keepalive: asyncio.Task[None] | None = None
        self._raw_rest = b""

    # --- asyncio protocol ----------------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # a stream transport (uvloop's is not a subclass)
        raw = transport.get_extra_info("socket")
        # Our own descriptor for writing: the event loop refuses to watch a transport's descriptor for
        # anyone else. It is closed with the transport, which then sends the FIN.
        self._fd = os.dup(raw.fileno()) if raw is not None else -1

    def get_buffer(self, sizehint: int) -> memoryview:
        if not self._open:
            return memoryview(self._handshake_buffer)
        return self._parser.buffer(sizehint)

    def buffer_updated(self, nbytes: int) -> None:
        if not self._open:
            if self._on_handshake is not None:
                self._on_handshake(bytes(self._handshake_buffer[:nbytes]))
            return
        try:
            events = self._parser.advance(nbytes)
        except WebSocketProtocolError as error:
            self._fail(
                CLOSE_TOO_BIG if isinstance(error, MessageTooBig) else CLOSE_PROTOCOL_ERROR, str(error)
            )
            return
        self._take(events)

    def eof_received(self) -> bool | None:
        if not self._open and self._on_handshake is not None:
            self._on_handshake(b"")
        return None  # the transport closes itself

    def connection_lost(self, exc: Exception | None) -> None:
        if self._keepalive is not None:
            self._keepalive.cancel()
        self._stop_writing()
        self._release_fd()
        if self._closed is None:
            self._closed = ConnectionClosed(CLOSE_ABNORMAL, str(exc) if exc else "")
        self._wake_reader()
        if self._writable is not None and not self._writable.done():
            self._writable.set_result(None)
        if not self._lost.done():
            self._lost.set_result(None)
        if not self._open and self._on_handshake is not None:
            self._on_handshake(b"")

    def pause_writing(self) -> None:  # the transport never writes, so never asks
        pass

    def resume_writing(self) -> None:
        pass

    # --- opening -------------------------------------------------------------------------------------------

    def opened(self, subprotocol: str | None, rest: bytes) -> None:
        """The handshake is done; ``rest`` is what came behind it."""
        self.subprotocol = subprotocol
        self._open = True
        self._on_handshake = None
        if rest:
            try:
                self._take(self._parser.feed(rest))
            except WebSocketProtocolError as error:
                self._fail(CLOSE_PROTOCOL_ERROR, str(error))

    def opened_raw(self, subprotocol: str, rest: bytes) -> None:
        """The handshake agreed on a raw byte stream (``STREAM_SUBPROTOCOL``): nothing more is read as
        frames; the owner takes the socket with ``detach``. ``rest`` is what came behind the handshake."""
        self.subprotocol = subprotocol
        self._on_handshake = None
        self._raw_rest = rest
        if self.transport is not None:
            self.transport.pause_reading()

    async def detach(self) -> tuple[socket.socket, bytes]:
        """Hands over the TCP connection of a raw stream once the handshake's answer is written: a
        non-blocking socket no event loop watches, and the bytes already read behind the handshake."""
        if self.subprotocol is None or self._open:
            raise RuntimeError("only a raw stream is detached")
        while self._out:
            if self._closed is not None or self.transport is None or self.transport.is_closing():
                raise ConnectionClosed(CLOSE_ABNORMAL, "the connection closed during the handshake")
            self._writing_paused = True  # so that drain waits for the queue to empty
            await self.drain()
        if self._fd < 0 or self.transport is None or self.transport.is_closing():
            raise ConnectionClosed(CLOSE_ABNORMAL, "the connection closed during the handshake")
        fd, self._fd = self._fd, -1
        self._closed = ConnectionClosed(CLOSE_NORMAL, "detached as a raw stream")
        # Closing the transport's own descriptor sends nothing: ours keeps the connection open.
        self.transport.abort()
        sock = socket.socket(fileno=fd)
        sock.setblocking(False)
        return sock, self._raw_rest

    # --- reading -------------------------------------------------------------------------------------------

    def _take(self, events: list[frames.Event]) -> None:
        for event in events:
            if isinstance(event, Message):
                self._queued += len(event.payload)
                if event.binary:
                    self._messages.append(event.payload)
                    continue
                try:
                    self._messages.append(event.payload.decode())
                except UnicodeDecodeError:
                    self._fail(1007, "a text message that is not UTF-8")
                    return
            elif event.opcode is Opcode.PING:
                self._write(frames.frame(Opcode.PONG, event.payload, masked=self.client))
            elif event.opcode is Opcode.PONG:
                waiter = self._pongs.pop(event.payload, None)
                if waiter is not None and not waiter.done():
                    waiter.set_result(None)
            elif event.opcode is Opcode.CLOSE:
                self._close_received(event)
        if self._messages:
            self._wake_reader()
            if self._queued > READ_QUEUE_LIMIT and not self._reading_paused and self.transport is not None:
                self._reading_paused = True
                self.transport.pause_reading()

    def _close_received(self, event: Control) -> None:
        try:
            code, reason = frames.parse_close(event.payload)
        except WebSocketProtocolError as error:
            self._fail(CLOSE_PROTOCOL_ERROR, str(error))
            return
        if self._closed is None:
            self._closed = ConnectionClosed(code, reason)
        if not self._close_sent:
            self._close_sent = True
            echo = b"" if code == 1005 else frames.close_payload(code, reason)
            self._write(frames.frame(Opcode.CLOSE, echo, masked=self.client))
        if not self.client:
            self._close_transport()  # the server ends the TCP connection (RFC 6455 section 7.1.1)
        self._wake_reader()

    def _wake_reader(self) -> None:
        if self._reader is not None and not self._reader.done():
            self._reader.set_result(None)

    async def recv_many(self) -> list[bytes | bytearray | str]:
        """Every message received so far (at least one); ``ConnectionClosed`` once none will come."""
        await self._wait_for_messages()
        taken = list(self._messages)
        self._messages.clear()
        self._taken(self._queued)
        return taken

    async def recv(self) -> bytes | bytearray | str:
        """The next message (``str`` for a text message); ``ConnectionClosed`` once none will come."""
        await self._wait_for_messages()
        payload = self._messages.popleft()
        self._taken(len(payload))
        return payload

    async def _wait_for_messages(self) -> None:
        while not self._messages:
            if self._closed is not None:
                raise self._closed
            self._reader = self._loop.create_future()
            await self._reader

    def _taken(self, size: int) -> None:
        """The reader took ``size`` bytes of messages: read the socket again once half the queue is free."""
        self._queued -= size
        if self._reading_paused and self._queued <= READ_QUEUE_LIMIT // 2 and self.transport is not None:
            self._reading_paused = False
            self.transport.resume_reading()

    async def __aiter__(self) -> AsyncIterator[bytes | bytearray | str]:
        with contextlib.suppress(ConnectionClosed):
            while True:
                for payload in await self.recv_many():
                    yield payload

    # --- keepalive -----------------------------------------------------------------------------------------

    def keep_alive(self, interval: float, timeout: float) -> None:
        """Pings the peer every ``interval`` seconds; one that does not answer within ``timeout`` is dropped.

        A peer that vanished without closing (a laptop put to sleep behind a port-forward) is noticed, so
        what it held is released instead of lasting as long as the TCP connection seems open.
        """
        self._keepalive = self._loop.create_task(self._ping_forever(interval, timeout))

    async def _ping_forever(self, interval: float, timeout: float) -> None:
        while self._closed is None:
            await asyncio.sleep(interval)  # the interval between pings, not a wait for an event
            payload = os.urandom(4)
            waiter = self._pongs[payload] = self._loop.create_future()
            self._write(frames.frame(Opcode.PING, payload, masked=self.client))
            try:
                await asyncio.wait_for(waiter, timeout)
            except asyncio.TimeoutError:
                self._fail(CLOSE_INTERNAL_ERROR, f"no answer to a ping within {timeout:g} s")
                self.abort()
                return

    # --- writing -------------------------------------------------------------------------------------------

    def send(self, payload: Bytes) -> None:
        """Queues one binary message; it is sent in order. A closed websocket drops it (the reader learns)."""
        if self._closed is not None or self._close_sent:
            return
        self._write(frames.frame(Opcode.BINARY, payload, masked=self.client))

    def send_parts(self, parts: Sequence[Bytes]) -> None:
        """One binary message made of ``parts`` in order, without joining large ones first (unmasked)."""
        if self._closed is not None or self._close_sent:
            return
        length = sum(len(part) for part in parts)
        if self.client:
            key = os.urandom(4)
            self._write([frames.header(Opcode.BINARY, length, mask_key=key), *frames.mask_parts(parts, key)])
            return
        self._write([frames.header(Opcode.BINARY, length), *parts])

    def send_messages(self, messages: list[bytes], *, batched: bool) -> None:
        """Encoded protocol messages, in order: one batch (``pymirrord.protocol.batch``) when the peer agreed
        to batches, else one websocket message each."""
        if batched:
            self.send_parts(batch_parts(messages))
        else:
            for message in messages:
                self.send(message)

    def _write(self, parts: Sequence[Bytes]) -> None:
        transport = self.transport
        if transport is None or transport.is_closing() or self._fd < 0 or self._close_when_flushed:
            return
        for part in parts:
            if part:
                self._out.append(part if isinstance(part, memoryview) else memoryview(part))
                self._out_bytes += len(part)
        if not self._watching:
            self._flush()
        if self._out_bytes > self._write_limit:
            self._writing_paused = True

    def _flush(self) -> None:
        """Writes what the socket takes now; the rest waits for it to become writable."""
        out = self._out
        while out:
            try:
                sent = os.writev(self._fd, list(itertools.islice(out, _IOV_MAX)))
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                # The reading side of the transport learns of the broken connection and reports it.
                self.abort()
                return
            self._out_bytes -= sent
            while sent:
                head = out[0]
                if len(head) <= sent:
                    sent -= len(head)
                    out.popleft()
                else:
                    out[0] = head[sent:]
                    sent = 0
        if out and not self._watching:
            self._loop.add_writer(self._fd, self._flush)
            self._watching = True
        elif not out and self._watching:
            self._loop.remove_writer(self._fd)
            self._watching = False
        if self._writing_paused and self._out_bytes <= self._write_limit // 2:
            self._writing_paused = False
            if self._writable is not None and not self._writable.done():
                self._writable.set_result(None)
            if self.on_writable is not None:
                self.on_writable()
        if not out and self._close_when_flushed and self.transport is not None:
            self._release_fd()
            self.transport.close()

    def _stop_writing(self) -> None:
        if self._watching:
            self._loop.remove_writer(self._fd)
            self._watching = False
        self._out.clear()
        self._out_bytes = 0
        self._writing_paused = False
        if self._writable is not None and not self._writable.done():
            self._writable.set_result(None)

    def _close_transport(self) -> None:
        """Closes the TCP connection once everything queued is written."""
        self._close_when_flushed = True
        if not self._out and self.transport is not None:
            self._release_fd()
            self.transport.close()

    def _release_fd(self) -> None:
        if self._fd >= 0:
            if self._watching:
                self._loop.remove_writer(self._fd)
                self._watching = False
            os.close(self._fd)
            self._fd = -1

    @property
    def writable(self) -> bool:
        """False while more than the high-water mark waits to be written."""
        return not self._writing_paused

    async def drain(self) -> None:
        """Waits while more than the high-water mark waits to be written (``ConnectionClosed`` if closed)."""
        while self._writing_paused:
            if self._closed is not None:
                raise self._closed
            self._writable = self._loop.create_future()
            await self._writable
        if self._closed is not None and self._lost.done():
            raise self._closed

    # --- closing -------------------------------------------------------------------------------------------

    @property
    def closed(self) -> bool:
        return self._closed is not None

    def _fail(self, code: int, reason: str) -> None:
        """The peer broke the protocol: say why in a close frame and drop the connection."""
        if self._closed is None:
            self._closed = ConnectionClosed(code, reason)
        if not self._close_sent:
            self._close_sent = True
            self._write(frames.frame(Opcode.CLOSE, frames.close_payload(code, reason), masked=self.client))
        self._close_transport()
        self._wake_reader()

    async def close(self, code: int = CLOSE_NORMAL, reason: str = "") -> None:
        """The closing handshake: our close frame, the peer's answer (for at most ``close_timeout``), done."""
        if self.transport is None:
            return
        if not self._close_sent:
            self._close_sent = True
            self._write(frames.frame(Opcode.CLOSE, frames.close_payload(code, reason), masked=self.client))
        try:
            await asyncio.wait_for(asyncio.shield(self._lost), self._close_timeout)
        except asyncio.TimeoutError:
            self.abort()  # a peer that never answers our close must not hold us
        if self._closed is None:
            self._closed = ConnectionClosed(code, reason)
        self._wake_reader()

    def abort(self) -> None:
        self._stop_writing()
        self._release_fd()
        if self.transport is not None:
            self.transport.abort()

    async def wait_closed(self) -> None:
        await asyncio.shield(self._lost)

    @property
    def remote_address(self) -> Any:
        return None if self.transport is None else self.transport.get_extra_info("peername")

    @property
    def socket(self) -> socket.socket | None:
        return None if self.transport is None else self.transport.get_extra_info("socket")


async def connect(
    host: str,
    port: int,
    *,
    path: str = "/",
    headers: dict[str, str] | None = None,
    subprotocols: tuple[str, ...] = (),
    max_message: int,
    write_limit: int = 1024 * 1024,
    close_timeout: float = 3.0,
    timeout: float,
) -> WebSocket:
    """Opens a websocket to ``host:port``; ``HandshakeRejected`` carries a refusal's status and body."""
    loop = asyncio.get_running_loop()
    outcome: asyncio.Future[Accepted] = loop.create_future()
    handshake = ClientHandshake(f"{host}:{port}", path, headers or {}, subprotocols)

    def factory() -> WebSocket:
        websocket = WebSocket(
            client=True, max_message=max_message, write_limit=write_limit, close_timeout=close_timeout
        )

        def on_handshake(data: bytes) -> None:
            if outcome.done():
                return
            try:
                accepted = handshake.feed(data)
            except Exception as error:  # handed to the opener
                outcome.set_exception(error)
                return
            if accepted is not None:
                outcome.set_result(accepted)

        websocket._on_handshake = on_handshake
        return websocket

    async def opening() -> WebSocket:
        transport, websocket = await loop.create_connection(factory, host, port)
        try:
            websocket._write([handshake.request])
            accepted = await outcome
        except BaseException:
            transport.abort()
            raise
        websocket.opened(accepted.subprotocol, accepted.rest)
        return websocket

    return await asyncio.wait_for(opening(), timeout)


@dataclass(frozen=True)
class RawStream:
    """An opened raw byte stream: the connected non-blocking socket (watched by no event loop), the bytes
    that came behind the server's answer, and how long the handshake was each way (where something on
    the path counts the stream's bytes from its first)."""

    sock: socket.socket
    rest: bytes
    request_length: int
    answer_length: int


async def open_raw(
    host: str, port: int, *, path: str = "/", headers: dict[str, str] | None = None, timeout: float
) -> RawStream:
    """Opens a raw byte stream (``STREAM_SUBPROTOCOL``) to ``host:port`` (a tunnel)."""
    loop = asyncio.get_running_loop()
    handshake = ClientHandshake(f"{host}:{port}", path, headers or {}, (STREAM_SUBPROTOCOL,))
    received = 0

    async def opening(sock: socket.socket) -> Accepted:
        nonlocal received
        await loop.sock_connect(sock, (host, port))
        await loop.sock_sendall(sock, handshake.request)
        while True:
            data = await loop.sock_recv(sock, _HANDSHAKE_CHUNK)
            received += len(data)
            accepted = handshake.feed(data)
            if accepted is not None:
                return accepted

    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    family, kind, proto, _, _ = infos[0]
    sock = socket.socket(family, kind, proto)
    sock.setblocking(False)
    try:
        accepted = await asyncio.wait_for(opening(sock), timeout)
        if accepted.subprotocol != STREAM_SUBPROTOCOL:
            raise WebSocketProtocolError("the server does not offer raw streams")
    except BaseException:
        sock.close()
        raise
    return RawStream(sock, accepted.rest, len(handshake.request), received - len(accepted.rest))


Authenticator = Callable[[UpgradeRequest, Any], "tuple[int, str, dict[str, str]] | None"]
"""Looks at an upgrade request (and the peer's address): None lets it in, or (status, body, headers)."""
Handler = Callable[[WebSocket], "asyncio.Future[None] | Any"]


class WebSocketServer:
    """Serves websockets on a listening socket: each opened connection runs ``handler`` in a task."""

    def __init__(
        self,
        handler: Handler,
        *,
        authenticate: Authenticator,
        subprotocols: tuple[str, ...] = (),
        max_message: int,
        write_limit: int,
        close_timeout: float,
        open_timeout: float = 10.0,
    ) -> None:
        self._handler = handler
        self._authenticate = authenticate
        self._subprotocols = subprotocols
        self._max_message = max_message
        self._write_limit = write_limit
        self._close_timeout = close_timeout
        self._open_timeout = open_timeout
        self._server: asyncio.Server | None = None
        self._connections: set[WebSocket] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self, sock: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(self._protocol, sock=sock)

    def _protocol(self) -> WebSocket:
        websocket = WebSocket(
            client=False,
            max_message=self._max_message,
            write_limit=self._write_limit,
            close_timeout=self._close_timeout,
        )
        handshake = ServerHandshake()
        loop = asyncio.get_running_loop()
        deadline = loop.call_later(self._open_timeout, websocket.abort)

        def on_handshake(data: bytes) -> None:
            try:
                request = handshake.feed(data)
            except WebSocketProtocolError as error:
                deadline.cancel()
                self._refuse(websocket, 400, f"{error}\n", {})
                return
            if request is None:
                return
            deadline.cancel()
            websocket._on_handshake = None
            refusal = self._authenticate(request, websocket.remote_address)
            if refusal is not None:
                self._refuse(websocket, *refusal)
                return
            chosen = next((name for name in self._subprotocols if name in request.subprotocols), None)
            websocket._write([handshake.accept(request, chosen)])
            websocket.request = request
            if chosen == STREAM_SUBPROTOCOL:
                websocket.opened_raw(chosen, request.rest)
            else:
                websocket.opened(chosen, request.rest)
            self._connections.add(websocket)
            task = loop.create_task(self._run(websocket))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

        websocket._on_handshake = on_handshake
        return websocket

    @staticmethod
    def _refuse(websocket: WebSocket, status: int, body: str, headers: dict[str, str]) -> None:
        websocket._on_handshake = None
        websocket._write([ServerHandshake.reject(status, body, headers)])
        websocket._close_transport()

    async def _run(self, websocket: WebSocket) -> None:
        try:
            await self._handler(websocket)
        finally:
            self._connections.discard(websocket)
            if not websocket.closed:
                await websocket.close()
            else:
                websocket._close_transport()

    def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for websocket in list(self._connections):
            websocket._fail(CLOSE_GOING_AWAY, "the agent is stopping")

    async def wait_closed(self) -> None:
        if self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
