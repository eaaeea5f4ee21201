"""Which sessions want the pod's incoming connections on which ports, and how (sans-I/O).

``Subscriptions`` is fed subscribe/unsubscribe/session-gone events and answers with the redirect rules the
agent must add or remove (a port is redirected while at least one session subscribes it) and, for every new
connection, who gets it: at most one stealing session serves it, every mirroring session gets a copy.
Sessions are plain ints chosen by the caller.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pymirrord.protocol.types import Mode

MIN_PORT = 1
MAX_PORT = 65535


@dataclass(frozen=True)
class AddRedirect:
    """Start redirecting ``port`` to the agent: it got its first subscriber."""

    port: int


@dataclass(frozen=True)
class RemoveRedirect:
    """Stop redirecting ``port``: its last subscriber left, the pod's app serves it alone again."""

    port: int


RuleAction = AddRedirect | RemoveRedirect


@dataclass(frozen=True)
class SubscribeOutcome:
    """A subscribe's answer: ``error`` is None when it took effect; ``actions`` are the rule changes due."""

    error: str | None
    actions: tuple[RuleAction, ...] = ()


@dataclass(frozen=True)
class Route:
    """Who gets a new connection on a port.

    ``stealer`` serves it (None: the pod's app does); each of ``mirrors`` gets a copy of the client's bytes.
    ``handover``: the stealer takes the client's socket itself, which is possible only without mirrors.
    """

    stealer: int | None
    mirrors: tuple[int, ...]
    handover: bool = False

    @property
    def subscribed(self) -> bool:
        return self.stealer is not None or bool(self.mirrors)


NOBODY = Route(None, ())


@dataclass
class _Port:
    # Insertion-ordered, so copies go out in subscription order (predictable logs and tests).
    modes: dict[int, Mode] = field(default_factory=dict)
    handover: set[int] = field(default_factory=set)  # sessions that take stolen sockets

    def stealer(self) -> int | None:
        for session, mode in self.modes.items():
            if mode is Mode.STEAL:
                return session
        return None


class Subscriptions:
    """Per pod port, the subscribed sessions and their mode."""

    def __init__(self) -> None:
        self._ports: dict[int, _Port] = {}

    def subscribe(self, session: int, port: int, mode: Mode, handover: bool = False) -> SubscribeOutcome:
        """Subscribe ``session`` to ``port`` in ``mode``; subscribing again replaces the earlier mode.

        ``handover``: the session takes stolen connections of the port as sockets.
        """
        if not MIN_PORT <= port <= MAX_PORT:
            return SubscribeOutcome(f"port {port} is not a TCP port (1-{MAX_PORT})")
        entry = self._ports.get(port)
        if mode is Mode.STEAL and entry is not None:
            stealer = entry.stealer()
            if stealer is not None and stealer != session:
                return SubscribeOutcome(
                    f"port {port} is already stolen by another session; "
                    "only one session at a time can steal a port (mirroring it is still possible)"
                )
        if entry is None:
            entry = self._ports[port] = _Port()
            actions: tuple[RuleAction, ...] = (AddRedirect(port),)
        else:
            actions = ()
        entry.modes[session] = mode
        if handover:
            entry.handover.add(session)
        else:
            entry.handover.discard(session)
        return SubscribeOutcome(None, actions)

    def unsubscribe(self, session: int, port: int) -> tuple[RuleAction, ...]:
        """Drop ``session``'s subscription of ``port``, if any."""
        entry = self._ports.get(port)
        if entry is None or entry.modes.pop(session, None) is None:
            return ()
        entry.handover.discard(session)
        if entry.modes:
            return ()
        del self._ports[port]
        return (RemoveRedirect(port),)

    def session_gone(self, session: int) -> tuple[RuleAction, ...]:
        """Drop every subscription of a session that disconnected."""
        actions: list[RuleAction] = []
        for port in [port for port, entry in self._ports.items() if session in entry.modes]:
            actions.extend(self.unsubscribe(session, port))
        return tuple(actions)

    def route(self, port: int) -> Route:
        """Who gets a connection that arrives on ``port`` now."""
        entry = self._ports.get(port)
        if entry is None:
            return NOBODY
        stealer = entry.stealer()
        mirrors = tuple(session for session, mode in entry.modes.items() if mode is Mode.MIRROR)
        return Route(stealer, mirrors, stealer in entry.handover and not mirrors)

    def mode_of(self, session: int, port: int) -> Mode | None:
        entry = self._ports.get(port)
        return None if entry is None else entry.modes.get(session)

    @property
    def ports(self) -> tuple[int, ...]:
        """The ports with at least one subscriber (those that should be redirected)."""
        return tuple(self._ports)
