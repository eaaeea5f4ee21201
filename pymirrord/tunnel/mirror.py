"""Passing a mirrored connection through to the pod's app while its copies go down tunnels (the I/O shell).

The client's bytes are spliced into a pipe, duplicated into each copy's own pipe with ``tee(2)`` (page
references, no copy), and spliced on to the pod's app and to each mirroring session's tunnel: no byte
passes through Python. Where ``tee`` is missing they are read once and written to each instead. The pod's
answers go back to the client with ``splice``, as in ``TunnelRelay``. Whatever a session's app writes back
into its tunnel is read and dropped: a mirrored copy's answers go nowhere.

A copy never holds the pod's traffic back: what it has not taken yet waits in its pipe, and when the pipe
is needed for the next bytes while the copy still lags, its content moves to memory first; a copy that
falls more than ``COPY_BUFFER`` bytes behind is dropped (its tunnel closed, its session told why). Reading
the client pauses only while the pod's app itself has not taken ``PIPE_SIZE`` bytes. The bookkeeping of
each direction is ``pymirrord.tunnel.state``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket

from pymirrord.flow import COPY_LAG_LIMIT
from pymirrord.tunnel import tee as tee_module
from pymirrord.tunnel.copies import Copy, CopyOutlets, Dropped, Queue
from pymirrord.tunnel.pump import (
    COPY_CHUNK,
    PIPE_SIZE,
    SPLICE_FLAGS,
    TURN_BYTES,
    EndFar,
    TunnelRelay,
    make_pipe,
)
from pymirrord.tunnel.state import Direction

COPY_BUFFER = COPY_LAG_LIMIT
"""Bytes a copy may lag behind the pod's traffic before it is dropped."""
COPY_DRAIN_TIMEOUT = 30.0
"""How long copies may take to pass on what they hold once the client's connection is over."""
DRAIN_TIMED_OUT = f"the app did not take its copy within {COPY_DRAIN_TIMEOUT:g} s"
"""Why a copy still draining after ``COPY_DRAIN_TIMEOUT`` is given up."""


class _PipeQueue(Queue):
    """A copy's bytes not yet written to its tunnel: in its own pipe (``tee``'d there), and older ones in
    memory (``chunks``), moved out of the pipe when it was needed for newer bytes while the copy lagged."""

    def __init__(self, state: Direction) -> None:
        super().__init__(state)
        self.read_end, self.write_end, self.capacity = make_pipe()
        self.in_pipe = 0

    def tee_from(self, source: int, count: int) -> None:
        """Duplicates the ``count`` bytes at the head of pipe ``source``, a pipe no larger than this one."""
        if self.in_pipe:
            # A pipe holds a number of buffers, not of bytes, and small writes make small buffers: only an
            # empty pipe as large as ``source`` surely takes all of it.
            self._spill()
        teed = tee_module.tee(source, self.write_end, count)
        if teed != count:
            raise OSError(f"tee duplicated {teed} of {count} bytes")
        self.in_pipe += count
        self.state.read(count)

    def _spill(self) -> None:
        while self.in_pipe:
            data = os.read(self.read_end, self.in_pipe)
            if not data:
                raise OSError("a copy's pipe ran dry")
            self.chunks.append(memoryview(data))
            self.in_pipe -= len(data)

    def send(self, sock: socket.socket) -> None:
        super().send(sock)  # the older bytes first
        while not self.chunks and self.in_pipe:
            try:
                sent = os.splice(self.read_end, sock.fileno(), self.in_pipe, flags=SPLICE_FLAGS)
            except BlockingIOError:
                return
            self.in_pipe -= sent
            self.state.wrote(sent)

    def close(self) -> None:
        super().close()
        if self.read_end >= 0:
            os.close(self.read_end)
            os.close(self.write_end)
            self.read_end = self.write_end = -1


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
        self._done: asyncio.Future[None] = self._loop.create_future()
        self._main_over: asyncio.Future[None] = self._loop.create_future()
        self._reading = self._writing = False
        ends = counted or {}
        self._pipe: tuple[int, int] | None = None
        """The pipe the client's bytes go through on their way to the pod's app (with ``tee``)."""
        queues: dict[int, Queue] = {}
        try:
            if tee_module.AVAILABLE:
                piped: dict[int, _PipeQueue] = {}
                for session in tunnels:
                    piped[session] = queues[session] = _PipeQueue(Direction(COPY_BUFFER))
                # No larger than any copy's pipe, so that all it holds fits into an empty one.
                read_end, write_end, capacity = make_pipe(
                    min([PIPE_SIZE, *(queue.capacity for queue in piped.values())])
                )
                self._pipe = (read_end, write_end)
                self._chunk = min(capacity, turn_bytes)
                self._to_pod = Queue(Direction(self._chunk))
            else:
                queues = {session: Queue(Direction(COPY_BUFFER)) for session in tunnels}
                self._chunk = COPY_CHUNK
                self._to_pod = Queue(Direction(PIPE_SIZE))
            self._back = TunnelRelay(pod, client)  # only its forward direction is used: pod -> client
        except BaseException:
            for queue in queues.values():
                queue.close()  # out of file descriptors, say: none of them may leak
            self._close_client_pipe()
            raise
        self._copies = [
            Copy(session, tunnel, queues[session], ends.get(session)) for session, tunnel in tunnels.items()
        ]
        self._outlets = CopyOutlets(self._copies, on_drop, self._check)
        self._back.relay.back.shutdown_done()  # client -> pod is ours

    def start(self) -> None:
        self._back.start()
        task = self._loop.create_task(self._back.wait())
        task.add_done_callback(lambda _: self._check())
        self._back_task = task
        self._outlets.start()
        self._run_forward()

    async def wait(self) -> None:
        try:
            await asyncio.shield(self._main_over)
            try:
                await asyncio.wait_for(asyncio.shield(self._done), COPY_DRAIN_TIMEOUT)
            except asyncio.TimeoutError:
                self._outlets.give_up(DRAIN_TIMED_OUT)
                self._check()
        finally:
            self._stop()

    def abort(self, reason: str) -> None:
        if self.failure is None:
            self.failure = reason
        self._back.abort(reason)
        self._check()

    # --- client -> pod and copies ------------------------------------------------------------------------

    def _should_read(self) -> bool:
        state = self._to_pod.state
        # With tee, the pipe must be empty: tee duplicates from its head, so what is still in it would reach
        # the copies twice.
        return state.should_read and (self._pipe is None or state.pending == 0)

    def _run_forward(self) -> None:
        queue = self._to_pod
        state = queue.state
        turn = 0
        try:
            while self.failure is None:
                progressed = False
                if state.should_write:
                    before = state.pending
                    self._send_to_pod()
                    progressed = state.pending < before
                if state.should_shutdown:
                    with contextlib.suppress(OSError):
                        self._pod.shutdown(socket.SHUT_WR)
                    state.shutdown_done()
                    break
                if self._should_read():
                    try:
                        count = self._read_client()
                    except BlockingIOError:
                        pass
                    else:
                        progressed = True
                        turn += count
                if not progressed:
                    break
                if turn >= self._turn_bytes and not state.should_shutdown:
                    break  # the readiness watched below brings this back on the loop's next turn
        except OSError as error:
            state.fail(error.strerror or type(error).__name__)
            self.failure = state.failed
        reading = self.failure is None and self._should_read()
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

    def _send_to_pod(self) -> None:
        if self._pipe is None:
            self._to_pod.send(self._pod)
            return
        state = self._to_pod.state
        while state.pending:
            try:
                sent = os.splice(self._pipe[0], self._pod.fileno(), state.pending, flags=SPLICE_FLAGS)
            except BlockingIOError:
                return
            state.wrote(sent)

    def _read_client(self) -> int:
        """Reads what the client sent (``BlockingIOError``: nothing now) and passes it on; the count."""
        if self._pipe is None:
            data = self._client.recv(min(self._to_pod.state.room, COPY_CHUNK))
            self._take(data)
            return len(data)
        count = os.splice(self._client.fileno(), self._pipe[1], self._chunk, flags=SPLICE_FLAGS)
        if not count:
            self._take(b"")
            return 0
        for copy in self._copies:
            if copy.closed or not self._outlets.has_room(copy, count):
                continue
            assert isinstance(copy.queue, _PipeQueue)
            try:
                copy.queue.tee_from(self._pipe[0], count)
            except OSError as error:
                self._outlets.drop(copy, f"its copy could not be made: {error.strerror or error}")
                continue
            self._outlets.flush(copy)
        self._to_pod.state.read(count)  # the copies have theirs: the pipe may go to the pod now
        return count

    def _take(self, data: bytes) -> None:
        """A chunk from the client (empty: its end of stream) goes to the pod and to every copy."""
        if not data:
            self._to_pod.state.read(0)
            self._outlets.end_of_stream()
            return
        self._to_pod.add(memoryview(data))
        for copy in self._copies:
            if copy.closed or not self._outlets.has_room(copy, len(data)):
                continue
            copy.queue.add(memoryview(data))
            self._outlets.flush(copy)

    def copy_ended(self, session: int) -> None:
        """The session's end of a counted copy ended (what it would have said with a half-close)."""
        self._outlets.copy_ended(session)

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
        copies_over = self._outlets.over
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
        self._outlets.stop()
        self._close_client_pipe()

    def _close_client_pipe(self) -> None:
        if self._pipe is not None:
            for end in self._pipe:
                os.close(end)
            self._pipe = None
