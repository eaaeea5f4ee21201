"""Per-connection flow control, without I/O: when to pause one connection's source, when to resume it, and
when a copy is dropped instead.

A relay moves many connections' bytes on one task (the session's agent pump, an agent's message loop), so
it must never wait for one slow reader: it writes at once and reports how much now waits for that reader
(``grew``). Past ``high`` the connection's source alone is paused (its peer is told to stop reading it);
once the reader has taken all but ``low`` (``shrank``) the source resumes. Memory per connection stays near
``high`` plus what was already on its way when the pause went out. A copy (mirrored traffic) must never
slow its source, so it is never paused: past ``copy_limit`` it is dropped instead.
"""

from __future__ import annotations

from enum import Enum

COPY_LAG_LIMIT = 64 * 1024 * 1024
"""Bytes a mirrored copy may lag behind the pod's traffic before it is dropped, on every path (a copy's
tunnel, the session's connection to the app). An app that merely runs slower than the pod's for a moment
(two apps and the client sharing a laptop's cores) can fall behind by tens of megabytes in a bulk upload:
at 16 MiB such copies were dropped under load. One that stopped reading (a debugger at a breakpoint) still
costs at most this much per connection."""


class Verdict(Enum):
    PAUSE = "pause"
    """Tell the connection's source to stop sending."""
    RESUME = "resume"
    """Tell the connection's source to send again."""
    DROP = "drop"
    """The copy fell too far behind: end it."""


class FlowControl:
    """The paused connections of one relay direction, keyed by connection (or request) id."""

    def __init__(self, high: int, low: int, copy_limit: int | None = None) -> None:
        if not 0 <= low < high:
            raise ValueError(f"flow control needs 0 <= low < high, got low={low} high={high}")
        if copy_limit is not None and copy_limit < high:
            raise ValueError(f"a copy's limit ({copy_limit}) must not be below the high-water mark ({high})")
        self.high = high
        self.low = low
        self.copy_limit = copy_limit
        self._paused: set[int] = set()
        self.pauses = 0
        """How many times a source was paused (for tests and statistics)."""

    def paused(self, key: int) -> bool:
        return key in self._paused

    def grew(self, key: int, backlog: int, *, copy: bool = False) -> Verdict | None:
        """``backlog`` bytes wait for ``key``'s reader after a write; what to do about it, if anything."""
        if copy:
            if self.copy_limit is not None and backlog > self.copy_limit:
                self._paused.discard(key)
                return Verdict.DROP
            return None
        if backlog > self.high and key not in self._paused:
            self._paused.add(key)
            self.pauses += 1
            return Verdict.PAUSE
        return None

    def shrank(self, key: int, backlog: int) -> Verdict | None:
        """The reader took bytes and ``backlog`` are left: ``RESUME`` once a paused one is low enough."""
        if key in self._paused and backlog <= self.low:
            self._paused.discard(key)
            return Verdict.RESUME
        return None

    def forget(self, key: int) -> None:
        """The connection is over; a later one may reuse nothing of it."""
        self._paused.discard(key)

    def __len__(self) -> int:
        return len(self._paused)
