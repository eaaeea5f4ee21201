"""``TunnelEnds``: a port-forward's per-connection byte counts (handshake included) and ``TunnelEnd``
lengths (handshake excluded), translated both ways against a recording port-forward."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import pytest

from pymirrord.protocol import session_to_agent as to_agent
from pymirrord.session.tunnel_ends import LocalEnd, Peer, TunnelEnds

PEER: Peer = ("127.0.0.1", 40001)
OTHER: Peer = ("127.0.0.1", 40002)
REQUEST, ANSWER = 230, 129
"""A tunnel's handshake: the request the session sent, the answer the agent gave."""


@dataclass
class Forwarded:
    """A port-forward that records what ``TunnelEnds`` asks of it (a ``ForwardedEnds``)."""

    on_local_end: LocalEnd | None = None
    on_closed: Callable[[Peer], None] | None = None
    downstream_ends: list[tuple[Peer, int]] = field(default_factory=list)

    def count_ends(self, on_local_end: LocalEnd, on_closed: Callable[[Peer], None]) -> None:
        self.on_local_end = on_local_end
        self.on_closed = on_closed

    def end_downstream(self, peer: Peer, total: int) -> None:
        self.downstream_ends.append((peer, total))

    def local_end(self, peer: Peer, total: int) -> bool:
        """The local connection ``peer`` ended after ``total`` bytes, as the port-forward reports it."""
        assert self.on_local_end is not None, "TunnelEnds did not ask for counted ends"
        return self.on_local_end(peer, total)


@dataclass
class World:
    forwarded: Forwarded
    sent: list[to_agent.SessionToAgent]
    ends: TunnelEnds


@pytest.fixture
def world() -> World:
    forwarded = Forwarded()
    sent: list[to_agent.SessionToAgent] = []
    return World(forwarded, sent, TunnelEnds(forwarded, sent.append))


def test_the_port_forward_is_asked_for_counted_ends_at_once(world: World) -> None:
    """Creating ``TunnelEnds`` hands the port-forward its callback."""
    assert world.forwarded.on_local_end is not None


def test_the_local_end_of_a_tunnel_is_announced_without_its_handshake(world: World) -> None:
    """The port-forward's count minus the request's length goes to the agent; True keeps the websocket."""
    world.ends.opened(3, PEER, REQUEST, ANSWER)
    assert world.forwarded.local_end(PEER, REQUEST + 500)
    assert world.sent == [to_agent.TunnelEnd(3, 500)]
    assert world.forwarded.downstream_ends == []


def test_a_local_end_right_after_the_handshake_announces_zero(world: World) -> None:
    """A tunnel that carried nothing past its handshake announces length 0."""
    world.ends.opened(5, PEER, REQUEST, ANSWER)
    assert world.forwarded.local_end(PEER, REQUEST)
    assert world.sent == [to_agent.TunnelEnd(5, 0)]


def test_the_local_end_of_an_unknown_connection_is_not_a_tunnels(world: World) -> None:
    """A connection that is no registered tunnel (the control websocket, say) ends as before: False."""
    world.ends.opened(3, PEER, REQUEST, ANSWER)
    assert not world.forwarded.local_end(OTHER, 1000)
    assert world.sent == []


def test_the_agents_end_half_closes_the_local_connection_after_the_answer_and_the_length(
    world: World,
) -> None:
    """``TunnelEnd(id, n)`` from the agent: the local connection ends after its answer and n bytes."""
    world.ends.opened(3, PEER, REQUEST, ANSWER)
    world.ends.opened(5, OTHER, REQUEST + 1, ANSWER + 1)
    world.ends.agent_ended(5, 77)
    assert world.forwarded.downstream_ends == [(OTHER, ANSWER + 1 + 77)]
    assert world.sent == []


def test_an_agents_end_before_the_tunnel_is_opened_is_applied_when_it_is(world: World) -> None:
    """The agent may use (and end) a tunnel before the session has seen its handshake finish."""
    world.ends.agent_ended(3, 40)
    assert world.forwarded.downstream_ends == []
    assert world.ends.tracked == 1
    world.ends.opened(3, PEER, REQUEST, ANSWER)
    assert world.forwarded.downstream_ends == [(PEER, ANSWER + 40)]


@pytest.mark.parametrize("first", ["local", "agent", "agent-before-opened"])
def test_nothing_stays_tracked_once_both_ends_were_heard(world: World, first: str) -> None:
    """Both ends heard, in any order: the tunnel is forgotten, and its peer address is free again."""
    if first == "agent-before-opened":
        world.ends.agent_ended(3, 40)
    world.ends.opened(3, PEER, REQUEST, ANSWER)
    if first == "agent":
        world.ends.agent_ended(3, 40)
    assert world.ends.tracked == 1
    assert world.forwarded.local_end(PEER, REQUEST + 9)
    if first == "local":
        assert world.ends.tracked == 1
        world.ends.agent_ended(3, 40)
    assert world.ends.tracked == 0
    assert world.sent == [to_agent.TunnelEnd(3, 9)]
    assert world.forwarded.downstream_ends == [(PEER, ANSWER + 40)]
    assert not world.forwarded.local_end(PEER, 10)  # a later connection from the same address is not it


def test_one_end_heard_keeps_the_tunnel_tracked(world: World) -> None:
    """A tunnel with one way still open stays known: its other end must still be translated."""
    world.ends.opened(3, PEER, REQUEST, ANSWER)
    world.ends.opened(5, OTHER, REQUEST, ANSWER)
    assert world.forwarded.local_end(PEER, REQUEST)
    world.ends.agent_ended(5, 0)
    assert world.ends.tracked == 2


def test_a_local_connection_the_port_forward_is_done_with_is_forgotten(world: World) -> None:
    """A tunnel that failed (or was closed unused) never hears its other end: its close forgets it."""
    world.ends.opened(3, PEER, REQUEST, ANSWER)
    world.forwarded.local_end(PEER, REQUEST + 5)
    assert world.ends.tracked == 1
    assert world.forwarded.on_closed is not None
    world.forwarded.on_closed(PEER)
    assert world.ends.tracked == 0
    world.forwarded.on_closed(PEER)  # again, or for a connection that is no tunnel: nothing happens
    world.forwarded.on_closed(OTHER)
    assert world.ends.tracked == 0
