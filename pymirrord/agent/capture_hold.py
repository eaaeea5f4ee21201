"""When the captured mirror stops reading its capture for a while (sans-I/O).

A copy whose tunnel takes less than it is given is *stalled*. The agent could read on and keep what the
tunnel refused in its own memory, but what it would read next is already queued in the kernel, where it
costs nothing more to keep. So the capture *holds*: it reads nothing until every stalled copy's tunnel
took what it was given. In six alternated pairs of 1,000 MB uploads whose copy lagged, the agent spent
0.18-0.22 s of CPU per GB holding against 0.21-0.27 s reading on (the machine as a whole: 0.58-0.67 s
against 0.62-0.73), and the copy kept a pace of 2,910-3,417 MB/s against 2,727-3,160.

Holding delays every captured connection's copies, not only the stalled one's, so it is bounded:

- a stall that lasts ``HOLD_TIME`` (an app that stopped reading: a debugger at a breakpoint) ends the
  hold, and so does a kernel queue of ``HOLD_QUEUE`` bytes (an app slower than the pod's traffic);
- the copies that were stalled then *overflow*: the capture reads on, what their tunnels refuse waits in
  the agent's memory as before (up to ``COPY_LAG_LIMIT``, past which that copy alone is dropped), and they
  hold the capture again only once they caught up (their queue emptied).

``CaptureHold`` keeps that bookkeeping for any hashable copy; its owner pauses and resumes the capture as
it answers, and calls ``check`` every ``HOLD_CHECK`` seconds while it holds.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Generic, TypeVar

HOLD_TIME = 0.1
"""Seconds one stall may hold the capture: the other connections' copies wait at most this long for an
app that stopped reading."""
HOLD_QUEUE = 256 * 1024 * 1024
"""Bytes (counted as the kernel counts them, with their overhead) the capture's kernel queue may hold
before a hold ends: a quarter of what it can hold (``capture.RECEIVE_BUFFER``, doubled), so that a lag
that still grows has the rest. Held copies of 1,000 MB uploads at full speed queued at most 37-255 MB."""
HOLD_CHECK = 0.01
"""Seconds between looks at a hold's stalls and kernel queue."""

C = TypeVar("C", bound=Hashable)


class CaptureHold(Generic[C]):
    """Which copies hold the capture, and which may not hold it until they caught up."""

    def __init__(self, hold_time: float = HOLD_TIME, hold_queue: int = HOLD_QUEUE) -> None:
        self._hold_time = hold_time
        self._hold_queue = hold_queue
        self._stalled: dict[C, float] = {}
        """Stalled copies, with when each stall began."""
        self._overflowing: set[C] = set()

    @property
    def holding(self) -> bool:
        """Whether the capture should read nothing now."""
        return bool(self._stalled)

    @property
    def stalled(self) -> tuple[C, ...]:
        return tuple(self._stalled)

    def stall(self, copy: C, now: float, queued: int | None) -> bool:
        """``copy``'s tunnel refused some of what it was given, with ``queued`` bytes in the kernel's queue
        (None: unknown). Whether the capture should hold for it."""
        if copy in self._overflowing:
            return False
        if queued is None or queued >= self._hold_queue:
            # A queue that cannot be measured cannot be bounded: the copy keeps what it refused instead.
            self._overflowing.add(copy)
            return False
        self._stalled.setdefault(copy, now)
        return True

    def caught_up(self, copy: C) -> bool:
        """``copy`` holds nothing back any more (its tunnel took everything, or it ended). Whether the
        capture may read again."""
        self._overflowing.discard(copy)
        self._stalled.pop(copy, None)
        return not self._stalled

    def check(self, now: float, queued: int | None) -> bool:
        """The periodic look while holding: stalls that lasted ``HOLD_TIME``, or all of them once the kernel
        queue reached ``HOLD_QUEUE``, end and overflow. Whether the capture should still hold."""
        full = queued is None or queued >= self._hold_queue
        for copy, since in list(self._stalled.items()):
            if full or now - since >= self._hold_time:
                del self._stalled[copy]
                self._overflowing.add(copy)
        return self.holding
