"""Moving a tunnel's bytes: ``TunnelRelay`` pumps two connected sockets into each other (the I/O shell).

Each direction moves through a pipe with ``splice``: the kernel passes the received pages on to the other
socket, and no byte is copied through Python. A direction with a tap (the session reads the client's
bytes for the sessions view) reads and sends instead. The bookkeeping, what to do next in each direction,
is ``pymirrord.tunnel.state``.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import fcntl
import itertools
import os
import socket
import struct
from collections.abc import Callable

from pymirrord.tunnel.state import Direction, Relay

PIPE_SIZE = 1024 * 1024
"""Bytes a direction holds between reading and writing: one pipe's worth, so a burst moves in one go."""
TURN_BYTES = PIPE_SIZE
"""Bytes a direction moves in one turn of the event loop before it lets the loop run everything else: a
connection whose both ends are always ready would otherwise keep the loop, and every other connection and
message of the process, waiting until it ends."""
COPY_CHUNK = 127 * 1024
"""Read size of a tapped direction (below glibc's 128 KiB mmap threshold, see ``pymirrord.streams``)."""
_F_SETPIPE_SZ = 1031
_F_GETPIPE_SZ = 1032
SPLICE_FLAGS = getattr(os, "SPLICE_F_NONBLOCK", 2) | getattr(os, "SPLICE_F_MOVE", 1)

Tap = Callable[[bytes], "bool | None"]
"""Sees each chunk of a direction as it passes (the sessions view's request sniffer); False once it wants no
more, and the direction then moves by ``splice`` from there on."""
Moved = Callable[[bool, int], None]
"""Hears of bytes written: ``(forward, count)``."""
EndFar = Callable[[int], None]
"""Tells ``far``'s peer, some other way than a half-close, that the forward direction ended after that many
bytes (a counted tunnel: ``pymirrord.protocol``'s ``TunnelEnd``)."""


def send_chunks(sock: socket.socket, chunks: collections.deque[memoryview]) -> int:
    """Sends what ``sock`` takes now of the queued ``chunks`` (one ``sendmsg``) and drops what it took."""
    sent = sock.sendmsg(list(itertools.islice(chunks, 64)))
    left = sent
    while left:
        first = chunks[0]
        if len(first) <= left:
            left -= len(first)
            chunks.popleft()
        else:
            chunks[0] = first[left:]
            left = 0
    return sent


class _Mover:
    """A direction's buffer between its source and destination sockets."""

    capacity: int
    splice_next = False
    """The direction may move by ``splice`` once this buffer is empty (its tap has seen enough)."""

    def fill(self, room: int) -> int:
        """Reads at most ``room`` bytes from the source; 0 is its end. ``BlockingIOError``: none now."""
        raise NotImplementedError

    def flush(self, count: int) -> int:
        """Writes up to ``count`` buffered bytes to the destination; ``BlockingIOError``: it is full."""
        raise NotImplementedError

    def close(self) -> None:
        pass


def make_pipe(size: int = PIPE_SIZE) -> tuple[int, int, int]:
    """A non-blocking pipe of ``size`` bytes where the system allows it: read end, write end, capacity."""
    read, write = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    with contextlib.suppress(OSError):  # over /proc/sys/fs/pipe-max-size: the default size serves
        fcntl.fcntl(write, _F_SETPIPE_SZ, size)
    return read, write, fcntl.fcntl(write, _F_GETPIPE_SZ)


class _SpliceMover(_Mover):
    def __init__(self, source: socket.socket, destination: socket.socket, head: bytes) -> None:
        self._source = source.fileno()
        self._destination = destination
        self._destination_fd = destination.fileno()
        self._head = memoryview(head)
        self._read, self._write, capacity = make_pipe()
        self.capacity = capacity + len(head)

    def fill(self, room: int) -> int:
        return os.splice(self._source, self._write, room, flags=SPLICE_FLAGS)

    def flush(self, count: int) -> int:
        if self._head:
            sent = self._destination.send(self._head)
            self._head = self._head[sent:]
            return sent
        return os.splice(self._read, self._destination_fd, count, flags=SPLICE_FLAGS)

    def close(self) -> None:
        os.close(self._read)
        os.close(self._write)


class _CopyMover(_Mover):
    def __init__(
        self, source: socket.socket, destination: socket.socket, head: bytes, tap: Tap | None
    ) -> None:
        self._source = source
        self._destination = destination
        self._tap = tap
        self._chunks: collections.deque[memoryview] = collections.deque()
        if head:
            if tap is not None:
                tap(head)
            self._chunks.append(memoryview(head))
        self.capacity = PIPE_SIZE + len(head)

    def fill(self, room: int) -> int:
        data = self._source.recv(min(room, COPY_CHUNK))
        if data:
            if self._tap is not None and self._tap(data) is False:
                self._tap = None
                self.splice_next = hasattr(os, "splice")
            self._chunks.append(memoryview(data))
        return len(data)

    def flush(self, count: int) -> int:
        return send_chunks(self._destination, self._chunks)


class _Side:
    """One direction: its state, its buffer, and which readiness it is registered for."""

    def __init__(self, state: Direction, mover: _Mover, source: int, destination: int, forward: bool) -> None:
        self.state = state
        self.mover = mover
        self.source = source
        self.destination = destination
        self.forward = forward
        self.reading = False
        self.writing = False


class TunnelRelay:
    """Relays ``near`` and ``far`` (connected, non-blocking sockets nobody else watches) into each other.

    ``head_back``: bytes already read from ``far`` that go to ``near`` first (``head_forward``: from
    ``near``, to ``far``). ``tap_forward``/``tap_back``
    see the bytes of that direction (which then moves by copy, not ``splice``). ``wait`` returns once both
    ends of stream were passed on or a direction failed; the sockets stay open for the caller to close.

    With ``end_far`` (``far`` is a counted tunnel) the forward direction's end goes to ``end_far`` instead
    of being a half-close of ``far``, and the back direction ends once it has moved the length the far
    peer announced (``far_ended``).
    """

    def __init__(
        self,
        near: socket.socket,
        far: socket.socket,
        *,
        head_forward: bytes = b"",
        head_back: bytes = b"",
        tap_forward: Tap | None = None,
        tap_back: Tap | None = None,
        on_moved: Moved | None = None,
        end_far: EndFar | None = None,
        turn_bytes: int = TURN_BYTES,
    ) -> None:
        self._loop = asyncio.get_running_loop()
        self._turn_bytes = turn_bytes
        self._end_far = end_far
        self._near = near
        self._far = far
        self._on_moved = on_moved
        self._done: asyncio.Future[None] = self._loop.create_future()
        forward = self._mover(near, far, head_forward, tap_forward)
        try:
            back = self._mover(far, near, head_back, tap_back)
        except BaseException:
            forward.close()
            raise
        self.relay = Relay(
            Direction(forward.capacity, pending=len(head_forward)),
            Direction(back.capacity, pending=len(head_back)),
        )
        self._sides = (
            _Side(self.relay.forward, forward, near.fileno(), far.fileno(), True),
            _Side(self.relay.back, back, far.fileno(), near.fileno(), False),
        )

    @staticmethod
    def _mover(source: socket.socket, destination: socket.socket, head: bytes, tap: Tap | None) -> _Mover:
        if tap is None and hasattr(os, "splice"):
            return _SpliceMover(source, destination, head)
        return _CopyMover(source, destination, head, tap)

    def start(self) -> None:
        for side in self._sides:
            self._run(side)

    async def wait(self) -> Relay:
        """Runs until the relay is over; cancelling it stops the relay (the sockets stay open)."""
        try:
            await asyncio.shield(self._done)
        finally:
            self._stop()
        return self.relay

    def far_ended(self, length: int) -> None:
        """``far``'s peer sent its last byte, ``length`` in all (counted tunnels only)."""
        back = self._sides[1]
        back.state.ends_at(length)
        if not self._done.done():
            self._run(back)

    def abort(self, reason: str) -> None:
        """Ends the relay at once as failed (the caller then resets both connections)."""
        self.relay.forward.fail(reason)
        self._finish_if_over()

    def _run(self, side: _Side) -> None:
        state = side.state
        turn = 0
        try:
            while True:
                if side.mover.splice_next and state.pending == 0:
                    self._splice_from_now(side)
                progressed = False
                if state.should_write:
                    try:
                        written = side.mover.flush(state.pending)
                    except BlockingIOError:
                        written = 0
                    if written:
                        state.wrote(written)
                        turn += written
                        progressed = True
                        if self._on_moved is not None:
                            self._on_moved(side.forward, written)
                if state.should_shutdown:
                    if side.forward and self._end_far is not None:
                        self._end_far(state.moved)
                    else:
                        destination = self._far if side.forward else self._near
                        with contextlib.suppress(OSError):  # the far end is gone already: nothing to tell
                            destination.shutdown(socket.SHUT_WR)
                    state.shutdown_done()
                    break
                if state.should_read:
                    try:
                        count = side.mover.fill(state.room)
                    except BlockingIOError:
                        state.buffer_full()
                    else:
                        state.read(count)
                        progressed = True
                if not progressed:
                    break
                if turn >= self._turn_bytes and not state.should_shutdown:
                    break  # the readiness watched below brings this direction back on the loop's next turn
        except OSError as error:
            state.fail(error.strerror or type(error).__name__)
        self._watch(side)
        self._finish_if_over()

    def _splice_from_now(self, side: _Side) -> None:
        """The direction's tap has seen enough and its copies are all written: splice from now on."""
        source, destination = (self._near, self._far) if side.forward else (self._far, self._near)
        mover = _SpliceMover(source, destination, b"")
        side.mover.close()
        side.mover = mover
        side.state.capacity = mover.capacity

    def _watch(self, side: _Side) -> None:
        reading = side.state.should_read and not self._done.done()
        writing = side.state.should_write and not self._done.done()
        if reading != side.reading:
            if reading:
                self._loop.add_reader(side.source, self._run, side)
            else:
                self._loop.remove_reader(side.source)
            side.reading = reading
        if writing != side.writing:
            if writing:
                self._loop.add_writer(side.destination, self._run, side)
            else:
                self._loop.remove_writer(side.destination)
            side.writing = writing

    def _finish_if_over(self) -> None:
        if self.relay.finished and not self._done.done():
            self._done.set_result(None)
            self._stop()

    def _stop(self) -> None:
        for side in self._sides:
            if side.reading:
                self._loop.remove_reader(side.source)
                side.reading = False
            if side.writing:
                self._loop.remove_writer(side.destination)
                side.writing = False
            side.mover.close()
            side.mover = _Mover()  # closed: nothing runs on it again
            if not side.state.shut:
                side.state.fail(self.relay.failure or "stopped")


def reset(sock: socket.socket) -> None:
    """Closes ``sock`` so that its peer sees a reset, not an orderly end (a failed relay)."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()
