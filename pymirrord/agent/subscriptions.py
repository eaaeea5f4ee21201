"""Which sessions want the pod's incoming connections on which ports, and how (sans-I/O).

``Subscriptions`` is fed subscribe/unsubscribe/session-gone events and answers with the redirect rules the
agent must add or remove (a port is redirected while at least one session subscribes it) and, for every new
connection, who gets it: at most one stealing session serves it, every mirroring session gets a copy.
Sessions are plain ints chosen by the caller.

With ``capture_mirrors`` a port that sessions only mirror is not redirected: the agent captures its
segments instead (``captured_ports``), and the pod's app serves its clients with nothing in between. The
port is redirected once a session steals it or filters its HTTP, and no longer when only mirrors remain.

A subscription may carry an HTTP filter. While a port has a filtered subscriber its connections are read
as HTTP and each request is routed on its own (``Route.http``): the first filtered stealer whose filter
matches serves it, filtered mirrors that match get a copy, unfiltered mirrors get every request; the pod's
app serves what no stealer takes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pymirrord.errors import PymirrordError
from pymirrord.http_filter import CompiledFilter, compile_filter
from pymirrord.protocol.http_types import HttpFilterSpec
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
class HttpSubscriber:
    """A session that receives a filtered port's HTTP requests: those ``filter`` matches (None: all)."""

    session: int
    mode: Mode
    filter: CompiledFilter | None


@dataclass(frozen=True)
class Route:
    """Who gets a new connection on a port.

    ``stealer`` serves it (None: the pod's app does); each of ``mirrors`` gets a copy of the client's bytes.
    ``handover``: the stealer takes the client's socket itself, which is possible only without mirrors.
    ``http``: the port is HTTP-filtered; the connection is read as HTTP and each request routed among these
    subscribers (``stealer`` and ``mirrors`` are then empty).
    """

    stealer: int | None
    mirrors: tuple[int, ...]
    handover: bool = False
    http: tuple[HttpSubscriber, ...] = ()

    @property
    def subscribed(self) -> bool:
        return self.stealer is not None or bool(self.mirrors) or bool(self.http)

    @property
    def mirror_only(self) -> bool:
        """Sessions only mirror the port: nobody steals it or filters its HTTP."""
        return self.stealer is None and not self.http and bool(self.mirrors)


NOBODY = Route(None, ())


@dataclass
class _Port:
    # Insertion-ordered, so copies go out in subscription order (predictable logs and tests).
    modes: dict[int, Mode] = field(default_factory=dict)
    handover: set[int] = field(default_factory=set)  # sessions that take stolen sockets
    filters: dict[int, CompiledFilter] = field(default_factory=dict)

    def stealer(self) -> int | None:
        """The session that steals the port's connections whole (without a filter)."""
        for session, mode in self.modes.items():
            if mode is Mode.STEAL and session not in self.filters:
                return session
        return None

    def filtered_stealers(self) -> list[int]:
        return [s for s, mode in self.modes.items() if mode is Mode.STEAL and s in self.filters]


class Subscriptions:
    """Per pod port, the subscribed sessions and their mode."""

    def __init__(self, *, capture_mirrors: bool = False) -> None:
        self._ports: dict[int, _Port] = {}
        self._routes: dict[int, Route] = {}
        """``route``'s answers since the last change: a filtered port asks for one per request."""
        self._capture_mirrors = capture_mirrors
        self._redirected: set[int] = set()

    def _redirect_changes(self, port: int) -> tuple[RuleAction, ...]:
        """The rule change ``port`` needs after a change of its subscribers."""
        entry = self._ports.get(port)
        wanted = entry is not None and (
            not self._capture_mirrors or entry.stealer() is not None or bool(entry.filters)
        )
        if wanted and port not in self._redirected:
            self._redirected.add(port)
            return (AddRedirect(port),)
        if not wanted and port in self._redirected:
            self._redirected.discard(port)
            return (RemoveRedirect(port),)
        return ()

    @property
    def captured_ports(self) -> tuple[int, ...]:
        """The subscribed ports that are captured rather than redirected (mirrored only)."""
        if not self._capture_mirrors:
            return ()
        return tuple(port for port in self._ports if port not in self._redirected)

    def subscribe(
        self,
        session: int,
        port: int,
        mode: Mode,
        handover: bool = False,
        http_filter: HttpFilterSpec | None = None,
    ) -> SubscribeOutcome:
        """Subscribe ``session`` to ``port`` in ``mode``; subscribing again replaces the earlier mode.

        ``handover``: the session takes stolen connections of the port as sockets (never with a filter).
        ``http_filter``: only the HTTP requests it matches; several filtered stealers may share a port.
        """
        if not MIN_PORT <= port <= MAX_PORT:
            return SubscribeOutcome(f"port {port} is not a TCP port (1-{MAX_PORT})")
        self._routes.clear()
        compiled: CompiledFilter | None = None
        if http_filter is not None:
            try:
                compiled = compile_filter(http_filter)
            except PymirrordError as error:
                return SubscribeOutcome(f"the HTTP filter for port {port} is invalid: {error}")
        entry = self._ports.get(port)
        if mode is Mode.STEAL and entry is not None:
            stealer = entry.stealer()
            if stealer is not None and stealer != session:
                return SubscribeOutcome(
                    f"port {port} is already stolen by another session; "
                    "only one session at a time can steal a port (mirroring it is still possible)"
                )
            others = [s for s in entry.filtered_stealers() if s != session]
            if compiled is None and others:
                return SubscribeOutcome(
                    f"port {port} is stolen with HTTP filters by other sessions; "
                    "stealing it without a filter would take their requests (add an http_filter)"
                )
        if entry is None:
            entry = self._ports[port] = _Port()
        entry.modes[session] = mode
        if compiled is not None:
            entry.filters[session] = compiled
            handover = False  # the agent must read each request to route it
        else:
            entry.filters.pop(session, None)
        if handover:
            entry.handover.add(session)
        else:
            entry.handover.discard(session)
        return SubscribeOutcome(None, self._redirect_changes(port))

    def unsubscribe(self, session: int, port: int) -> tuple[RuleAction, ...]:
        """Drop ``session``'s subscription of ``port``, if any."""
        self._routes.clear()
        entry = self._ports.get(port)
        if entry is None or entry.modes.pop(session, None) is None:
            return ()
        entry.handover.discard(session)
        entry.filters.pop(session, None)
        if not entry.modes:
            del self._ports[port]
        return self._redirect_changes(port)

    def session_gone(self, session: int) -> tuple[RuleAction, ...]:
        """Drop every subscription of a session that disconnected."""
        actions: list[RuleAction] = []
        for port in [port for port, entry in self._ports.items() if session in entry.modes]:
            actions.extend(self.unsubscribe(session, port))
        return tuple(actions)

    def route(self, port: int) -> Route:
        """Who gets a connection that arrives on ``port`` now."""
        route = self._routes.get(port)
        if route is None:
            route = self._routes[port] = self._route(port)
        return route

    def _route(self, port: int) -> Route:
        entry = self._ports.get(port)
        if entry is None:
            return NOBODY
        if entry.filters:
            return Route(
                None,
                (),
                http=tuple(
                    HttpSubscriber(session, mode, entry.filters.get(session))
                    for session, mode in entry.modes.items()
                ),
            )
        stealer = entry.stealer()
        mirrors = tuple(session for session, mode in entry.modes.items() if mode is Mode.MIRROR)
        return Route(stealer, mirrors, stealer in entry.handover and not mirrors)

    def mode_of(self, session: int, port: int) -> Mode | None:
        entry = self._ports.get(port)
        return None if entry is None else entry.modes.get(session)

    @property
    def ports(self) -> tuple[int, ...]:
        """The ports with at least one subscriber."""
        return tuple(self._ports)
