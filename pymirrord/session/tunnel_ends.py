"""Counted tunnels: ends of stream as ``TunnelEnd`` messages, where the path drops half-closes.

A Kubernetes port-forward carries each of the session's tunnels as one websocket, and its protocol has no
half-close: a tunnel that ends one way would have to end both. So the port-forward (``ForwardedEnds``)
counts the bytes of each local connection it carries, and ``TunnelEnds`` translates between its counts
(from the stream's first byte, the tunnel's handshake included) and the lengths ``TunnelEnd`` names (the
tunnel's bytes after its handshake):

- the session's side of a tunnel ended (the app or the session half-closed it): the port-forward reports
  the count, and the agent hears ``TunnelEnd`` with the length;
- the agent's ``TunnelEnd``: the port-forward half-closes the local connection once it has passed that
  many bytes on, as the agent would have with a half-close.

Neither end of a counted tunnel half-closes it: the websocket closes when the agent closes the tunnel,
after both ways have ended. No I/O here: the port-forward and the message sender are given.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from pymirrord.protocol import session_to_agent as to_agent

Peer = tuple[str, int]
"""A local connection to the port-forward, by the address of the session's end (its ``getsockname``)."""
LocalEnd = Callable[[Peer, int], bool]
"""Hears that a local connection ended after that many bytes; True: it is a counted tunnel, so the
port-forward keeps the websocket open for the other way."""


class ForwardedEnds(Protocol):
    """What a port-forward offers for counted tunnels."""

    def count_ends(self, on_local_end: LocalEnd, on_closed: Callable[[Peer], None]) -> None:
        """From now on, a local connection's end goes to ``on_local_end`` first, and ``on_closed`` hears
        when the port-forward is done with it."""

    def end_downstream(self, peer: Peer, total: int) -> None:
        """Half-close the local connection ``peer`` once ``total`` bytes have gone to it."""


@dataclass
class _Tunnel:
    tunnel_id: int
    peer: Peer
    request_length: int
    answer_length: int
    local_done: bool = False
    agent_done: bool = False


class TunnelEnds:
    """The session's counted tunnels: which local connection each is, and its handshake's lengths."""

    def __init__(self, forward: ForwardedEnds, send: Callable[[to_agent.SessionToAgent], None]) -> None:
        self._forward = forward
        self._send = send
        self._by_peer: dict[Peer, _Tunnel] = {}
        self._by_id: dict[int, _Tunnel] = {}
        self._early: dict[int, int] = {}  # the agent's ends for tunnels whose handshake is not seen yet
        forward.count_ends(self._local_end, self._closed)

    def opened(self, tunnel_id: int, peer: Peer, request_length: int, answer_length: int) -> None:
        """A tunnel's handshake is done: its local connection is ``peer``."""
        tunnel = _Tunnel(tunnel_id, peer, request_length, answer_length)
        self._by_peer[peer] = tunnel
        self._by_id[tunnel_id] = tunnel
        early = self._early.pop(tunnel_id, None)
        if early is not None:
            self.agent_ended(tunnel_id, early)

    def agent_ended(self, tunnel_id: int, length: int) -> None:
        """The agent's ``TunnelEnd``."""
        tunnel = self._by_id.get(tunnel_id)
        if tunnel is None:
            self._early[tunnel_id] = length
            return
        tunnel.agent_done = True
        self._forget_if_over(tunnel)
        self._forward.end_downstream(tunnel.peer, tunnel.answer_length + length)

    def _local_end(self, peer: Peer, total: int) -> bool:
        tunnel = self._by_peer.get(peer)
        if tunnel is None:
            return False  # not a tunnel (the websocket to the agent, say): it ends both ways, as before
        tunnel.local_done = True
        self._forget_if_over(tunnel)
        self._send(to_agent.TunnelEnd(tunnel.tunnel_id, max(total - tunnel.request_length, 0)))
        return True

    def _closed(self, peer: Peer) -> None:
        """The port-forward is done with ``peer`` (a tunnel that failed, or was never used): nothing more
        comes for it."""
        tunnel = self._by_peer.pop(peer, None)
        if tunnel is not None:
            del self._by_id[tunnel.tunnel_id]

    def _forget_if_over(self, tunnel: _Tunnel) -> None:
        if tunnel.local_done and tunnel.agent_done:
            del self._by_peer[tunnel.peer]
            del self._by_id[tunnel.tunnel_id]

    @property
    def tracked(self) -> int:
        """Tunnels with a way still open, and ends heard early (for tests: nothing piles up)."""
        return len(self._by_id) + len(self._early)
