"""HTTP requests the agent routed to this session by filter: sent to the local app, responses streamed back.

Each request gets an app connection of its own for its duration, taken from a pool of idle keep-alive
connections per app listener (or newly opened); when the response ends and both sides allow it, the
connection goes back to the pool. The request's bytes are written exactly as the client sent them, and the
response's bytes go back exactly as the app sent them; ``pymirrord.http1`` only finds where the response
ends. A pooled connection the app closed meanwhile is noticed when it answers nothing, and the request is
sent again on a fresh one (it is kept until its response starts). Mirrored requests are served the same
way, and their responses discarded.

A request that reached the pod as an HTTP/2 stream goes to the app over h2c (``h2_app_link``), one
connection per app multiplexing them; an app that turns out to speak only HTTP/1.1 gets them, and every later
one, as HTTP/1.1 instead.

A local agent may instead ask for connections to the app (``HttpConnectionWanted``), to send the matching
requests that arrive whole straight to the app: each ask gets one new connection, handed over on the
handover channel when the session has one (``hand_over``), and then belongs to the agent. A session whose
agent is reached over the network gives it tunnels the app accepted instead (``app_tunnel``): one as soon
as the first stolen request for a port arrives, which tells the agent it may ask, then one per ask.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from pymirrord.config.model import HttpFilterConfig
from pymirrord.flow import FlowControl, Verdict
from pymirrord.http1 import NEED_DATA, End, FramingError, ResponseHead, ResponseReader
from pymirrord.http_filter import HttpFilterSpec, spec_from_config
from pymirrord.nodelay import no_delay
from pymirrord.protocol import agent_to_session as from_agent
from pymirrord.protocol import session_to_agent as to_agent
from pymirrord.protocol.types import SHARED_SOURCE, Mode, SocketAddress
from pymirrord.session.h2_app_link import NOT_HTTP2, H2AppLink
from pymirrord.session.held_stream import COPY_LIMIT, HIGH_WATER, LOW_WATER, relieve
from pymirrord.session.state import SessionState
from pymirrord.streams import drained, open_stream

AGENT_MESSAGES = (
    from_agent.HttpRequestStart,
    from_agent.HttpRequestBody,
    from_agent.HttpRequestEnd,
    from_agent.HttpRequestAbort,
    from_agent.HttpConnectionWanted,
    from_agent.HttpResponseFlow,
)
"""The agent's messages this module handles."""

_CHUNK = 1024 * 1024
RETRY_LIMIT = 1024 * 1024
"""Bytes of a request kept until its response starts, to send it again if a pooled connection was stale."""
IDLE_PER_APP = 64
"""Idle keep-alive connections kept per app listener."""

Send = Callable[[to_agent.SessionToAgent], Awaitable[None]]
AddressOf = Callable[[int], SocketAddress | None]
HandOver = Callable[[int, socket.socket], bool]
AppTunnel = Callable[[int, SocketAddress], Awaitable[None]]
"""Gives the agent a tunnel that leads to the app behind (port, its listening address): ``HttpAppTunnel``."""


@dataclass
class _AppConnection:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    reused: bool = False

    @property
    def usable(self) -> bool:
        return not self.writer.is_closing() and not self.reader.at_eof()


@dataclass
class _Request:
    message: from_agent.HttpRequestStart
    address: SocketAddress
    connection: _AppConnection | None = None
    pending: list[bytes] = field(default_factory=list)  # body bytes with nowhere to go yet, in order
    kept: bytearray | None = field(default_factory=bytearray)  # for a retry, until the response starts
    ends: int = 0  # HttpRequestEnd messages: the request's end, then (after an upgrade) the client's EOF
    upgraded: bool = False
    task: asyncio.Task[None] | None = None
    ended: asyncio.Event = field(default_factory=asyncio.Event)  # the request's end arrived
    h2: H2AppLink | None = None  # while the request goes over HTTP/2 (``_feed_h2`` drains ``pending``)
    connected: asyncio.Event = field(default_factory=asyncio.Event)  # HTTP/1: the request went to the app
    writable: asyncio.Event = field(default_factory=asyncio.Event)  # clear while the agent holds the response
    waiter: asyncio.Task[None] | None = None  # waits for the app to take a paused body

    def __post_init__(self) -> None:
        self.writable.set()

    @property
    def backlog(self) -> int:
        """Body bytes the app has not read yet."""
        size = sum(len(chunk) for chunk in self.pending)
        if self.connection is not None:
            size += self.connection.writer.transport.get_write_buffer_size()
        return size

    def write(self, data: bytes) -> None:
        if self.kept is not None:
            self.kept += data
            if len(self.kept) > RETRY_LIMIT:
                self.kept = None
        connection = self.connection
        if connection is None:
            self.pending.append(data)
        elif not connection.writer.is_closing():
            connection.writer.write(data)


class HttpRequests:
    """The session's side of filtered HTTP traffic; ``on_agent_message`` is fed by the agent pump."""

    def __init__(self, send: Send, address_of: AddressOf, on_log: Callable[[str], None]) -> None:
        self._send = send
        self._address_of = address_of
        self._log = on_log
        self._requests: dict[int, _Request] = {}
        self._flow = FlowControl(HIGH_WATER, LOW_WATER, COPY_LIMIT)
        self._idle: dict[SocketAddress, list[_AppConnection]] = {}
        self._handing: set[asyncio.Task[None]] = set()
        self._h2_links: dict[SocketAddress, H2AppLink] = {}
        self._h2_opening: dict[SocketAddress, asyncio.Lock] = {}
        self._http1_only: set[SocketAddress] = set()  # apps that answered h2c with something else
        self.hand_over: HandOver | None = None
        """Passes (port, connection to the app) to the agent; True once sent. Set with a handover channel."""
        self.app_tunnel: AppTunnel | None = None
        """Set when the session has tunnels to its agent (the agent then writes matching requests itself)."""
        self._tunneled_ports: set[int] = set()  # ports whose first stolen request sent a tunnel

    @property
    def active(self) -> int:
        return len(self._requests)

    async def on_agent_message(self, message: from_agent.AgentToSession) -> None:
        if isinstance(message, from_agent.HttpConnectionWanted):
            address = self._address_of(message.port)
            if address is not None and self.hand_over is not None:
                self._spawn(self._give(message.port, address, self.hand_over))
            elif address is not None and self.app_tunnel is not None:
                self._spawn(self.app_tunnel(message.port, address))
            return
        if isinstance(message, from_agent.HttpRequestStart):
            address = self._address_of(message.port)
            if address is None:
                if message.mode is Mode.STEAL:
                    reason = f"nothing listens on port {message.port} in this session any more"
                    await self._send(to_agent.HttpResponseFailed(message.request_id, reason))
                return
            started = _Request(message, address)
            self._requests[message.request_id] = started
            started.task = asyncio.create_task(self._serve(started))
            if (
                self.app_tunnel is not None
                and message.mode is Mode.STEAL
                and not message.http2
                and message.port not in self._tunneled_ports
            ):
                self._tunneled_ports.add(message.port)
                self._spawn(self.app_tunnel(message.port, address))
            return
        request: _Request | None
        if isinstance(message, from_agent.HttpRequestBody):
            request = self._requests.get(message.request_id)
            if request is not None:
                request.write(message.data)
                if request.h2 is not None:
                    await _feed_h2(request)
                elif not request.message.http2:
                    await self._body_written(request)
                elif request.connection is not None:
                    # An HTTP/2 stream to an app that speaks HTTP/1.1 only: the agent cannot hold one stream's
                    # body, so the pump waits for the app to read it.
                    with contextlib.suppress(ConnectionError, OSError):
                        await relieve(request.connection.writer)
        elif isinstance(message, from_agent.HttpResponseFlow):
            request = self._requests.get(message.request_id)
            if request is not None and message.paused:
                request.writable.clear()
            elif request is not None:
                request.writable.set()
        elif isinstance(message, from_agent.HttpRequestEnd):
            request = self._requests.get(message.request_id)
            if request is not None:
                request.ends += 1
                request.ended.set()
                _half_close_tunnel(request)
        elif isinstance(message, from_agent.HttpRequestAbort):
            request = self._requests.pop(message.request_id, None)
            if request is not None and request.task is not None:
                request.task.cancel()

    async def _body_written(self, request: _Request) -> None:
        """Never waits for the app: past the high-water mark the agent stops reading this request's body (a
        mirrored copy is dropped instead, far past it: it must never slow the pod's traffic)."""
        message = request.message
        verdict = self._flow.grew(message.request_id, request.backlog, copy=message.mode is Mode.MIRROR)
        if verdict is Verdict.PAUSE:
            await self._send(to_agent.HttpRequestFlow(message.request_id, True))
            request.waiter = asyncio.create_task(self._resume_when_drained(request))
        elif verdict is Verdict.DROP:
            limit = COPY_LIMIT // (1024 * 1024)
            self._log(
                f"mirrored request {message.method} {message.target} dropped:"
                f" the app fell more than {limit} MiB behind"
            )
            self._requests.pop(message.request_id, None)
            if request.task is not None:
                request.task.cancel()

    async def _resume_when_drained(self, request: _Request) -> None:
        await request.connected.wait()
        connection = request.connection
        if connection is None:
            return
        try:
            await drained(connection.writer, LOW_WATER)
        except OSError:
            return  # the request fails with its connection
        request_id = request.message.request_id
        if self._flow.shrank(request_id, request.backlog) is Verdict.RESUME:
            await self._send(to_agent.HttpRequestFlow(request_id, False))

    async def close(self) -> None:
        """Drop every request and idle connection (the agent is gone or the session ends)."""
        tasks = [r.task for r in self._requests.values() if r.task is not None] + list(self._handing)
        self._requests.clear()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for connections in self._idle.values():
            for connection in connections:
                connection.writer.close()
        self._idle.clear()
        links = list(self._h2_links.values())
        self._h2_links.clear()
        for link in links:
            await link.close()

    # --- serving one request -------------------------------------------------------------------------------

    async def _serve(self, request: _Request) -> None:
        request_id = request.message.request_id
        steal = request.message.mode is Mode.STEAL
        try:
            if request.message.http2 and request.address not in self._http1_only:
                failure = await self._exchange_h2(request)
            else:
                failure = await self._exchange(request)
        except asyncio.CancelledError:
            failure = None
            if request.h2 is not None:
                request.h2.cancel(request_id)
            if request.connection is not None:
                request.connection.writer.transport.abort()
            raise
        finally:
            self._requests.pop(request_id, None)
            self._flow.forget(request_id)
            if request.waiter is not None:
                request.waiter.cancel()
        if failure is not None:
            self._log(f"request {request.message.method} {request.message.target}: {failure}")
            if steal:
                with contextlib.suppress(ConnectionError, OSError):
                    await self._send(to_agent.HttpResponseFailed(request_id, failure))

    async def _exchange_h2(self, request: _Request) -> str | None:
        """``_exchange`` over the app's h2c connection; over HTTP/1.1 if the app does not speak HTTP/2."""
        address = request.address
        try:
            link = await self._h2_link(address)
        except OSError as error:
            return f"cannot reach the app at {address}: {error}"
        message = request.message
        request.h2 = link
        outcome = link.start(message.request_id, message.head, steal=message.mode is Mode.STEAL)
        await _feed_h2(request)
        failure = await outcome
        request.h2 = None
        if failure != NOT_HTTP2:
            return failure
        self._http1_only.add(address)
        self._log(f"the app at {address} does not speak HTTP/2: HTTP/2 requests reach it as HTTP/1.1")
        if request.kept is None:
            return "the app does not speak HTTP/2, and the request was too large to keep for HTTP/1.1"
        request.pending = [bytes(request.kept)]
        return await self._exchange(request)

    async def _h2_link(self, address: SocketAddress) -> H2AppLink:
        async with self._h2_opening.setdefault(address, asyncio.Lock()):
            link = self._h2_links.get(address)
            if link is None or link.closed:
                link = H2AppLink(self._send)
                await link.open(await _connect(address))
                self._h2_links[address] = link
            return link

    async def _exchange(self, request: _Request) -> str | None:
        """Send the request and relay the response; the reason if the app did not answer it."""
        for _attempt in range(2):
            try:
                connection = await self._connection(request.address)
            except OSError as error:
                return f"cannot reach the app at {request.address}: {error}"
            request.connection = connection
            connection.writer.write(request.message.head + b"".join(request.pending))
            request.pending.clear()
            request.connected.set()
            try:
                outcome = await self._relay_response(request, connection)
            except (ConnectionError, OSError, FramingError) as error:
                connection.writer.transport.abort()
                return f"the app's connection broke: {error}"
            if outcome != "stale":
                return None if outcome == "ok" else outcome
            # A pooled connection the app had closed: send the request again on a fresh one.
            connection.writer.close()
            if request.kept is None:
                return "the app closed a kept-alive connection as the request arrived"
            request.pending = [bytes(request.kept)]
            request.connection = None
        return "the app closed the connection without answering"

    async def _relay_response(self, request: _Request, connection: _AppConnection) -> str:
        """``ok``, ``stale`` (the app answered nothing on a reused connection) or why it failed."""
        steal = request.message.mode is Mode.STEAL
        request_id = request.message.request_id
        responses = ResponseReader()
        responses.expect(request.message.method)
        started = False
        while True:
            data = await connection.reader.read(_CHUNK)
            if not data:
                if not started:
                    return "stale" if connection.reused else "the app closed the connection without answering"
                responses.feed_eof()
            else:
                if not started:
                    started = True
                    request.kept = None
                responses.feed(data)
            finished = False
            while (event := responses.next_event()) is not NEED_DATA:
                if isinstance(event, End) or (isinstance(event, ResponseHead) and responses.upgraded):
                    finished = isinstance(event, End)
                    if not finished:
                        break  # upgraded: the rest is relayed raw below
            if data and steal:
                await request.writable.wait()  # the agent may hold this response while its client is slow
                await self._send(to_agent.HttpResponseData(request_id, data))
            if responses.upgraded:
                await self._tunnel(request, connection, responses)
                return "ok"
            if finished:
                if steal:
                    await self._send(to_agent.HttpResponseEnd(request_id))
                if responses.reusable and request_id in self._requests:
                    # An app may answer before the request's end has arrived here (it did not need the
                    # body, or the end is a message behind): the connection is reusable once it has. An
                    # abort cancels this wait along with the request.
                    if not request.ended.is_set():
                        await request.ended.wait()
                    self._put_idle(request.address, connection)
                else:
                    connection.writer.close()
                return "ok"
            if not data:
                return "the app closed the connection inside its response"

    async def _tunnel(self, request: _Request, connection: _AppConnection, responses: ResponseReader) -> None:
        """After a ``101`` the app's bytes go to the client until the app closes."""
        request_id = request.message.request_id
        responses.take_buffered()
        request.upgraded = True
        _half_close_tunnel(request)
        while data := await connection.reader.read(_CHUNK):
            await request.writable.wait()
            await self._send(to_agent.HttpResponseData(request_id, data))
        await self._send(to_agent.HttpResponseEnd(request_id))
        connection.writer.close()

    # --- the pool ------------------------------------------------------------------------------------------

    def _spawn(self, coro: Awaitable[None]) -> None:
        task = asyncio.ensure_future(coro)
        self._handing.add(task)
        task.add_done_callback(self._handing.discard)

    async def _give(self, port: int, address: SocketAddress, hand_over: HandOver) -> None:
        try:
            sock = await _connect(address)
        except OSError as error:
            self._log(f"could not open a connection to the app at {address} for the agent: {error}")
            return
        with sock:  # the agent holds its own duplicate once it is sent
            hand_over(port, sock)

    async def _connection(self, address: SocketAddress) -> _AppConnection:
        idle = self._idle.get(address, [])
        while idle:
            connection = idle.pop()
            if connection.usable:
                connection.reused = True
                return connection
            connection.writer.close()
        sock = await _connect(address)
        try:
            reader, writer = await open_stream(sock, _CHUNK)
        except BaseException:
            sock.close()
            raise
        return _AppConnection(reader, writer)

    def _put_idle(self, address: SocketAddress, connection: _AppConnection) -> None:
        idle = self._idle.setdefault(address, [])
        if len(idle) >= IDLE_PER_APP:
            connection.writer.close()
            return
        idle.append(connection)


async def _feed_h2(request: _Request) -> None:
    """Send the body bytes waiting for the request's h2 link, in order."""
    while request.h2 is not None and request.pending:
        await request.h2.body(request.message.request_id, request.pending.pop(0))


async def _connect(address: SocketAddress) -> socket.socket:
    """A new non-blocking connection to the app listening at ``address``."""
    family = socket.AF_INET6 if ":" in address.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setblocking(False)
        no_delay(sock)  # also for the agent, when the connection is handed to it
        if family == socket.AF_INET and address.host.startswith("127."):
            with contextlib.suppress(OSError):  # without it the app's accept merely asks the session
                sock.bind((SHARED_SOURCE, 0))
        await asyncio.get_running_loop().sock_connect(sock, (address.host, address.port))
    except BaseException:
        sock.close()
        raise
    return sock


def _half_close_tunnel(request: _Request) -> None:
    """After an upgrade, the agent's second end is the client's half-close: pass it on to the app."""
    connection = request.connection
    if not request.upgraded or request.ends < 2 or connection is None:
        return
    writer = connection.writer
    if writer.can_write_eof() and not writer.is_closing():
        writer.write_eof()


def apply_http_filter(state: SessionState, config: HttpFilterConfig | None) -> None:
    """Make the session subscribe its ports with ``config``'s filter (nothing to do without one)."""
    if config is None:
        return
    spec = spec_from_config(config)
    if spec == HttpFilterSpec():
        return  # only ports were set: there is nothing to filter by
    state.http_filter = spec
    state.http_ports = tuple(config.ports)
