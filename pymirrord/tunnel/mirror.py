"""Passing a mirrored connection through to the pod's app while its copies go down tunnels (the I/O shell).

The client's bytes are read once and written on to the pod's app and to each mirroring session's tunnel;
the pod's answers go back to the client with ``splice``, as in ``TunnelRelay``. Whatever a session's app
writes back into its tunnel is read and dropped: a mirrored copy's answers go nowhere.

A copy never holds the pod's traffic back: the bytes it has not taken yet wait in memory, and a copy that
falls more than ``COPY_BUFFER`` bytes behind is dropped (its tunnel closed, its session told why). Reading
the client pauses only while the pod's app itself has not taken ``PIPE_SIZE`` bytes. The bookkeeping of
each direction is ``pymirrord.tunnel.state``.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import socket
from collections.abc import Callable
from dataclasses import dataclass, field

from pymirrord.tunnel.pump import COPY_CHUNK, PIPE_SIZE, TURN_BYTES, EndFar, TunnelRelay, send_chunks
from pymirrord.tunnel.state import Direction

COPY_BUFFER = 16 * 1024 * 1024
"""Bytes a copy may lag behind the pod's traffic before it is dropped."""
COPY_DRAIN_TIMEOUT = 30.0
"""How long copies may take to pass on what they hold once the client's connection is over."""
_DISCARD_CHUNK = 64 * 1024

Dropped = Callable[[int, "str | None"], None]
"""Hears of a copy that ended early: ``(session, reason)``; reason None: its session closed it."""


@dataclass
class _Queue:
    """Bytes read and not yet written to one destination, as views of the chunks read."""

    state: Direction
    chunks: collections.deque[memoryview] = field(default_factory=collections.deque)

    def add(self, chunk: memoryview) -> None:
        self.chunks.append(chunk)
        self.state.read(len(chunk))

    def send(self, sock: socket.socket) -> None:
        """Writes what the socket takes now (``BlockingIOError`` is not an error here)."""
        while self.chunks:
            try:
                self.state.wrote(send_chunks(sock, self.chunks))
            except BlockingIOError:
                return


@dataclass
class _Copy:
    """One session's copy: its tunnel and what waits for it."""

    session: int
    tunnel: socket.socket
    queue: _Queue
    end: EndFar | None = None
    """A counted tunnel's way to announce the copy's end (its tunnel is never half-closed)."""
    writing: bool = False
    discarding: bool = False
    closed: bool = False


class MirrorRelay:
    """Relays ``client`` and ``pod`` (connected, non-blocking, watched by nobody else) into each other and
    sends copies of the client's bytes down ``tunnels`` (session -> tunnel socket).

    ``on_drop`` hears of copies that end early. ``counted`` names the copies whose tunnels are counted:
    their end goes to the callable given, and the session's own end comes as ``copy_ended``. ``wait``
    returns once the client's connection is over (both ends of stream passed on, or one side failed) and
    every remaining copy has passed its end of stream on (for at most ``COPY_DRAIN_TIMEOUT``); the sockets
    stay open for the caller to close.
    """

    def __init__(
        self,
        client: socket.socket,
        pod: socket.socket,
        tunnels: dict[int, socket.socket],
        on_drop: Dropped,
        counted: dict[int, EndFar] | None = None,
        *,
        turn_bytes: int = TURN_BYTES,
    ) -> None:
        """``turn_bytes``: bytes read from the client in one turn of the event loop (see ``TURN_BYTES``)."""
        self.failure: str | None = None
        self._turn_bytes = turn_bytes
        self._loop = asyncio.get_running_loop()
        self._client = client
        self._pod = pod
        self._on_drop = on_drop
        self._done: asyncio.Future[None] = self._loop.create_future()
        self._main_over: asyncio.Future[None] = self._loop.create_future()
        self._to_pod = _Queue(Direction(PIPE_SIZE))
        self._reading = self._writing = False
        ends = counted or {}
        self._copies = [
            _Copy(session, tunnel, _Queue(Direction(COPY_BUFFER)), ends.get(session))
            for session, tunnel in tunnels.items()
        ]
        self._back = TunnelRelay(pod, client)  # only its forward direction is used: pod -> client
        self._back.relay.back.shutdown_done()  # client -> pod is ours

    def start(self) -> None:
        self._back.start()
        task = self._loop.create_task(self._back.wait())
        task.add_done_callback(lambda _: self._check())
        self._back_task = task
        for copy in self._copies:
            self._watch_discard(copy, True)
        self._run_forward()

    async def wait(self) -> None:
        try:
            await asyncio.shield(self._main_over)
            try:
                await asyncio.wait_for(asyncio.shield(self._done), COPY_DRAIN_TIMEOUT)
            except asyncio.TimeoutError:
                for copy in self._copies:
                    if not copy.closed and not copy.queue.state.shut:
                        self._drop(copy, f"the app did not take its copy within {COPY_DRAIN_TIMEOUT:g} s")
                self._check()
        finally:
            self._stop()

    def abort(self, reason: str) -> None:
        if self.failure is None:
            self.failure = reason
        self._back.abort(reason)
        self._check()

    # --- client -> pod and copies ------------------------------------------------------------------------

    def _run_forward(self) -> None:
        queue = self._to_pod
        state = queue.state
        turn = 0
        try:
            while self.failure is None:
                progressed = False
                if state.should_write:
                    before = state.pending
                    queue.send(self._pod)
                    progressed = state.pending < before
                if state.should_shutdown:
                    with contextlib.suppress(OSError):
                        self._pod.shutdown(socket.SHUT_WR)
                    state.shutdown_done()
                    break
                if state.should_read:
                    try:
                        data = self._client.recv(min(state.room, COPY_CHUNK))
                    except BlockingIOError:
                        pass
                    else:
                        progressed = True
                        turn += len(data)
                        self._take(data)
                if not progressed:
                    break
                if turn >= self._turn_bytes and not state.should_shutdown:
                    break  # the readiness watched below brings this back on the loop's next turn
        except OSError as error:
            state.fail(error.strerror or type(error).__name__)
            self.failure = state.failed
        reading = self.failure is None and state.should_read
        writing = self.failure is None and state.should_write
        if reading != self._reading:
            if reading:
                self._loop.add_reader(self._client.fileno(), self._run_forward)
            else:
                self._loop.remove_reader(self._client.fileno())
            self._reading = reading
        if writing != self._writing:
            if writing:
                self._loop.add_writer(self._pod.fileno(), self._run_forward)
            else:
                self._loop.remove_writer(self._pod.fileno())
            self._writing = writing
        self._check()

    def _take(self, data: bytes) -> None:
        """A chunk from the client (empty: its end of stream) goes to the pod and to every copy."""
        if not data:
            self._to_pod.state.read(0)
        else:
            self._to_pod.add(memoryview(data))
        for copy in self._copies:
            if copy.closed:
                continue
            state = copy.queue.state
            if not data:
                state.read(0)
            elif state.room < len(data):
                self._drop(copy, f"the app fell more than {COPY_BUFFER >> 20} MiB behind")
                continue
            else:
                copy.queue.add(memoryview(data))
            self._flush_copy(copy)

    def _flush_copy(self, copy: _Copy) -> None:
        if copy.closed:
            return
        state = copy.queue.state
        try:
            copy.queue.send(copy.tunnel)
            if state.should_shutdown:
                if copy.end is not None:
                    copy.end(state.moved)
                else:
                    with contextlib.suppress(OSError):
                        copy.tunnel.shutdown(socket.SHUT_WR)
                state.shutdown_done()
        except OSError:
            self._drop(copy, None)  # the session's end closed: it wants no more of this copy
            return
        writing = state.should_write
        if writing != copy.writing:
            if writing:
                self._loop.add_writer(copy.tunnel.fileno(), self._flush_copy, copy)
            else:
                self._loop.remove_writer(copy.tunnel.fileno())
            copy.writing = writing
        self._check()

    def _watch_discard(self, copy: _Copy, on: bool) -> None:
        if on != copy.discarding and not copy.closed:
            if on:
                self._loop.add_reader(copy.tunnel.fileno(), self._discard, copy)
            else:
                self._loop.remove_reader(copy.tunnel.fileno())
            copy.discarding = on

    def _discard(self, copy: _Copy) -> None:
        """What the session's app answers on a copy goes nowhere; its end of stream ends the copy."""
        try:
            data = copy.tunnel.recv(_DISCARD_CHUNK)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self._copy_over(copy)

    def copy_ended(self, session: int) -> None:
        """The session's end of a counted copy ended (what it would have said with a half-close)."""
        for copy in self._copies:
            if copy.session == session:
                self._copy_over(copy)

    def _copy_over(self, copy: _Copy) -> None:
        if copy.queue.state.shut:
            self._close_copy(copy)
        else:
            self._drop(copy, None)
        self._check()

    def _drop(self, copy: _Copy, reason: str | None) -> None:
        if copy.closed:
            return
        self._close_copy(copy)
        self._on_drop(copy.session, reason)

    def _close_copy(self, copy: _Copy) -> None:
        if copy.closed:
            return
        self._watch_discard(copy, False)
        if copy.writing:
            self._loop.remove_writer(copy.tunnel.fileno())
            copy.writing = False
        copy.closed = True
        copy.queue.chunks.clear()

    # --- plumbing --------------------------------------------------------------------------------------

    def _check(self) -> None:
        if self._done.done():
            return
        back = self._back.relay
        if self.failure is None and back.failure is not None:
            self.failure = back.failure
        main_over = self.failure is not None or (self._to_pod.state.shut and back.forward.shut)
        if main_over and not self._main_over.done():
            self._main_over.set_result(None)
        copies_over = all(copy.closed or copy.queue.state.shut for copy in self._copies)
        if main_over and (copies_over or self.failure is not None):
            self._done.set_result(None)
            self._stop()

    def _stop(self) -> None:
        if self._reading:
            self._loop.remove_reader(self._client.fileno())
            self._reading = False
        if self._writing:
            self._loop.remove_writer(self._pod.fileno())
            self._writing = False
        if not self._back.relay.finished:
            self._back.abort("stopped")
        for copy in self._copies:
            self._close_copy(copy)
