"""Copies of a connection's client bytes on their way down sessions' tunnels (the I/O shell).

Each copy has a queue of bytes not yet written to its tunnel; what the socket does not take now is
written when it becomes writable. A copy is never allowed to hold back what it copies: one whose queue is
full (its app fell ``COPY_LAG_LIMIT`` bytes behind) is dropped, its tunnel closed and its session told why.
What a session's app writes back into its tunnel is read and dropped (a mirrored copy's answers go
nowhere), and the tunnel's end of stream, or a counted tunnel's announced end, ends that copy. Used by
``MirrorRelay`` (the agent relays the connection and tees it) and by the captured mirror (the connection
never passes the agent: its bytes come from packet capture).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from pymirrord.tunnel.pump import EndFar, send_chunks
from pymirrord.tunnel.state import Direction

_DISCARD_CHUNK = 64 * 1024

Dropped = Callable[[int, "str | None"], None]
"""Hears of a copy that ended early: ``(session, reason)``; reason None: its session closed it."""


@dataclass
class Queue:
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

    def push(self, sock: socket.socket, run: list[bytes | memoryview], count: int) -> None:
        """``run`` (``count`` bytes in all) to ``sock``: what it takes now at once (one ``sendmsg``), a
        copy of the rest queued (``run`` may hold views of buffers their owner reuses)."""
        self.state.read(count)
        sent = 0
        if not self.chunks:
            try:
                sent = sock.sendmsg(run)
            except BlockingIOError:
                sent = 0
            self.state.wrote(sent)
        if sent == count:
            return
        for data in run:
            if sent >= len(data):
                sent -= len(data)
                continue
            self.chunks.append(memoryview(bytes(data[sent:])))
            sent = 0

    def close(self) -> None:
        self.chunks.clear()


@dataclass(eq=False)
class Copy:
    """One session's copy: its tunnel and what waits for it (hashed by identity)."""

    session: int
    tunnel: socket.socket
    queue: Queue
    end: EndFar | None = None
    """A counted tunnel's way to announce the copy's end (its tunnel is never half-closed)."""
    writing: bool = False
    discarding: bool = False
    closed: bool = False


class CopyOutlets:
    """Writes ``copies`` to their tunnels as they take them; ``changed`` hears of every copy that ended or
    passed its end of stream on, ``on_drop`` of each that ended early."""

    def __init__(self, copies: list[Copy], on_drop: Dropped, changed: Callable[[], None]) -> None:
        self.copies = copies
        self._loop = asyncio.get_running_loop()
        self._on_drop = on_drop
        self._changed = changed

    def start(self) -> None:
        for copy in self.copies:
            self._watch_discard(copy, True)

    @property
    def over(self) -> bool:
        """Every copy ended, or passed its end of stream on."""
        return all(copy.closed or copy.queue.state.shut for copy in self.copies)

    def has_room(self, copy: Copy, count: int) -> bool:
        """Whether ``copy`` can queue ``count`` more bytes; one that cannot (its app fell too far behind)
        is dropped."""
        if copy.queue.state.room >= count:
            return True
        self.drop(copy, f"the app fell more than {copy.queue.state.capacity >> 20} MiB behind")
        return False

    def flush(self, copy: Copy) -> None:
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
            self.drop(copy, None)  # the session's end closed: it wants no more of this copy
            return
        writing = state.should_write
        if writing != copy.writing:
            if writing:
                self._loop.add_writer(copy.tunnel.fileno(), self.flush, copy)
            else:
                self._loop.remove_writer(copy.tunnel.fileno())
            copy.writing = writing
        self._changed()

    def end_of_stream(self) -> None:
        """The client's end of stream: each open copy passes it on once what it holds is written."""
        for copy in self.copies:
            if not copy.closed and not copy.queue.state.shut:
                copy.queue.state.read(0)
                self.flush(copy)

    def _watch_discard(self, copy: Copy, on: bool) -> None:
        if on != copy.discarding and not copy.closed:
            if on:
                self._loop.add_reader(copy.tunnel.fileno(), self._discard, copy)
            else:
                self._loop.remove_reader(copy.tunnel.fileno())
            copy.discarding = on

    def _discard(self, copy: Copy) -> None:
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
        for copy in self.copies:
            if copy.session == session:
                self._copy_over(copy)

    def _copy_over(self, copy: Copy) -> None:
        if copy.queue.state.shut:
            self.close(copy)
        else:
            self.drop(copy, None)
        self._changed()

    def drop(self, copy: Copy, reason: str | None) -> None:
        if copy.closed:
            return
        self.close(copy)
        self._on_drop(copy.session, reason)

    def close(self, copy: Copy) -> None:
        if copy.closed:
            return
        self._watch_discard(copy, False)
        if copy.writing:
            self._loop.remove_writer(copy.tunnel.fileno())
            copy.writing = False
        copy.closed = True
        copy.queue.close()

    def give_up(self, reason: str) -> None:
        """Drops the copies that have not passed their end of stream on."""
        for copy in self.copies:
            if not copy.closed and not copy.queue.state.shut:
                self.drop(copy, reason)

    def stop(self) -> None:
        for copy in self.copies:
            self.close(copy)


class _EndsCopies(Protocol):
    def copy_ended(self, session: int) -> None: ...


def copy_ender(copies: _EndsCopies, session: int) -> Callable[[int], None]:
    """What hears a session's ``TunnelEnd`` for its copy in ``copies`` (a counted tunnel's far end)."""
    return lambda _length: copies.copy_ended(session)
