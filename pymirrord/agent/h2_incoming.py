"""The asyncio shell around ``h2_router.H2Router``: an h2c connection on a filtered port, served per stream.

It opens one h2c connection to the pod's app per client connection, pumps bytes between the two sockets and
the router, and carries stolen streams to their sessions as HTTP/1.1 requests (the same messages as HTTP/1
traffic, so the session and its local app need nothing new). Copies of streams for mirroring sessions travel
the same way, offered rather than queued: a session that lags behind loses its copy (``HttpRequestAbort``)
instead of slowing the client. Decisions and framing live in the router.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field

from pymirrord.agent.h2_router import (
    H2Router,
    MirrorAbort,
    MirrorEnd,
    MirrorEvent,
    MirrorStart,
    StolenAbort,
    StolenBody,
    StolenEnd,
    StolenStart,
    StreamRoute,
)
from pymirrord.agent.http_incoming import HttpIncoming, Sink, _encode, offer_copy
from pymirrord.agent.http_routing import route_view
from pymirrord.http_filter import RequestHead as FilterRequest
from pymirrord.protocol import agent_to_session as to_session
from pymirrord.protocol.types import Mode, SocketAddress

log = logging.getLogger(__name__)

CLIENT_PENDING_LIMIT = 4 * 1024 * 1024
"""Bytes of stolen responses held for a client's flow-control window before sessions are made to wait."""


@dataclass
class _Taken:
    """A stream a session serves; ``HttpIncoming`` hands the session's answers to it."""

    shell: _H2Connection
    session: int
    request_id: int
    stream: int
    sink: Sink
    method: str
    target: str
    matched: str

    async def data(self, data: bytes) -> None:
        self.shell.router.response_data(self.stream, data)
        await self.shell.flush_client()

    def finish(self, failure: str | None) -> None:
        shell = self.shell
        if shell.router.response_end(self.stream, failure):
            log.info("h2 stream %d from %s goes to the pod instead: %s", self.stream, shell.client, failure)
            shell.router.reroute(self.stream)
        elif failure is not None:
            log.info(
                "h2 stream %d from %s failed in session %d: %s",
                self.stream,
                shell.client,
                self.session,
                failure,
            )
        shell.forget(self.stream)
        shell.write_out()


@dataclass
class _Copies:
    """A stream's copies: the mirroring sessions whose filter matched it, and the request id of each copy
    that started (a session missing here gets no more of it)."""

    method: str
    target: str
    wanted: tuple[tuple[int, str], ...]
    sent: dict[int, int] = field(default_factory=dict)  # session -> request id


class _H2Connection:
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
        self.router = H2Router(self._decide)
        self.pod: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        self.taken: dict[int, _Taken] = {}  # stream -> its session's request
        self.copies: dict[int, _Copies] = {}  # stream -> its copies for mirroring sessions
        self.window = asyncio.Event()
        """Set while the client's flow control holds back little enough of the stolen responses."""
        self.window.set()

    def _decide(self, stream: int, request: FilterRequest) -> StreamRoute:
        """Called by the router for each stream's headers; a session that takes it, and the sessions that
        get a copy, are noted by stream."""
        subscribers = self.owner._subscriptions.route(self.destination.port).http
        route = route_view(subscribers, request)
        mirrors = tuple(mirror for mirror in route.mirrors if mirror[0] in self.owner._sinks)
        if mirrors:
            self.copies[stream] = _Copies(request.method, request.target, mirrors)
        if route.stealer is None:
            return StreamRoute(mirror=bool(mirrors))
        sink = self.owner._sinks.get(route.stealer)
        if sink is None:
            return StreamRoute(mirror=bool(mirrors))
        taken = _Taken(
            self,
            route.stealer,
            next(self.owner._ids),
            stream,
            sink,
            request.method,
            request.target,
            route.matched,
        )
        self.taken[stream] = taken
        self.owner._stolen[taken.request_id] = taken
        return StreamRoute(steal=True, mirror=bool(mirrors))

    # --- pumping --------------------------------------------------------------------------------------------

    def write_out(self) -> None:
        """Hand the router's output to the sockets and its session events to the sessions."""
        router = self.router
        for event in router.events:
            if isinstance(event, MirrorEvent):
                self._copy(event)
                continue
            found = self.taken.get(event.stream_id)
            if found is None:
                continue
            if isinstance(event, StolenStart):
                taken = found
                taken.sink.put(
                    _encode(
                        to_session.HttpRequestStart(
                            taken.request_id,
                            self.destination.port,
                            Mode.STEAL,
                            self.client,
                            self.destination,
                            taken.method,
                            taken.target,
                            taken.matched,
                            event.head,
                            http2=True,
                        )
                    )
                )
            elif isinstance(event, StolenBody):
                found.sink.put(_encode(to_session.HttpRequestBody(found.request_id, event.data)))
            elif isinstance(event, StolenEnd):
                found.sink.put(_encode(to_session.HttpRequestEnd(found.request_id)))
            elif isinstance(event, StolenAbort):
                found.sink.put(_encode(to_session.HttpRequestAbort(found.request_id, "the client reset it")))
                self.forget(event.stream_id)
        router.events.clear()
        for stream in [stream for stream in self.taken if not router.is_stolen(stream)]:
            self.forget(stream)
        if router.pending_to_client() <= CLIENT_PENDING_LIMIT or router.closed or self.writer.is_closing():
            self.window.set()
        else:
            self.window.clear()
        to_client = router.client_bytes()
        if to_client and not self.writer.is_closing():
            self.writer.write(to_client)
        to_pod = router.pod_bytes()
        if to_pod and self.pod is not None and not self.pod[1].is_closing():
            self.pod[1].write(to_pod)

    def _copy(self, event: MirrorEvent) -> None:
        """Offer one step of a stream's copy to each of its sessions; a session that lags loses its copy."""
        stream = event.stream_id
        copies = self.copies.get(stream)
        if copies is None:
            return
        sinks = self.owner._sinks
        if isinstance(event, MirrorStart):
            for session, matched in copies.wanted:
                sink = sinks.get(session)
                if sink is None:
                    continue
                request_id = next(self.owner._ids)
                start = to_session.HttpRequestStart(
                    request_id,
                    self.destination.port,
                    Mode.MIRROR,
                    self.client,
                    self.destination,
                    copies.method,
                    copies.target,
                    matched,
                    event.head,
                    http2=True,
                )
                if sink.offer(_encode(start)):
                    copies.sent[session] = request_id
        elif isinstance(event, MirrorAbort):
            for session, request_id in copies.sent.items():
                sink = sinks.get(session)
                if sink is not None:
                    sink.put(_encode(to_session.HttpRequestAbort(request_id, "the request did not complete")))
            copies.sent.clear()
        else:
            offer_copy(sinks, copies.sent, None if isinstance(event, MirrorEnd) else event.data)
        if isinstance(event, MirrorEnd | MirrorAbort):
            del self.copies[stream]
        elif not copies.sent:
            # Nobody takes this copy any more: the router need not frame the rest of it.
            del self.copies[stream]
            self.router.drop_copy(stream)

    def forget(self, stream: int) -> None:
        taken = self.taken.pop(stream, None)
        if taken is not None:
            self.owner._stolen.pop(taken.request_id, None)

    async def flush_client(self) -> None:
        self.write_out()
        # Waiting here pauses the session's messages while the client reads slowly: memory stays bounded.
        with contextlib.suppress(ConnectionError, OSError):
            await self.writer.drain()
        # The client's WINDOW_UPDATE frames arrive through the reader task, which sets this again.
        await self.window.wait()

    async def run(self, prefix: bytes) -> None:
        try:
            self.pod = await self.owner._connect(self.destination)
        except (OSError, asyncio.TimeoutError) as error:
            log.info("cannot reach the pod's app at %s for an h2c connection: %s", self.destination, error)
            self.router.pod_lost()
        self.router.receive_client(prefix)
        self.write_out()
        down = asyncio.ensure_future(self._from_pod()) if self.pod is not None else None
        try:
            while not self.router.closed:
                data = await self.reader.read(self.owner._read_chunk)
                if not data:
                    break
                self.router.receive_client(data)
                self.write_out()
                if self.pod is not None:
                    with contextlib.suppress(ConnectionError, OSError):
                        await self.pod[1].drain()
                await self.writer.drain()
        except (ConnectionError, OSError) as error:
            log.info("h2c connection from %s broke: %s", self.client, error)
        finally:
            self.router.client_gone()
            self.write_out()
            self.window.set()
            if down is not None:
                down.cancel()
                await asyncio.gather(down, return_exceptions=True)
            if self.pod is not None:
                self.pod[1].close()
            for stream in list(self.taken):
                self.forget(stream)

    async def _from_pod(self) -> None:
        assert self.pod is not None
        reader = self.pod[0]
        try:
            while data := await reader.read(self.owner._read_chunk):
                self.router.receive_pod(data)
                self.write_out()
                await self.writer.drain()
        except (ConnectionError, OSError) as error:
            log.info("the pod's h2c connection for %s broke: %s", self.client, error)
        self.router.pod_lost()
        self.write_out()


async def serve_h2(  # noqa: PLR0917 (the connection's parts, as HttpIncoming.serve has them)
    owner: HttpIncoming,
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    client: SocketAddress,
    destination: SocketAddress,
    prefix: bytes,
) -> None:
    """Serve a connection that started with the HTTP/2 preface (``prefix``: its bytes read so far)."""
    await _H2Connection(owner, reader, writer, client, destination).run(prefix)
