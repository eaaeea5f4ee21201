"""Connections to sessions' local apps that the agent holds, per session and port (sans-I/O bookkeeping).

A session on the agent's machine can hand the agent connections to its local app (over the handover
channel). The agent then writes the requests that match that session's filter straight to the app and reads
the answer itself, as it does with the pod's app, instead of carrying both across the websocket and the
session. Connections are asked for one at a time when a request finds none idle; that request (and any
other until one arrives) takes the websocket path, so nothing ever waits for a connection. An ask that gets
no answer within ``ASK_TIMEOUT`` (the session could not connect, or does not hand sockets over) no longer
counts, so the agent asks again later rather than never.

``T`` is whatever the shell keeps per connection; this module only counts, orders and forgets.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

T = TypeVar("T")

IDLE_LIMIT = 64
"""Idle connections kept per session and port; one more is closed instead of kept."""
ASKS_IN_FLIGHT = 4
"""Asks for a connection that may be unanswered at once, per session and port."""
ASK_TIMEOUT = 2.0
"""Seconds after which an unanswered ask is written off."""

Key = tuple[int, int]
"""(session, port)."""


@dataclass
class _Slot(Generic[T]):
    idle: list[T] = field(default_factory=list)
    asks: list[float] = field(default_factory=list)  # when each unanswered ask was sent


class AppConnections(Generic[T]):
    """Idle app connections and pending asks; the caller closes whatever a method hands back to it."""

    def __init__(
        self,
        *,
        idle_limit: int = IDLE_LIMIT,
        asks_in_flight: int = ASKS_IN_FLIGHT,
        ask_timeout: float = ASK_TIMEOUT,
    ) -> None:
        self._idle_limit = idle_limit
        self._asks_in_flight = asks_in_flight
        self._ask_timeout = ask_timeout
        self._slots: dict[Key, _Slot[T]] = {}

    def take(self, key: Key, now: float, usable: Callable[[T], bool]) -> tuple[T | None, list[T], bool]:
        """An idle connection for ``key`` (None if there is none), the unusable ones met on the way (to
        close), and whether to ask the session for one more now."""
        slot = self._slots.setdefault(key, _Slot())
        stale: list[T] = []
        while slot.idle:
            connection = slot.idle.pop()
            if usable(connection):
                return connection, stale, False
            stale.append(connection)
        slot.asks = [sent for sent in slot.asks if now - sent < self._ask_timeout]
        if len(slot.asks) >= self._asks_in_flight:
            return None, stale, False
        slot.asks.append(now)
        return None, stale, True

    def arrived(self, key: Key, connection: T, *, unasked: bool = False) -> bool:
        """A connection the session handed over; False (close it) when it is not wanted. ``unasked``: the
        session sent it before any ask (the first tunnel to its app), and it is kept all the same."""
        slot = self._slots.setdefault(key, _Slot()) if unasked else self._slots.get(key)
        if slot is None:
            return False  # the session or its port is gone, or nobody asked
        if slot.asks:
            slot.asks.pop(0)
        return self.put(key, connection)

    def put(self, key: Key, connection: T) -> bool:
        """Keep ``connection`` idle for the next request; False (close it) when enough are idle."""
        slot = self._slots.get(key)
        if slot is None or len(slot.idle) >= self._idle_limit:
            return False
        slot.idle.append(connection)
        return True

    def forget_port(self, session: int, port: int) -> list[T]:
        """The session's port is no longer subscribed: its idle connections, to close."""
        slot = self._slots.pop((session, port), None)
        return [] if slot is None else slot.idle

    def forget_session(self, session: int) -> list[T]:
        """The session left: every idle connection of it, to close."""
        gone: list[T] = []
        for key in [key for key in self._slots if key[0] == session]:
            gone += self._slots.pop(key).idle
        return gone

    def idle(self, key: Key) -> int:
        slot = self._slots.get(key)
        return 0 if slot is None else len(slot.idle)
