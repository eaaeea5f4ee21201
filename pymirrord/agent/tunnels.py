"""The tunnels sessions open to the agent, waiting for the next connection each session serves.

A session names itself on a tunnel with the key the agent gave it in ``AgentHello``, numbers its tunnels
itself, and says what each is for (``USE_HEADER``):

- **incoming**: the agent picks one for a stolen connection and names it in ``NewConnection``;
- **outgoing**: the session picks one for a connection it asks the agent to make (``OutgoingConnect``),
  which may reach the agent before the tunnel itself does: ``claim`` waits for it a little.

A tunnel is used once: its end of stream is the connection's. A **counted** tunnel (one that passes a
Kubernetes port-forward, which carries no half-close) is never half-closed: each side announces the
length of what it sent (``TunnelEnd``) on the websocket instead, and ``Tunnels`` routes those announcements.
"""

from __future__ import annotations

import asyncio
import secrets
import socket
from collections.abc import Callable
from dataclasses import dataclass

from pymirrord.protocol import agent_to_session as to_session
from pymirrord.tunnel.pump import Moved, Tap, TunnelRelay

CLAIM_TIMEOUT = 10.0
"""How long an outgoing connection waits for the tunnel the session named (it was opened before)."""


@dataclass(frozen=True)
class IdleTunnel:
    tunnel_id: int
    sock: socket.socket
    rest: bytes
    """Bytes the session sent behind its handshake (none, from a well-behaved session)."""
    counted: bool = False
    """Its ends travel as ``TunnelEnd`` messages, not as half-closes."""


EndHeard = Callable[[int], None]
"""Hears the session's ``TunnelEnd`` for a tunnel in use: the length it sent."""


class Tunnels:
    """Each session's idle tunnels, by the key the session names itself with."""

    def __init__(self) -> None:
        self._sessions: dict[str, int] = {}
        self._incoming: dict[int, dict[int, IdleTunnel]] = {}
        self._outgoing: dict[int, dict[int, IdleTunnel]] = {}
        self._claims: dict[tuple[int, int], asyncio.Future[IdleTunnel | None]] = {}
        self._senders: dict[int, Callable[[to_session.AgentToSession], None]] = {}
        self._listeners: dict[tuple[int, int], EndHeard] = {}
        self._early_ends: dict[tuple[int, int], int] = {}

    def key_for(self, session: int, send: Callable[[to_session.AgentToSession], None] | None = None) -> str:
        """A new session's key (given out once, in ``AgentHello``); ``send`` reaches the session."""
        if send is not None:
            self._senders[session] = send
        key = secrets.token_urlsafe(24)
        self._sessions[key] = session
        self._incoming[session] = {}
        self._outgoing[session] = {}
        return key

    def add(
        self, key: str, tunnel_id: int, use: str, sock: socket.socket, rest: bytes, *, counted: bool = False
    ) -> bool:
        """A tunnel arrived; False if no live session has ``key`` or it is not well named (the caller
        closes it)."""
        session = self._sessions.get(key)
        if session is None or tunnel_id <= 0 or use not in ("incoming", "outgoing"):
            return False
        idle = (self._incoming if use == "incoming" else self._outgoing)[session]
        if tunnel_id in self._incoming[session] or tunnel_id in self._outgoing[session]:
            return False
        tunnel = IdleTunnel(tunnel_id, sock, rest, counted)
        claim = self._claims.pop((session, tunnel_id), None) if use == "outgoing" else None
        if claim is not None and not claim.done():
            claim.set_result(tunnel)
            return True
        idle[tunnel_id] = tunnel
        return True

    def give_back(self, session: int, tunnel: IdleTunnel) -> None:
        """An incoming tunnel taken but not used: idle again (closed if its session is gone)."""
        idle = self._incoming.get(session)
        if idle is None:
            tunnel.sock.close()
        else:
            idle[tunnel.tunnel_id] = tunnel

    def idle_incoming(self, session: int) -> int:
        return len(self._incoming.get(session, {}))

    def take(self, session: int) -> IdleTunnel | None:
        """One of ``session``'s idle incoming tunnels (the oldest), or None."""
        idle = self._incoming.get(session)
        if not idle:
            return None
        return idle.pop(next(iter(idle)))

    async def claim(self, session: int, tunnel_id: int) -> IdleTunnel | None:
        """The outgoing tunnel ``tunnel_id`` of ``session``, once it is here; None if it never comes."""
        idle = self._outgoing.get(session)
        if idle is None:
            return None
        tunnel = idle.pop(tunnel_id, None)
        if tunnel is not None:
            return tunnel
        waiter: asyncio.Future[IdleTunnel | None] = asyncio.get_running_loop().create_future()
        self._claims[(session, tunnel_id)] = waiter
        try:
            return await asyncio.wait_for(waiter, CLAIM_TIMEOUT)
        except asyncio.TimeoutError:
            return None
        finally:
            self._claims.pop((session, tunnel_id), None)

    def discard(self, session: int, tunnel_id: int) -> None:
        """The session's outgoing tunnel will not be used (its connection failed): it closes."""
        tunnel = self._outgoing.get(session, {}).pop(tunnel_id, None)
        if tunnel is not None:
            tunnel.sock.close()

    def end_sender(self, session: int, tunnel: IdleTunnel) -> Callable[[int], None] | None:
        """How the agent announces its end of a counted ``tunnel`` (None: it half-closes the tunnel)."""
        if not tunnel.counted:
            return None
        send = self._senders.get(session)

        def end(length: int) -> None:
            if send is not None:
                send(to_session.TunnelEnd(tunnel.tunnel_id, length))

        return end

    def relay(
        self,
        session: int,
        tunnel: IdleTunnel,
        near: socket.socket,
        *,
        tap_forward: Tap | None = None,
        on_moved: Moved | None = None,
    ) -> TunnelRelay:
        """A relay between ``near`` and ``tunnel`` (the bytes already read from it go first); a counted
        tunnel's ends travel as ``TunnelEnd`` both ways, until ``unlisten``. ``tap_forward`` and
        ``on_moved`` as in ``TunnelRelay``."""
        relay = TunnelRelay(
            near,
            tunnel.sock,
            head_back=tunnel.rest,
            end_far=self.end_sender(session, tunnel),
            tap_forward=tap_forward,
            on_moved=on_moved,
        )
        if tunnel.counted:
            self.listen_end(session, tunnel.tunnel_id, relay.far_ended)
        return relay

    def listen_end(self, session: int, tunnel_id: int, heard: EndHeard) -> None:
        """``heard`` gets the session's end of the tunnel in use (at once, if it came already)."""
        early = self._early_ends.pop((session, tunnel_id), None)
        if early is not None:
            heard(early)
        else:
            self._listeners[(session, tunnel_id)] = heard

    def unlisten(self, session: int, tunnel_id: int) -> None:
        """The tunnel is over: later ends for it are stale."""
        self._listeners.pop((session, tunnel_id), None)
        self._early_ends.pop((session, tunnel_id), None)

    def end_heard(self, session: int, tunnel_id: int, length: int) -> None:
        """The session's ``TunnelEnd``: to the tunnel's user, or kept until the tunnel is put to use."""
        heard = self._listeners.pop((session, tunnel_id), None)
        if heard is not None:
            heard(length)
        elif session in self._incoming and tunnel_id > 0:
            self._early_ends[(session, tunnel_id)] = length

    def idle_count(self, session: int) -> int:
        return len(self._incoming.get(session, {})) + len(self._outgoing.get(session, {}))

    def forget(self, session: int) -> None:
        """The session is gone: its idle tunnels close."""
        for pool in (self._incoming, self._outgoing):
            for tunnel in pool.pop(session, {}).values():
                tunnel.sock.close()
        for key in [key for key, owner in self._sessions.items() if owner == session]:
            del self._sessions[key]
        self._senders.pop(session, None)
        for table in (self._listeners, self._early_ends):
            for pair in [pair for pair in table if pair[0] == session]:
                del table[pair]
        for (owner, tunnel_id), waiter in list(self._claims.items()):
            if owner == session:
                if not waiter.done():
                    waiter.set_result(None)
                del self._claims[(owner, tunnel_id)]

    def close(self) -> None:
        for session in list(self._incoming):
            self.forget(session)
