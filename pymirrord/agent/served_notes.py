"""What the agent tells a session of the requests it wrote to that session's app connections itself (no I/O).

A session that counts its requests (an editor's sessions view) asks to hear of these. Under load they come
by the thousand each second, so each costs only a count and a place in a short list (``Tally``); what
gathered leaves as one ``HttpRequestsServed`` per session when the agent's timer says so.
"""

from __future__ import annotations

from collections import deque
from typing import Generic, TypeVar

from pymirrord.protocol.agent_to_session import SERVED_LISTED, HttpRequestsServed, ServedRequest

T = TypeVar("T")


class Tally(Generic[T]):
    """How many there were, and the last ``SERVED_LISTED`` of them, oldest first."""

    def __init__(self) -> None:
        self.count = 0
        self.last: deque[T] = deque(maxlen=SERVED_LISTED)

    def add(self, item: T) -> None:
        self.count += 1
        self.last.append(item)


class ServedNotes:
    def __init__(self) -> None:
        self._gathered: dict[int, Tally[ServedRequest]] = {}

    def __bool__(self) -> bool:
        return bool(self._gathered)

    def add(self, session: int, request: ServedRequest) -> None:
        tally = self._gathered.get(session)
        if tally is None:
            tally = self._gathered[session] = Tally()
        tally.add(request)

    def take(self) -> dict[int, HttpRequestsServed]:
        """What gathered since the last ``take``, by session; nothing is kept."""
        gathered, self._gathered = self._gathered, {}
        return {
            session: HttpRequestsServed(tally.count, tuple(tally.last)) for session, tally in gathered.items()
        }

    def forget(self, session: int) -> None:
        """The session left: what gathered for it goes nowhere."""
        self._gathered.pop(session, None)
