"""Mirrored ports that are captured, not redirected: copies made from packet capture (the I/O shell).

The pod's app serves a captured port's clients directly; the agent only watches (``capture``), and each
connection ``tcp_capture`` puts back together is announced to the mirroring sessions as a redirected one
would be (``ConnectionTable``). Its bytes go down one idle tunnel per session when each has one, as
``MirrorRelay``'s copies do (``CopyOutlets``: a copy that falls ``COPY_LAG_LIMIT`` behind is dropped), or
else as ``ConnectionRead`` messages. While a tunnel is full, the capture waits for it, for a bounded while
(``CaptureHold``). A connection whose bytes the capture missed loses its copies, with a warning: a copy
with a hole in it would only mislead the app.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from pymirrord.agent.capture import Capture
from pymirrord.agent.capture_hold import HOLD_CHECK, CaptureHold
from pymirrord.agent.connections import ConnectionTable, Effect
from pymirrord.agent.due import Due
from pymirrord.agent.subscriptions import Route, Subscriptions
from pymirrord.agent.tcp_capture import CapturedConnections, ClientEnd, Closed, Data, Event, Key, Lost, Opened
from pymirrord.agent.tunnels import IdleTunnel, Tunnels
from pymirrord.flow import COPY_LAG_LIMIT
from pymirrord.tunnel.copies import Copy, CopyOutlets, Queue, copy_ender
from pymirrord.tunnel.mirror import COPY_DRAIN_TIMEOUT, DRAIN_TIMED_OUT
from pymirrord.tunnel.state import Direction

log = logging.getLogger(__name__)

TakeTunnels = Callable[[Route], "dict[int, IdleTunnel] | None"]
"""One idle tunnel of each mirroring session of a route, or None (some session has none)."""
CopyDropped = Callable[[int, int, "str | None"], None]
"""Hears that a session's copy of a connection ended early: ``(connection, session, reason)``; reason None:
its session closed it."""


@dataclass
class _Copies:
    """One captured connection's copies."""

    connection_id: int
    sessions: tuple[int, ...]
    tunnels: dict[int, IdleTunnel] = field(default_factory=dict)
    outlets: CopyOutlets | None = None
    """The tunnels' writers (None: the copies go as messages)."""
    drained: asyncio.Future[None] | None = None
    """Set once the connection ended and every copy passed its end on."""
    ending: asyncio.Task[None] | None = None
    """Waits for ``drained`` (for at most ``COPY_DRAIN_TIMEOUT``), then finishes the connection."""
    finished: bool = False


class CapturedMirror:
    """The captured ports' connections and their copies."""

    def __init__(
        self,
        subscriptions: Subscriptions,
        table: ConnectionTable,
        tunnels: Tunnels,
        take_tunnels: TakeTunnels,
        apply: Callable[[Iterable[Effect]], None],
        *,
        copy_dropped: CopyDropped,
    ) -> None:
        self._subscriptions = subscriptions
        self._table = table
        self._tunnels = tunnels
        self._take_tunnels = take_tunnels
        self._apply = apply
        self._copy_dropped = copy_dropped
        self._capture = Capture(CapturedConnections(self._wanted), self._handle)
        self._copies: dict[Key, _Copies] = {}
        self._watched: set[int] = set()
        self._endings: set[asyncio.Task[None]] = set()
        self._hold: CaptureHold[Copy] = CaptureHold()
        self._hold_check = Due(HOLD_CHECK, self._check_hold)

    @property
    def holding(self) -> bool:
        """Whether the capture waits for a full tunnel (``CaptureHold``)."""
        return self._capture.paused

    def watch(self, ports: Iterable[int]) -> None:
        """Captures ``ports`` from now on (the subscriptions' ``captured_ports``); the copies of a port no
        longer captured end (nobody mirrors it any more, or it is redirected now)."""
        ports = tuple(ports)
        if self._capture.capturing and set(ports) == self._watched:
            return  # a change of other ports' rules: the capture and its filter stay as they are
        self._watched = set(ports)
        for key in [key for key in self._copies if key[3] not in ports]:
            self._end(key, "the port is no longer mirrored", wait=False)
        try:
            self._capture.watch(ports)
        except OSError as error:
            log.warning("cannot capture the mirrored ports %s: %s", list(ports), error)

    def _wanted(self, port: int) -> bool:
        return self._subscriptions.route(port).mirror_only

    async def close(self) -> None:
        """Stops capturing; every connection's copies end."""
        self._capture.close()
        self._hold_check.cancel()
        for key in list(self._copies):
            self._end(key, "the agent is stopping", wait=False)
        for task in list(self._endings):
            task.cancel()
        if self._endings:
            await asyncio.gather(*self._endings, return_exceptions=True)

    # --- events ----------------------------------------------------------------------------------------

    def _handle(self, events: list[Event]) -> None:
        run: list[bytes | memoryview] = []  # a connection's consecutive data, sent on together
        run_key: Key | None = None
        for event in events:
            if isinstance(event, Data):
                if event.key != run_key:
                    self._data(run_key, run)
                    run, run_key = [], event.key
                run.append(event.data)
                continue
            self._data(run_key, run)
            run, run_key = [], None
            if isinstance(event, Opened):
                self._opened(event)
            elif isinstance(event, ClientEnd):
                self._client_end(event.key)
            elif isinstance(event, Lost):
                self._lost(event.key, event.reason)
            elif isinstance(event, Closed):
                self._end(event.key, event.reason, wait=True)
        self._data(run_key, run)

    def _opened(self, event: Opened) -> None:
        earlier = self._copies.pop(event.key, None)
        if earlier is not None:  # the same addresses' last connection, whose copies are still draining
            if earlier.outlets is not None:
                earlier.outlets.give_up("a new connection from the same address came before the app took it")
            self._finish(earlier, "the connection ended")
        route = self._subscriptions.route(event.local.port)
        if not route.mirror_only:
            self._capture.connections.forget(event.key)
            return
        tunnels = self._take_tunnels(route) or {}
        copy_tunnels = {session: tunnel.tunnel_id for session, tunnel in tunnels.items()}
        connection_id, effects = self._table.open(
            event.local.port, route, event.client, event.local, copy_tunnels=copy_tunnels
        )
        copies = _Copies(connection_id, route.mirrors, tunnels)
        self._copies[event.key] = copies
        self._apply(effects)
        log.debug(
            "connection %d from %s to %s captured, copies %s to sessions %s",
            connection_id,
            event.client,
            event.local,
            "through tunnels" if tunnels else "as messages",
            list(route.mirrors),
        )
        if not tunnels:
            return
        outlets = CopyOutlets(
            [self._copy(session, tunnel) for session, tunnel in tunnels.items()],
            functools.partial(self._copy_dropped, connection_id),
            functools.partial(self._changed, copies),
        )
        copies.outlets = outlets
        for session, tunnel in tunnels.items():
            if tunnel.counted:
                self._tunnels.listen_end(session, tunnel.tunnel_id, copy_ender(outlets, session))
        outlets.start()

    def _copy(self, session: int, tunnel: IdleTunnel) -> Copy:
        queue = Queue(Direction(COPY_LAG_LIMIT))
        return Copy(session, tunnel.sock, queue, self._tunnels.end_sender(session, tunnel))

    def _data(self, key: Key | None, run: list[bytes | memoryview]) -> None:
        """A connection's next bytes, in order (views the capture reuses once this returns)."""
        copies = self._copies.get(key) if run and key is not None else None
        if copies is None:
            return
        outlets = copies.outlets
        if outlets is None:
            self._apply(self._table.client_data(copies.connection_id, b"".join(run)))
            return
        count = sum(len(data) for data in run)
        for copy in outlets.copies:
            if copy.closed or not outlets.has_room(copy, count):
                continue
            try:
                copy.queue.push(copy.tunnel, run, count)
            except OSError:
                outlets.drop(copy, None)  # the session's end closed: it wants no more of this copy
                continue
            if copy.queue.chunks:
                # Tried again with every group of packets, not left to the writer callback: the app drains
                # the tunnel meanwhile, and each byte the tunnel takes now is one not copied into the queue.
                # Leaving it to the callback lost 10 of 10 copies of 1,000 MB uploads, against 2 of 10.
                outlets.flush(copy)  # watches for the tunnel to take the rest
                if copy.queue.chunks and self._hold.stall(copy, time.monotonic(), self._capture.queued()):
                    self._capture.pause()
                    self._hold_check.soon()

    def _client_end(self, key: Key) -> None:
        copies = self._copies.get(key)
        if copies is None:
            return
        if copies.outlets is None:
            self._apply(self._table.client_eof(copies.connection_id))
            return
        copies.outlets.end_of_stream()

    def _lost(self, key: Key, reason: str) -> None:
        copies = self._copies.get(key)
        if copies is None:
            return
        if copies.outlets is not None:
            copies.outlets.give_up(reason)  # each copy dropped is logged where it is heard (copy_dropped)
            return
        log.warning("connection %d: its copies are dropped: %s", copies.connection_id, reason)
        for session in copies.sessions:
            self._apply(self._table.drop_copy(session, copies.connection_id, reason))

    def _changed(self, copies: _Copies) -> None:
        if copies.outlets is None:
            return
        for copy in copies.outlets.copies:
            if copy.closed or not copy.queue.chunks:
                self._caught_up(copy)
        if copies.drained is None or copies.drained.done():
            return
        if copies.outlets.over:
            copies.drained.set_result(None)

    def _caught_up(self, copy: Copy) -> None:
        if self._hold.caught_up(copy) and self._capture.paused:
            self._hold_check.cancel()
            self._capture.resume()

    def _check_hold(self) -> None:
        for copy in self._hold.stalled:
            if copy.closed:  # dropped, or its connection finished, while it held the capture
                self._hold.caught_up(copy)
        if self._hold.check(time.monotonic(), self._capture.queued()):
            self._hold_check.soon()
        elif self._capture.paused:
            self._capture.resume()

    # --- the end ----------------------------------------------------------------------------------------

    def _end(self, key: Key, reason: str, *, wait: bool) -> None:
        """The connection is over: once its copies passed on what they hold (for at most
        ``COPY_DRAIN_TIMEOUT``), the sessions hear it closed."""
        copies = self._copies.get(key)
        if copies is None:
            return
        outlets = copies.outlets
        if not wait or outlets is None or outlets.over:
            self._forget(key)
            self._finish(copies, reason)
            return
        if copies.ending is not None:
            return  # draining already
        copies.drained = asyncio.get_running_loop().create_future()
        copies.ending = asyncio.get_running_loop().create_task(self._drain(key, copies, reason))
        self._endings.add(copies.ending)
        copies.ending.add_done_callback(self._endings.discard)

    async def _drain(self, key: Key, copies: _Copies, reason: str) -> None:
        assert copies.drained is not None and copies.outlets is not None
        try:
            await asyncio.wait_for(copies.drained, COPY_DRAIN_TIMEOUT)
        except asyncio.TimeoutError:
            copies.outlets.give_up(DRAIN_TIMED_OUT)
        finally:
            if self._copies.get(key) is copies:
                self._forget(key)
            self._finish(copies, reason)

    def _forget(self, key: Key) -> None:
        self._copies.pop(key, None)
        self._capture.connections.forget(key)

    def _finish(self, copies: _Copies, reason: str) -> None:
        """Closes the connection's copies and tells the sessions it closed (once)."""
        if copies.finished:
            return
        copies.finished = True
        if copies.ending is not None and copies.ending is not asyncio.current_task():
            copies.ending.cancel()
        if copies.outlets is not None:
            copies.outlets.stop()
            for copy in copies.outlets.copies:
                self._caught_up(copy)
        for session, tunnel in copies.tunnels.items():
            self._tunnels.unlisten(session, tunnel.tunnel_id)
            tunnel.sock.close()
        self._apply(self._table.closed(copies.connection_id, reason))
