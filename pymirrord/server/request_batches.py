"""How often the editor hears of the requests a session's app serves (pure: times are passed in).

A session under load serves thousands of requests a second; a notification for each would cost the helper
most of its time and flood the editor with updates nobody can read. ``RequestBatches`` lets the first
request after a quiet spell out at once (a developer sending one request sees it in the view as it
happens) and gathers the ones that follow within ``interval`` into one ``requests`` event at its end:
counts by mode, and the last entries (as many as the view shows). Every request is counted either way.
"""

from __future__ import annotations

from collections import deque
from typing import Any

INTERVAL = 0.1
"""Seconds between two notifications about one session's requests, at most."""


class RequestBatches:
    def __init__(self, session_id: str, last: int, interval: float = INTERVAL) -> None:
        self._session_id = session_id
        self._interval = interval
        self._counts: dict[str, int] = {}
        self._entries: deque[dict[str, Any]] = deque(maxlen=last)
        self._quiet_from = float("-inf")
        """Requests from this time on go out at once."""

    def add(self, event: dict[str, Any], now: float) -> dict[str, Any] | None:
        """A ``request`` event to send now, or None: it waits for ``flush`` (at the latest at ``due``)."""
        if now >= self._quiet_from and not self._counts:
            self._quiet_from = now + self._interval
            return event
        mode = str(event["mode"])
        self._counts[mode] = self._counts.get(mode, 0) + 1
        self._entries.append({key: value for key, value in event.items() if key not in ("sessionId", "kind")})
        return None

    def count(self, mode: str, number: int, now: float) -> None:
        """``number`` more requests of ``mode`` with no entry of their own (only the last few of a busy spell
        get one): they go out with the next ``requests`` event, which is due at once after a quiet spell."""
        if number <= 0:
            return
        if not self._counts and now > self._quiet_from:
            self._quiet_from = now  # after a quiet spell: due at once
        self._counts[mode] = self._counts.get(mode, 0) + number

    @property
    def due(self) -> float | None:
        """When ``flush`` should run, or None: nothing waits."""
        return self._quiet_from if self._counts else None

    def flush(self, now: float) -> dict[str, Any] | None:
        """The ``requests`` event of what waited (None: nothing did); the next interval starts now."""
        if not self._counts:
            return None
        event = {
            "sessionId": self._session_id,
            "kind": "requests",
            "counts": self._counts,
            "entries": list(self._entries),
        }
        self._counts = {}
        self._entries.clear()
        self._quiet_from = now + self._interval
        return event
