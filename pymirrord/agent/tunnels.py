"""The tunnels sessions open to the agent, waiting for the next connection each session serves.

A session names itself on a tunnel with the key the agent gave it in ``AgentHello``, numbers its tunnels
itself, and says what each is for (``USE_HEADER``):

- **incoming**: the agent picks one for a stolen connection and names it in ``NewConnection``;
- **outgoing**: the session picks one for a connection it asks the agent to make (``OutgoingConnect``),
  which may reach the agent before the tunnel itself does: ``claim`` waits for it a little.

A tunnel is used once: its end of stream is the connection's.
"""

from __future__ import annotations

import asyncio
import secrets
import socket
from dataclasses import dataclass

CLAIM_TIMEOUT = 10.0
"""How long an outgoing connection waits for the tunnel the session named (it was opened before)."""


@dataclass(frozen=True)
class IdleTunnel:
    tunnel_id: int
    sock: socket.socket
    rest: bytes
    """Bytes the session sent behind its handshake (none, from a well-behaved session)."""


class Tunnels:
    """Each session's idle tunnels, by the key the session names itself with."""

    def __init__(self) -> None:
        self._sessions: dict[str, int] = {}
        self._incoming: dict[int, dict[int, IdleTunnel]] = {}
        self._outgoing: dict[int, dict[int, IdleTunnel]] = {}
        self._claims: dict[tuple[int, int], asyncio.Future[IdleTunnel | None]] = {}

    def key_for(self, session: int) -> str:
        """A new session's key (given out once, in ``AgentHello``)."""
        key = secrets.token_urlsafe(24)
        self._sessions[key] = session
        self._incoming[session] = {}
        self._outgoing[session] = {}
        return key

    def add(self, key: str, tunnel_id: int, use: str, sock: socket.socket, rest: bytes) -> bool:
        """A tunnel arrived; False if no live session has ``key`` or it is not well named (the caller
        closes it)."""
        session = self._sessions.get(key)
        if session is None or tunnel_id <= 0 or use not in ("incoming", "outgoing"):
            return False
        idle = (self._incoming if use == "incoming" else self._outgoing)[session]
        if tunnel_id in self._incoming[session] or tunnel_id in self._outgoing[session]:
            return False
        tunnel = IdleTunnel(tunnel_id, sock, rest)
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

    def idle_count(self, session: int) -> int:
        return len(self._incoming.get(session, {})) + len(self._outgoing.get(session, {}))

    def forget(self, session: int) -> None:
        """The session is gone: its idle tunnels close."""
        for pool in (self._incoming, self._outgoing):
            for tunnel in pool.pop(session, {}).values():
                tunnel.sock.close()
        for key in [key for key, owner in self._sessions.items() if owner == session]:
            del self._sessions[key]
        for (owner, tunnel_id), waiter in list(self._claims.items()):
            if owner == session:
                if not waiter.done():
                    waiter.set_result(None)
                del self._claims[(owner, tunnel_id)]

    def close(self) -> None:
        for session in list(self._incoming):
            self.forget(session)
