"""Connections on HTTP-filtered ports: each request goes to the session whose filter matches it, or the pod.

A connection is first checked for HTTP: if it does not start with an HTTP/1.x request line (or sends nothing
within ``DETECT_TIMEOUT``) it is tunnelled to the pod's app byte for byte. Otherwise requests are handled one
after the other (pipelined ones wait in the reader), which keeps responses in the client's order:

- no filter matches: the request's raw bytes go to the pod's app over one bypass connection kept for the
  client connection, and the response's raw bytes come back;
- a stealing session's filter matches: the request travels to that session (``HttpRequestStart``, body,
  end) and its local app's response comes back as ``HttpResponseData``. Until the first response byte the
  request is kept (up to ``REPLAY_LIMIT``), so a session or app that is gone sends it to the pod instead;
- the same, for a session on this machine that handed the agent connections to its local app
  (``app_connections``): a request that arrived whole is written to such a connection and its response
  relayed like the pod's, so neither crosses the websocket. A connection the app closed meanwhile sends the
  request the websocket way instead;
- a ``101 Switching Protocols`` makes the rest of the connection a tunnel to whoever answered it;
- bytes that are not HTTP/1.x the reader can frame (a bad request line, an oversized head) end the HTTP
  reading: the connection's remaining bytes go to the pod's app unchanged, which answers as it would.

HTTP framing lives in ``pymirrord.http1`` and the decision in ``http_routing``; this module only moves bytes.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import socket
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from pymirrord.agent.app_connections import AppConnections
from pymirrord.agent.due import Due
from pymirrord.agent.http_routing import route_request
from pymirrord.agent.served_notes import ServedNotes
from pymirrord.agent.subscriptions import Subscriptions
from pymirrord.flow import FlowControl, Verdict
from pymirrord.http1 import (
    NEED_DATA,
    Body,
    Detected,
    End,
    Event,
    FramingError,
    RequestHead,
    RequestReader,
    ResponseHead,
    ResponseReader,
    detect,
)
from pymirrord.protocol import agent_to_session as to_session
from pymirrord.protocol.types import Mode, SocketAddress
from pymirrord.streams import backlog, drained, open_stream

log = logging.getLogger(__name__)

DETECT_TIMEOUT = 1.0
"""Seconds a new connection on a filtered port may stay silent before it is passed through as not HTTP."""
REPLAY_LIMIT = 1024 * 1024
"""Bytes of a stolen request kept until its response starts, to send it to the pod if the session fails."""
WRITE_HIGH_WATER = 1024 * 1024
RESPONSE_LOW_WATER = 256 * 1024
"""A session held back by a slow client (``HttpResponseFlow``) sends again once this little waits for it."""
NOTE_DELAY = 0.02
"""Seconds the requests served for a session gather before they are told (``HttpRequestsServed``), so that
a busy spell's are told at once: the view that counts them shows them ten times a second anyway."""

ListenEnd = Callable[[Callable[[int], None]], None]
"""Registers what hears a counted tunnel's far end: the length the far side sent in all."""
Connect = Callable[[SocketAddress], Awaitable[tuple[asyncio.StreamReader, asyncio.StreamWriter]]]
"""Opens a connection to the pod's app (Nagle off, as on every socket the agent relays on: ``nodelay``)."""


class Sink(Protocol):
    """What this module needs of a session's outbox (``server.Outbox``)."""

    def put(self, frame: bytes) -> None: ...

    def offer(self, frame: bytes) -> bool: ...

    async def wait_writable(self) -> None: ...


def _encode(message: to_session.AgentToSession) -> bytes:
    return to_session.CODEC.encode(message)


def offer_copy(sinks: Mapping[int, Sink], copies: dict[int, int], data: bytes | None) -> None:
    """A body chunk (None: the end) for every copy of a request (session -> its copy's request id); a
    session gone, or one that lags too far behind, is dropped from ``copies`` and gets no more of it."""
    if not copies:
        return  # most requests: no mirroring session matched
    for session, request_id in list(copies.items()):
        sink = sinks.get(session)
        if sink is None:
            del copies[session]
            continue
        message: to_session.AgentToSession = (
            to_session.HttpRequestEnd(request_id)
            if data is None
            else to_session.HttpRequestBody(request_id, data)
        )
        if not sink.offer(_encode(message)):
            log.warning("session %d lags too far behind; dropping its copy of a request", session)
            sink.put(_encode(to_session.HttpRequestAbort(request_id, "the session fell behind")))
            del copies[session]


@dataclass
class _Stolen:
    """A request a session serves: the agent's side of its response."""

    session: int
    request_id: int
    client: asyncio.StreamWriter
    method: str
    responses: ResponseReader = field(default_factory=ResponseReader)
    written: int = 0
    head_seen: asyncio.Event = field(default_factory=asyncio.Event)
    done: asyncio.Future[str | None] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )
    readable: asyncio.Event = field(default_factory=asyncio.Event)
    """Clear while the session asked to stop reading the request's body (its app reads slowly)."""
    waiter: asyncio.Task[None] | None = None
    """Waits for the client to take the response while the session holds it back."""

    def __post_init__(self) -> None:
        self.responses.expect(self.method)
        self.readable.set()

    def finish(self, failure: str | None) -> None:
        if not self.done.done():
            self.done.set_result(failure)
        self.head_seen.set()
        self.readable.set()
        if self.waiter is not None and self.waiter is not asyncio.current_task():
            self.waiter.cancel()

    async def data(self, data: bytes) -> None:
        if self.done.done() or self.client.is_closing():
            return
        self.written += len(data)
        self.client.write(data)
        if not self.head_seen.is_set():
            self.responses.feed(data)
            try:
                while (event := self.responses.next_event()) is not NEED_DATA:
                    if isinstance(event, ResponseHead) and not event.interim:
                        self.head_seen.set()
                        break
            except FramingError as error:
                log.info("session %d answered request %d with %s", self.session, self.request_id, error)
                self.head_seen.set()


@dataclass
class _AppStream:
    """A connection to a session's local app, handed over by the session."""

    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    responses: ResponseReader = field(default_factory=ResponseReader)

    def usable(self) -> bool:
        return not self.writer.is_closing() and not self.reader.at_eof() and not self.responses.buffered


class StolenResponse(Protocol):
    """What a session's answer to a stolen request reaches: an HTTP/1 exchange here, or an h2c stream."""

    session: int

    async def data(self, data: bytes) -> None: ...

    def finish(self, failure: str | None) -> None: ...


class HttpIncoming:
    """Serves connections on HTTP-filtered ports; sessions' responses arrive through ``response_*``."""

    def __init__(
        self, subscriptions: Subscriptions, sinks: dict[int, Sink], connect: Connect, read_chunk: int
    ) -> None:
        self._subscriptions = subscriptions
        self._sinks = sinks
        self._connect = connect
        self._read_chunk = read_chunk
        self._ids = itertools.count(1)
        self._stolen: dict[int, StolenResponse] = {}
        self._response_flow = FlowControl(WRITE_HIGH_WATER, RESPONSE_LOW_WATER)
        self._apps: AppConnections[_AppStream] = AppConnections()
        self._adopting: set[asyncio.Task[None]] = set()
        self.has_channel: Callable[[int], bool] = lambda session: False
        """Whether a session has a handover channel (so it may be asked for app connections)."""
        self._tunneling: set[int] = set()
        """Sessions that sent a tunnel to their app (``HttpAppTunnel``): they may be asked for more."""
        self._noting: set[int] = set()
        """Sessions that want to hear of the requests written to their app connections."""
        self._served = ServedNotes()
        """Requests served for those sessions, told every ``NOTE_DELAY``."""
        self._notes_due = Due(NOTE_DELAY, self._send_notes)

    # --- sessions ------------------------------------------------------------------------------------------

    async def response_data(self, session: int, request_id: int, data: bytes) -> None:
        request = self._stolen.get(request_id)
        if request is None or request.session != session:
            return
        await request.data(data)
        if not isinstance(request, _Stolen) or request.client.is_closing():
            return
        # Never waits for the client: past the high-water mark the session holds this response instead.
        if self._response_flow.grew(request_id, backlog(request.client)) is Verdict.PAUSE:
            self._tell(session, to_session.HttpResponseFlow(request_id, True))
            request.waiter = asyncio.get_running_loop().create_task(self._resume_response(request))

    async def _resume_response(self, request: _Stolen) -> None:
        request_id = request.request_id
        try:
            await drained(request.client, RESPONSE_LOW_WATER)
            verdict = self._response_flow.shrank(request_id, backlog(request.client))
        except OSError:
            # The client is gone: the session may finish its response, which goes nowhere.
            verdict = Verdict.RESUME if self._response_flow.paused(request_id) else None
            self._response_flow.forget(request_id)
        if verdict is Verdict.RESUME:
            self._tell(request.session, to_session.HttpResponseFlow(request_id, False))

    def request_flow(self, session: int, request_id: int, paused: bool) -> None:
        """The session's app reads the request's body slowly (``paused``), or caught up again."""
        request = self._stolen.get(request_id)
        if isinstance(request, _Stolen) and request.session == session and not request.done.done():
            if paused:
                request.readable.clear()
            else:
                request.readable.set()

    def _tell(self, session: int, message: to_session.AgentToSession) -> None:
        sink = self._sinks.get(session)
        if sink is not None:
            sink.put(_encode(message))

    def response_end(self, session: int, request_id: int, failure: str | None = None) -> None:
        request = self._stolen.get(request_id)
        if request is not None and request.session == session:
            request.finish(failure)

    def session_gone(self, session: int) -> None:
        self._tunneling.discard(session)
        self._noting.discard(session)
        self._served.forget(session)
        for request in list(self._stolen.values()):
            if request.session == session:
                request.finish("the session left")
        for app in self._apps.forget_session(session):
            app.writer.close()

    def port_gone(self, session: int, port: int) -> None:
        """The session unsubscribed ``port``: its app connections for it are closed."""
        for app in self._apps.forget_port(session, port):
            app.writer.close()

    def _gather_served(self, session: int, request: to_session.ServedRequest) -> None:
        self._served.add(session, request)
        self._notes_due.soon()

    def _send_notes(self) -> None:
        for session, message in self._served.take().items():
            self._tell(session, message)

    def stop_notes(self) -> None:
        """The agent is stopping: the sessions are gone, and no note is due any more."""
        self._notes_due.cancel()

    # --- connections to sessions' local apps ----------------------------------------------------------------

    def can_hand_over(self, session: int) -> bool:
        """Whether ``session`` may be asked for connections to its app (``HttpConnectionWanted``)."""
        return session in self._tunneling or self.has_channel(session)

    def app_tunnel(
        self,
        session: int,
        port: int,
        sock: socket.socket,
        listen_end: ListenEnd | None = None,
        *,
        notify: bool = False,
    ) -> None:
        """A session's tunnel that leads to its app behind ``port`` (``HttpAppTunnel``; this takes ``sock``):
        used as a connection the session handed over, and from now on that session is asked for more.
        ``listen_end``: the tunnel is counted, and the app's end of stream comes to what it is given.
        ``notify``: the session hears of each request written to its app connections."""
        subscribed = any(sub.session == session for sub in self._subscriptions.route(port).http)
        if session not in self._sinks or not subscribed:
            sock.close()  # the session left, or unsubscribed the port while its tunnel was on the way
            return
        self._tunneling.add(session)
        if notify:
            self._noting.add(session)
        self.app_socket(session, port, sock, unasked=True, listen_end=listen_end)

    def app_socket(
        self,
        session: int,
        port: int,
        sock: socket.socket,
        *,
        unasked: bool = False,
        listen_end: ListenEnd | None = None,
    ) -> None:
        """A session handed over a connection to its app behind ``port`` (this takes ``sock``)."""
        task = asyncio.get_running_loop().create_task(self._adopt(session, port, sock, unasked, listen_end))
        self._adopting.add(task)
        task.add_done_callback(self._adopting.discard)

    async def _adopt(
        self, session: int, port: int, sock: socket.socket, unasked: bool, listen_end: ListenEnd | None
    ) -> None:
        try:
            sock.setblocking(False)
            reader, writer = await open_stream(sock, self._read_chunk)
        except OSError as error:
            log.info("a connection to session %d's app could not be used: %s", session, error)
            sock.close()
            return
        if listen_end is not None:
            listen_end(reader.end_after)
        if not self._apps.arrived((session, port), _AppStream(reader, writer), unasked=unasked):
            writer.close()

    def _take_app(self, session: int, port: int, sink: Sink) -> _AppStream | None:
        """An idle connection to the session's app, if it has one here; else the session is asked for one."""
        if not self.can_hand_over(session):
            return None
        now = asyncio.get_running_loop().time()
        app, stale, ask = self._apps.take((session, port), now, _AppStream.usable)
        for connection in stale:
            connection.writer.close()
        if ask:
            sink.put(_encode(to_session.HttpConnectionWanted(port)))
        return app

    def _put_app(self, session: int, port: int, app: _AppStream) -> None:
        if not self._apps.put((session, port), app):
            app.writer.close()

    # --- connections ---------------------------------------------------------------------------------------

    async def serve(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        client: SocketAddress,
        destination: SocketAddress,
    ) -> None:
        prefix, kind = await self._detect(reader)
        if kind is Detected.H2_PRIOR_KNOWLEDGE:
            from pymirrord.agent.h2_incoming import serve_h2

            await serve_h2(self, reader, writer, client, destination, prefix)
            return
        if kind is not Detected.HTTP1:
            log.debug("connection from %s to %s is %s: passed through", client, destination, kind.value)
            await _Connection(self, reader, writer, client, destination).tunnel_to_pod(prefix)
            return
        connection = _Connection(self, reader, writer, client, destination)
        connection.requests.feed(prefix)
        await connection.run()

    async def _detect(self, reader: asyncio.StreamReader) -> tuple[bytes, Detected]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + DETECT_TIMEOUT
        prefix = b""
        while (kind := detect(prefix)) is Detected.UNDECIDED:
            remaining = deadline - loop.time()
            if remaining <= 0:
                return prefix, Detected.NOT_HTTP
            try:
                data = await asyncio.wait_for(reader.read(self._read_chunk), remaining)
            except asyncio.TimeoutError:
                return prefix, Detected.NOT_HTTP
            if not data:
                return prefix, Detected.NOT_HTTP
            prefix += data
        return prefix, kind


class _Connection:
    """One client connection on a filtered port."""

    def __init__(
        self,
        owner: HttpIncoming,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        client: SocketAddress,
        destination: SocketAddress,
    ) -> None:
        self.owner = owner
        self.reader = reader
        self.writer = writer
        self.client = client
        self.destination = destination
        self.requests = RequestReader()
        self.pod: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        self.pod_responses = ResponseReader()
        self.pod_requests = 0  # requests sent on the current pod connection

    # --- the request loop ----------------------------------------------------------------------------------

    async def run(self) -> None:
        try:
            while True:
                try:
                    event = await self._request_event()
                except FramingError as error:
                    log.info("connection from %s: %s; the rest goes to the pod as it is", self.client, error)
                    await self.tunnel_to_pod(b"")
                    return
                if event is None:
                    return  # the client closed between requests
                assert isinstance(event, RequestHead), event
                if not await self._exchange(event):
                    return
        finally:
            self._close_pod()

    async def _request_event(self) -> Event | None:
        while True:
            event = self.requests.next_event()
            if event is not NEED_DATA:
                return event
            if self.requests.at_eof:
                return None
            data = await self.reader.read(self.owner._read_chunk)
            if data:
                self.requests.feed(data)
            else:
                self.requests.feed_eof()

    def _buffered_body(self) -> tuple[list[bytes], bool]:
        """The request body's bytes already read (without waiting), and whether its end is among them.

        Most requests arrive whole in one read: they then travel on in one write, with no task to pump a
        body."""
        chunks: list[bytes] = []
        while (event := self.requests.next_event()) is not NEED_DATA:
            assert isinstance(event, Body | End), event
            if event.raw:
                chunks.append(event.raw)
            if isinstance(event, End):
                return chunks, True
        return chunks, False

    async def _exchange(self, head: RequestHead) -> bool:
        """Serve one request; False when the connection is over (closed, upgraded, not keep-alive)."""
        subscribers = self.owner._subscriptions.route(self.destination.port).http
        route = route_request(subscribers, head)
        mirrors = self._start_copies(head, route.mirrors)
        sink = self.owner._sinks.get(route.stealer) if route.stealer is not None else None
        if route.stealer is not None and sink is not None:
            log.debug(
                "request %s %s from %s matched %s", head.method, head.target, self.client, route.matched
            )
            app = None
            if not head.upgrade and self.requests.message_buffered:
                app = self.owner._take_app(route.stealer, self.destination.port, sink)
            if app is not None:
                keep = await self._to_app(
                    route.stealer, sink, app, head, matched=route.matched, copies=mirrors
                )
            else:
                keep = await self._to_session(route.stealer, sink, head, route.matched, mirrors)
        else:
            keep = await self._to_pod(head, b"", mirrors)
        return keep and head.keep_alive

    # --- copies for mirroring sessions ---------------------------------------------------------------------

    def _start_copies(self, head: RequestHead, mirrors: tuple[tuple[int, str], ...]) -> dict[int, int]:
        """Send the head to each matching mirror; session -> request id of its copy."""
        copies: dict[int, int] = {}
        for session, matched in mirrors:
            sink = self.owner._sinks.get(session)
            if sink is None:
                continue
            request_id = next(self.owner._ids)
            message = self._start_message(request_id, Mode.MIRROR, head, matched)
            if sink.offer(_encode(message)):
                copies[session] = request_id
        return copies

    def _copy(self, copies: dict[int, int], data: bytes | None) -> None:
        offer_copy(self.owner._sinks, copies, data)

    def _start_message(
        self, request_id: int, mode: Mode, head: RequestHead, matched: str
    ) -> to_session.HttpRequestStart:
        return to_session.HttpRequestStart(
            request_id,
            self.destination.port,
            mode,
            self.client,
            self.destination,
            head.method,
            head.target,
            matched,
            head.raw,
        )

    # --- the pod's app -------------------------------------------------------------------------------------

    async def _pod(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self.pod is not None and (self.pod[0].at_eof() or self.pod[1].is_closing()):
            self._close_pod()
        if self.pod is None:
            self.pod = await self.owner._connect(self.destination)
            self.pod_responses = ResponseReader()
            self.pod_requests = 0
        return self.pod

    def _close_pod(self) -> None:
        if self.pod is not None:
            self.pod[1].close()
            self.pod = None

    async def _to_pod(
        self, head: RequestHead, replay: bytes, copies: dict[int, int], *, body_read: bool = False
    ) -> bool:
        """Send the request to the pod's app (``replay``: its body so far, read already, and all of it with
        ``body_read``); relay the answer."""
        try:
            pod_reader, pod_writer = await self._pod()
        except (OSError, asyncio.TimeoutError) as error:
            log.info("cannot reach the pod's app at %s: %s", self.destination, error)
            return False
        self.pod_requests += 1
        reused = self.pod_requests > 1
        self.pod_responses.expect(head.method)
        chunks, complete = ([], True) if body_read else self._buffered_body()
        request = b"".join((head.raw, replay, *chunks))
        pod_writer.write(request)
        for chunk in chunks:
            self._copy(copies, chunk)
        if complete:
            self._copy(copies, None)
            try:
                keep = await self._relay_response(pod_reader, pod_writer, self.pod_responses)
                if keep is None and reused:
                    # The pod's app closed this kept-alive connection as the request went out: once more,
                    # on a new connection (the whole request is at hand).
                    self._close_pod()
                    pod_reader, pod_writer = await self._pod()
                    self.pod_responses.expect(head.method)
                    pod_writer.write(request)
                    keep = await self._relay_response(pod_reader, pod_writer, self.pod_responses)
                if keep is None:
                    raise ConnectionError("the pod's app closed the connection without answering")
            except (ConnectionError, OSError, FramingError, asyncio.TimeoutError) as error:
                log.info("connection from %s to the pod's app broke: %s", self.client, error)
                return False
            if not self.pod_responses.reusable:
                self._close_pod()
            return keep

        async def forward(data: bytes) -> None:
            pod_writer.write(data)
            await pod_writer.drain()

        sending = asyncio.ensure_future(self._forward_body(forward, copies, None))
        try:
            keep = await self._relay_response(pod_reader, pod_writer, self.pod_responses)
            if keep is None:
                raise ConnectionError("the pod's app closed the connection without answering")
            await sending
        except (ConnectionError, OSError, FramingError) as error:
            log.info("connection from %s to the pod's app broke: %s", self.client, error)
            return False
        finally:
            sending.cancel()
            await asyncio.gather(sending, return_exceptions=True)
        if not self.pod_responses.reusable:
            self._close_pod()
        return keep

    async def _relay_response(
        self, reader: asyncio.StreamReader, upstream: asyncio.StreamWriter, responses: ResponseReader
    ) -> bool | None:
        """Relay one response (after a ``101``: the rest of the connection, both ways) to the client.

        Returns whether the client's connection goes on, or None when the upstream closed before sending a
        byte of it (so nothing reached the client and the request may be sent elsewhere)."""
        writer = self.writer
        started = False
        ended = False
        # The events of one read leave in one write (one segment for a small response, one syscall).
        out: list[bytes] = []
        while True:
            event = responses.next_event()
            if event is NEED_DATA:
                if ended:
                    raise ConnectionError("the app closed the connection inside its response")
                if out:
                    writer.write(b"".join(out))
                    out.clear()
                    await writer.drain()
                data = await reader.read(self.owner._read_chunk)
                if data:
                    started = True
                    responses.feed(data)
                elif not started:
                    return None
                else:
                    responses.feed_eof()
                    ended = True
                continue
            assert not isinstance(event, RequestHead)
            out.append(event.raw)
            if isinstance(event, ResponseHead) and responses.upgraded:
                writer.write(b"".join(out))
                await self._tunnel(responses.take_buffered(), reader, upstream)
                return False
            if isinstance(event, End):
                writer.write(b"".join(out))
                await writer.drain()
                return responses.reusable

    # --- a session's local app -----------------------------------------------------------------------------

    async def _to_app(
        self,
        session: int,
        sink: Sink,
        app: _AppStream,
        head: RequestHead,
        *,
        matched: str,
        copies: dict[int, int],
    ) -> bool:
        """Serve a request that arrived whole on a connection to the session's app; the answer comes back
        the way the pod's does."""
        chunks, complete = self._buffered_body()
        assert complete, "only a request whose body is all here comes this way"
        for chunk in chunks:
            self._copy(copies, chunk)
        self._copy(copies, None)
        app.responses.expect(head.method)
        app.writer.write(b"".join((head.raw, *chunks)))
        try:
            keep = await self._relay_response(app.reader, app.writer, app.responses)
        except (ConnectionError, OSError, FramingError) as error:
            app.writer.close()
            log.info("request from %s failed in session %d's app: %s", self.client, session, error)
            self._note_served(session, head, matched)
            return False
        except asyncio.CancelledError:
            app.writer.close()  # the exchange stopped half way: the connection's state is unknown
            raise
        if keep is None:
            # The app closed this idle connection meanwhile: the session opens a fresh one (and if the app
            # is gone, the pod answers).
            app.writer.close()
            return await self._to_session(session, sink, head, matched, {}, body=chunks)
        self._note_served(session, head, matched)
        if app.responses.reusable:
            self.owner._put_app(session, self.destination.port, app)
        else:
            app.writer.close()
        return keep

    def _note_served(self, session: int, head: RequestHead, matched: str) -> None:
        """Tells a session that counts its requests of one its app was sent here (not for a request that
        went on to the session itself: it sees that one as ``HttpRequestStart``)."""
        owner = self.owner
        if session in owner._noting:
            served = to_session.ServedRequest(
                next(owner._ids), self.destination.port, self.client, head.method, head.target, matched
            )
            owner._gather_served(session, served)

    async def _to_session(
        self,
        session: int,
        sink: Sink,
        head: RequestHead,
        matched: str,
        copies: dict[int, int],
        *,
        body: list[bytes] | None = None,
    ) -> bool:
        """Serve a request through the session (``body``: the whole body, if it was read already)."""
        owner = self.owner
        request_id = next(owner._ids)
        request = _Stolen(session, request_id, self.writer, head.method)
        owner._stolen[request_id] = request
        replay: bytearray | None = bytearray()
        sink.put(_encode(self._start_message(request_id, Mode.STEAL, head, matched)))
        complete = False
        if not head.upgrade:  # an upgrade's end waits for the local app's answer in _forward_body
            chunks, complete = (body, True) if body is not None else self._buffered_body()
            for chunk in chunks:
                if replay is not None:
                    replay += chunk
                    if len(replay) > REPLAY_LIMIT:
                        replay = None
                sink.put(_encode(to_session.HttpRequestBody(request_id, chunk)))
                self._copy(copies, chunk)
            if complete:
                self._copy(copies, None)
                sink.put(_encode(to_session.HttpRequestEnd(request_id)))

        async def forward(data: bytes) -> None:
            nonlocal replay
            if request.done.done():
                return
            if replay is not None and request.written == 0:
                replay += data
                if len(replay) > REPLAY_LIMIT:
                    replay = None
            else:
                replay = None
            sink.put(_encode(to_session.HttpRequestBody(request_id, data)))
            await sink.wait_writable()
            await request.readable.wait()

        # A request that arrived whole needs no task reading its body alongside the response.
        sending = None if complete else asyncio.ensure_future(self._forward_body(forward, copies, request))
        try:
            failure = await request.done
            if failure is None:
                if sending is not None:
                    await sending
                if request.responses.upgraded:
                    return False  # the tunnel ran inside _forward_body and is over
                return request.responses.reusable
            if sending is not None:
                await sending  # the body is still read, so the request can be replayed whole
            if request.written or replay is None:
                log.info(
                    "request %d from %s failed in session %d: %s", request_id, self.client, session, failure
                )
                return False
            log.info("request %d from %s goes to the pod instead: %s", request_id, self.client, failure)
            return await self._to_pod(head, bytes(replay), {}, body_read=True)
        except (ConnectionError, OSError, FramingError) as error:
            sink.put(
                _encode(to_session.HttpRequestAbort(request_id, f"the client's connection failed: {error}"))
            )
            return False
        except asyncio.CancelledError:
            sink.put(_encode(to_session.HttpRequestAbort(request_id, "the agent is stopping")))
            raise
        finally:
            if sending is not None:
                sending.cancel()
                await asyncio.gather(sending, return_exceptions=True)
            owner._stolen.pop(request_id, None)
            owner._response_flow.forget(request_id)
            if request.waiter is not None:
                request.waiter.cancel()

    async def _forward_body(
        self,
        forward: Callable[[bytes], Awaitable[None]],
        copies: dict[int, int],
        stolen: _Stolen | None,
    ) -> None:
        """Read the request's body off the client and forward it; for a session, its end too, and after a
        ``101`` from the local app the rest of the connection."""
        while True:
            event = await self._request_event()
            if event is None:
                raise ConnectionError("the client closed the connection inside a request")
            assert isinstance(event, Body | End), event
            if event.raw:
                await forward(event.raw)
                self._copy(copies, event.raw)
            if isinstance(event, End):
                break
        self._copy(copies, None)
        if stolen is None:
            return
        sink = self.owner._sinks.get(stolen.session)
        if sink is None:
            return
        sink.put(_encode(to_session.HttpRequestEnd(stolen.request_id)))
        await stolen.head_seen.wait()
        if not stolen.responses.upgraded or stolen.done.done():
            return
        # The local app switched protocols: the client's further bytes are its.
        rest = self.requests.take_buffered()
        if rest:
            await forward(rest)
        while data := await self.reader.read(self.owner._read_chunk):
            await forward(data)
        if not stolen.done.done():
            sink.put(_encode(to_session.HttpRequestEnd(stolen.request_id)))
        await asyncio.shield(stolen.done)

    # --- tunnels -------------------------------------------------------------------------------------------

    async def tunnel_to_pod(self, prefix: bytes) -> None:
        """The connection is not HTTP the agent can read: the pod's app gets it as it is."""
        try:
            pod_reader, pod_writer = await self._pod()
        except (OSError, asyncio.TimeoutError) as error:
            log.info(
                "cannot pass a connection from %s through to %s: %s", self.client, self.destination, error
            )
            return
        try:
            await self._tunnel(self.pod_responses.take_buffered(), pod_reader, pod_writer, prefix)
        finally:
            self._close_pod()

    async def _tunnel(
        self,
        to_client: bytes,
        pod_reader: asyncio.StreamReader,
        pod_writer: asyncio.StreamWriter,
        prefix: bytes = b"",
    ) -> None:
        """Pipe both ways until both sides are done; buffered bytes of either side go first."""
        pending = prefix + self.requests.take_buffered()
        if pending:
            pod_writer.write(pending)
        if to_client:
            self.writer.write(to_client)
        up = asyncio.ensure_future(_pipe(self.reader, pod_writer, self.owner._read_chunk))
        down = asyncio.ensure_future(_pipe(pod_reader, self.writer, self.owner._read_chunk))
        try:
            await asyncio.wait((up, down), return_when=asyncio.FIRST_EXCEPTION)
            if not down.done():
                await down  # the client half-closed: the pod's app may still answer
        except (ConnectionError, OSError):
            pass
        finally:
            for task in (up, down):
                task.cancel()
            await asyncio.gather(up, down, return_exceptions=True)


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, chunk: int) -> None:
    while data := await reader.read(chunk):
        writer.write(data)
        await writer.drain()
    if writer.can_write_eof() and not writer.is_closing():
        writer.write_eof()
