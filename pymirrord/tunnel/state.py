"""One direction of a byte relay between two sockets, sans I/O: what is in flight, and what to do next.

The I/O shell reads from the source into a buffer (a pipe, or a chunk in memory), writes the buffer to the
destination, and tells a ``Direction`` what happened; the direction says whether to read more, write, pass
an end of stream on, or stop. ``Relay`` pairs the two directions of one connection: it is over once both
have passed their end of stream on, or as soon as either failed.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Direction:
    """Bytes from one socket to the other. ``capacity``: what the buffer holds before reading must stop."""

    capacity: int
    pending: int = 0
    """Read from the source and not yet written to the destination."""
    moved: int = 0
    """Written to the destination so far."""
    eof: bool = False
    shut: bool = False
    failed: str | None = None
    stalled: bool = False
    """The buffer refused more although it had room (a pipe counts slots, not bytes): read again only
    after a write made room."""
    length: int | None = None
    """The source's announced length, where its peer counts its end instead of half-closing (a counted
    tunnel): having read that many bytes is its end of stream."""

    def read(self, count: int) -> None:
        """``count`` bytes came from the source; 0 is its end of stream."""
        if self.eof or self.failed is not None:
            raise ValueError("read after the end of the source")
        if count > self.room:
            raise ValueError("read past the buffer's capacity")
        if count == 0:
            self.eof = True
        self.pending += count
        if self.length is not None and count:
            self._check_length()

    def ends_at(self, length: int) -> None:
        """The source's peer announced its end: ``length`` bytes in all (end of stream once they are read)."""
        if self.eof or self.failed is not None or self.length is not None:
            return  # a real end of stream (or a failure) came first; a second announcement changes nothing
        self.length = length
        self._check_length()

    def _check_length(self) -> None:
        assert self.length is not None
        if self.received > self.length:
            self.fail(f"{self.received - self.length} bytes more than the {self.length} announced")
        elif self.received == self.length:
            self.eof = True

    def wrote(self, count: int) -> None:
        """``count`` bytes of the buffer went to the destination."""
        if count > self.pending:
            raise ValueError("wrote more than was pending")
        self.pending -= count
        self.moved += count
        if count:
            self.stalled = False

    def buffer_full(self) -> None:
        """A read found no room in the buffer (with bytes pending)."""
        if self.pending:
            self.stalled = True

    def shutdown_done(self) -> None:
        self.shut = True

    def fail(self, reason: str) -> None:
        if self.failed is None:
            self.failed = reason

    @property
    def received(self) -> int:
        """Read from the source so far (bytes already ``pending`` at the start count as read)."""
        return self.moved + self.pending

    @property
    def room(self) -> int:
        return self.capacity - self.pending

    @property
    def done(self) -> bool:
        return self.shut or self.failed is not None

    @property
    def should_write(self) -> bool:
        return not self.done and self.pending > 0

    @property
    def should_shutdown(self) -> bool:
        return not self.done and self.eof and self.pending == 0

    @property
    def should_read(self) -> bool:
        return not self.done and not self.eof and self.room > 0 and not self.stalled


@dataclass
class Relay:
    """Both directions of one relayed connection: ``forward`` (towards the far end) and ``back``."""

    forward: Direction
    back: Direction

    @classmethod
    def with_capacity(cls, capacity: int) -> Relay:
        return cls(Direction(capacity), Direction(capacity))

    @property
    def failure(self) -> str | None:
        return self.forward.failed or self.back.failed

    @property
    def finished(self) -> bool:
        """Both ends of stream were passed on, or one direction failed (the connection is then reset)."""
        return self.failure is not None or (self.forward.shut and self.back.shut)
