"""A callback due once, a while after it was first asked for: how the agent gathers what it tells sessions
(requests served, traffic seen) and sweeps its capture, so that a thousand asks make one call."""

from __future__ import annotations

import asyncio
from collections.abc import Callable


class Due:
    """``callback`` runs ``delay`` seconds after the first ``soon`` since it last ran; asking again while it
    is due changes nothing."""

    def __init__(self, delay: float, callback: Callable[[], None]) -> None:
        self._delay = delay
        self._callback = callback
        self._handle: asyncio.TimerHandle | None = None

    def soon(self) -> None:
        if self._handle is None:
            self._handle = asyncio.get_running_loop().call_later(self._delay, self._run)

    def cancel(self) -> None:
        """Not due any more (what it would have sent has nowhere to go)."""
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _run(self) -> None:
        self._handle = None  # first: the callback may ask again
        self._callback()
