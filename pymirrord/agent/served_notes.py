"""What the agent tells a session of the requests it wrote to that session's app connections itself (no I/O).

A session that counts its requests (an editor's sessions view) asks to hear of these. Under load they come
by the thousand each second, so each costs only a count and a place in a short list here; what gathered
leaves as one ``HttpRequestsServed`` per session when the agent's timer says so.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from pymirrord.protocol.agent_to_session import SERVED_LISTED, HttpRequestsServed, ServedRequest


@dataclass
class _Gathered:
    count: int = 0
    last: deque[ServedRequest] = field(default_factory=lambda: deque(maxlen=SERVED_LISTED))


class ServedNotes:
    def __init__(self) -> None:
        self._gathered: dict[int, _Gathered] = {}

    def __bool__(self) -> bool:
        return bool(self._gathered)

    def add(self, session: int, request: ServedRequest) -> None:
        gathered = self._gathered.get(session)
        if gathered is None:
            gathered = self._gathered[session] = _Gathered()
        gathered.count += 1
        gathered.last.append(request)

    def take(self) -> dict[int, HttpRequestsServed]:
        """What gathered since the last ``take``, by session; nothing is kept."""
        gathered, self._gathered = self._gathered, {}
        return {
            session: HttpRequestsServed(notes.count, tuple(notes.last)) for session, notes in gathered.items()
        }

    def forget(self, session: int) -> None:
        """The session left: what gathered for it goes nowhere."""
        self._gathered.pop(session, None)
