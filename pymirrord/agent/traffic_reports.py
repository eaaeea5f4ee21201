"""What the agent tells a session of the traffic of the connections it steals for it through tunnels (no I/O).

A session that shows its traffic (an editor's sessions view) asks for this in its ``ClientHello``: the
tunnel then goes to the app without passing the session, so the agent counts each connection's bytes as
its relay moves them and finds the request heads in the client's bytes (``pymirrord.http_sniffer``).
Counting costs an addition per chunk moved and a place in a short list per request; what gathered leaves
as one ``TrafficReport`` per session when the agent's timer says so, or when a connection ends.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pymirrord.agent.served_notes import Tally
from pymirrord.protocol.agent_to_session import ConnectionTraffic, SeenRequest, TrafficReport


@dataclass
class _Gathered:
    bytes: dict[int, list[int]] = field(default_factory=dict)
    """Connection -> [to the app, from the app]."""
    requests: Tally[SeenRequest] = field(default_factory=Tally)


class TrafficReports:
    def __init__(self) -> None:
        self._gathered: dict[int, _Gathered] = {}

    def __bool__(self) -> bool:
        return bool(self._gathered)

    def _of(self, session: int) -> _Gathered:
        gathered = self._gathered.get(session)
        if gathered is None:
            gathered = self._gathered[session] = _Gathered()
        return gathered

    def moved(self, session: int, connection_id: int, to_app: bool, count: int) -> None:
        """``count`` bytes of the connection went towards the app (``to_app``) or back to the client."""
        moved = self._of(session).bytes
        counts = moved.get(connection_id)
        if counts is None:  # (not setdefault: that would make a list on every chunk moved)
            counts = moved[connection_id] = [0, 0]
        counts[0 if to_app else 1] += count

    def request(self, session: int, connection_id: int, method: str, target: str) -> None:
        self._of(session).requests.add(SeenRequest(connection_id, method, target))

    def take(self, session: int | None = None) -> dict[int, TrafficReport]:
        """What gathered since the last ``take``, by session (only ``session``'s, if given); nothing of it
        is kept."""
        if session is None:
            taken, self._gathered = self._gathered, {}
        else:
            one = self._gathered.pop(session, None)
            taken = {} if one is None else {session: one}
        return {
            session: TrafficReport(
                tuple(
                    ConnectionTraffic(connection_id, to_app, from_app)
                    for connection_id, (to_app, from_app) in gathered.bytes.items()
                ),
                gathered.requests.count,
                tuple(gathered.requests.last),
            )
            for session, gathered in taken.items()
        }

    def forget(self, session: int) -> None:
        """The session left: what gathered for it goes nowhere."""
        self._gathered.pop(session, None)
