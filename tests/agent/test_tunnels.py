"""The agent's registry of idle tunnels, by session key: add, take, claim, forget; and the ends of counted
tunnels (``TunnelEnd`` both ways)."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Coroutine, Iterator
from typing import Any, TypeVar

import pytest

from pymirrord.agent import tunnels as tunnels_module
from pymirrord.agent.tunnels import Tunnels
from pymirrord.protocol import agent_to_session as to_session

TIMEOUT = 10.0
T = TypeVar("T")


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(asyncio.wait_for(coro, TIMEOUT))


@pytest.fixture
def sockets() -> Iterator[list[socket.socket]]:
    """Sockets for tunnels (the far ends are kept so that closing shows as an end of stream)."""
    made: list[socket.socket] = []
    yield made
    for sock in made:
        sock.close()


def new_sock(made: list[socket.socket]) -> tuple[socket.socket, socket.socket]:
    mine, far = socket.socketpair()
    made += [mine, far]
    return mine, far


def is_closed(sock: socket.socket) -> bool:
    return sock.fileno() == -1


def test_each_session_gets_its_own_key() -> None:
    tunnels = Tunnels()
    keys = {tunnels.key_for(session) for session in (1, 2, 3)}
    assert len(keys) == 3
    assert all(len(key) >= 24 for key in keys)


def test_a_tunnel_added_under_a_key_is_taken_by_its_session(sockets: list[socket.socket]) -> None:
    tunnels = Tunnels()
    key = tunnels.key_for(7)
    sock, _ = new_sock(sockets)
    assert tunnels.add(key, 1, "incoming", sock, b"rest")
    assert tunnels.idle_count(7) == 1
    tunnel = tunnels.take(7)
    assert tunnel is not None
    assert (tunnel.tunnel_id, tunnel.sock, tunnel.rest) == (1, sock, b"rest")
    assert tunnels.idle_count(7) == 0
    assert tunnels.take(7) is None


def test_take_hands_out_the_oldest_incoming_tunnel_first(sockets: list[socket.socket]) -> None:
    tunnels = Tunnels()
    key = tunnels.key_for(1)
    for tunnel_id in (5, 3, 9):
        assert tunnels.add(key, tunnel_id, "incoming", new_sock(sockets)[0], b"")
    taken = [tunnels.take(1) for _ in range(3)]
    assert [tunnel.tunnel_id for tunnel in taken if tunnel is not None] == [5, 3, 9]


def test_take_never_hands_out_an_outgoing_tunnel(sockets: list[socket.socket]) -> None:
    tunnels = Tunnels()
    key = tunnels.key_for(1)
    assert tunnels.add(key, 2, "outgoing", new_sock(sockets)[0], b"")
    assert tunnels.idle_count(1) == 1
    assert tunnels.take(1) is None
    assert tunnels.idle_count(1) == 1


def test_sessions_do_not_share_tunnels(sockets: list[socket.socket]) -> None:
    tunnels = Tunnels()
    one, two = tunnels.key_for(1), tunnels.key_for(2)
    assert tunnels.add(one, 1, "incoming", new_sock(sockets)[0], b"")
    assert tunnels.take(2) is None
    assert tunnels.add(two, 1, "incoming", new_sock(sockets)[0], b"")  # numbers are per session
    assert tunnels.idle_count(1) == tunnels.idle_count(2) == 1


def test_unknown_sessions_have_nothing() -> None:
    tunnels = Tunnels()
    assert tunnels.take(42) is None
    assert tunnels.idle_count(42) == 0


@pytest.mark.parametrize(
    ("key", "tunnel_id", "use"),
    [
        ("not a key", 1, "incoming"),
        (None, 0, "incoming"),
        (None, -3, "outgoing"),
        (None, 1, "sideways"),
        (None, 1, ""),
    ],
)
def test_a_badly_named_tunnel_is_refused(
    sockets: list[socket.socket], key: str | None, tunnel_id: int, use: str
) -> None:
    tunnels = Tunnels()
    good = tunnels.key_for(1)
    sock, _ = new_sock(sockets)
    assert not tunnels.add(good if key is None else key, tunnel_id, use, sock, b"")
    assert tunnels.idle_count(1) == 0
    assert not is_closed(sock)  # the caller closes it


@pytest.mark.parametrize(("first", "second"), [("incoming", "incoming"), ("incoming", "outgoing")])
def test_a_tunnel_number_in_use_is_refused(sockets: list[socket.socket], first: str, second: str) -> None:
    tunnels = Tunnels()
    key = tunnels.key_for(1)
    original, _ = new_sock(sockets)
    assert tunnels.add(key, 3, first, original, b"")
    assert not tunnels.add(key, 3, second, new_sock(sockets)[0], b"")
    assert tunnels.idle_count(1) == 1
    taken = tunnels.take(1)
    assert taken is not None and taken.sock is original


def test_a_claim_gets_an_outgoing_tunnel_that_is_already_here(sockets: list[socket.socket]) -> None:
    async def scenario() -> None:
        tunnels = Tunnels()
        key = tunnels.key_for(1)
        sock, _ = new_sock(sockets)
        assert tunnels.add(key, 4, "outgoing", sock, b"behind")
        tunnel = await tunnels.claim(1, 4)
        assert tunnel is not None and tunnel.sock is sock and tunnel.rest == b"behind"
        assert tunnels.idle_count(1) == 0

    run(scenario())


def test_a_claim_waits_for_its_outgoing_tunnel(sockets: list[socket.socket]) -> None:
    async def scenario() -> None:
        tunnels = Tunnels()
        key = tunnels.key_for(1)
        claiming = asyncio.ensure_future(tunnels.claim(1, 6))
        await asyncio.sleep(0)  # let the claim register (not a wait for an outcome)
        assert not claiming.done()
        assert tunnels.add(key, 2, "outgoing", new_sock(sockets)[0], b"")  # another one
        assert not claiming.done()
        sock, _ = new_sock(sockets)
        assert tunnels.add(key, 6, "outgoing", sock, b"")
        tunnel = await asyncio.wait_for(claiming, TIMEOUT)
        assert tunnel is not None and tunnel.tunnel_id == 6 and tunnel.sock is sock
        assert tunnels.idle_count(1) == 1  # handed over, not kept idle: only tunnel 2 is

    run(scenario())


def test_a_claim_for_an_unknown_session_is_none() -> None:
    assert run(Tunnels().claim(9, 1)) is None


def test_a_claim_gives_up_after_its_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tunnels_module, "CLAIM_TIMEOUT", 0.01)

    async def scenario() -> None:
        tunnels = Tunnels()
        tunnels.key_for(1)
        assert await tunnels.claim(1, 2) is None

    run(scenario())


def test_a_late_outgoing_tunnel_after_a_given_up_claim_stays_idle(
    monkeypatch: pytest.MonkeyPatch, sockets: list[socket.socket]
) -> None:
    monkeypatch.setattr(tunnels_module, "CLAIM_TIMEOUT", 0.01)

    async def scenario() -> None:
        tunnels = Tunnels()
        key = tunnels.key_for(1)
        assert await tunnels.claim(1, 2) is None
        assert tunnels.add(key, 2, "outgoing", new_sock(sockets)[0], b"")
        assert tunnels.idle_count(1) == 1

    run(scenario())


def test_discard_closes_an_idle_outgoing_tunnel(sockets: list[socket.socket]) -> None:
    tunnels = Tunnels()
    key = tunnels.key_for(1)
    sock, far = new_sock(sockets)
    assert tunnels.add(key, 2, "outgoing", sock, b"")
    tunnels.discard(1, 2)
    assert is_closed(sock)
    assert far.recv(1) == b""
    assert tunnels.idle_count(1) == 0
    tunnels.discard(1, 2)  # nothing left: nothing happens
    tunnels.discard(5, 2)


def test_discard_leaves_incoming_tunnels_alone(sockets: list[socket.socket]) -> None:
    tunnels = Tunnels()
    key = tunnels.key_for(1)
    sock, _ = new_sock(sockets)
    assert tunnels.add(key, 2, "incoming", sock, b"")
    tunnels.discard(1, 2)
    assert not is_closed(sock)
    assert tunnels.idle_count(1) == 1


def test_forget_closes_the_sessions_idle_tunnels_and_its_key(sockets: list[socket.socket]) -> None:
    tunnels = Tunnels()
    key, other_key = tunnels.key_for(1), tunnels.key_for(2)
    mine = [new_sock(sockets)[0] for _ in range(3)]
    assert tunnels.add(key, 1, "incoming", mine[0], b"")
    assert tunnels.add(key, 3, "incoming", mine[1], b"")
    assert tunnels.add(key, 2, "outgoing", mine[2], b"")
    other, _ = new_sock(sockets)
    assert tunnels.add(other_key, 1, "incoming", other, b"")

    tunnels.forget(1)
    assert all(is_closed(sock) for sock in mine)
    assert tunnels.idle_count(1) == 0
    assert tunnels.take(1) is None
    late, _ = new_sock(sockets)
    assert not tunnels.add(key, 5, "incoming", late, b"")  # the key died with the session
    assert not is_closed(other)
    assert tunnels.idle_count(2) == 1
    tunnels.forget(1)  # twice is harmless


def test_forget_ends_a_pending_claim_without_a_tunnel() -> None:
    async def scenario() -> None:
        tunnels = Tunnels()
        tunnels.key_for(1)
        claiming = asyncio.ensure_future(tunnels.claim(1, 2))
        await asyncio.sleep(0)  # let the claim register (not a wait for an outcome)
        tunnels.forget(1)
        try:
            tunnel = await asyncio.wait_for(claiming, TIMEOUT)
        except asyncio.CancelledError:
            tunnel = None
        assert tunnel is None

    run(scenario())


def test_close_closes_every_idle_tunnel(sockets: list[socket.socket]) -> None:
    tunnels = Tunnels()
    keys = {session: tunnels.key_for(session) for session in (1, 2)}
    idle = []
    for session, key in keys.items():
        for tunnel_id, use in ((1, "incoming"), (2, "outgoing")):
            sock, _ = new_sock(sockets)
            assert tunnels.add(key, tunnel_id, use, sock, b"")
            idle.append(sock)
        assert tunnels.idle_count(session) == 2
    tunnels.close()
    assert all(is_closed(sock) for sock in idle)
    assert all(tunnels.idle_count(session) == 0 for session in keys)
    assert not tunnels.add(keys[1], 7, "incoming", new_sock(sockets)[0], b"")


# --- counted tunnels: ends as ``TunnelEnd`` messages ----------------------------------------------------


def test_a_tunnel_added_as_counted_is_taken_as_counted(sockets: list[socket.socket]) -> None:
    """``counted`` travels with the tunnel from ``add`` to whoever takes or claims it."""

    async def scenario() -> None:
        tunnels = Tunnels()
        key = tunnels.key_for(1)
        assert tunnels.add(key, 1, "incoming", new_sock(sockets)[0], b"", counted=True)
        assert tunnels.add(key, 3, "incoming", new_sock(sockets)[0], b"")
        assert tunnels.add(key, 2, "outgoing", new_sock(sockets)[0], b"", counted=True)
        first, second = tunnels.take(1), tunnels.take(1)
        assert first is not None and first.counted
        assert second is not None and not second.counted
        claimed = await tunnels.claim(1, 2)
        assert claimed is not None and claimed.counted

    run(scenario())


def test_an_uncounted_tunnel_has_no_end_sender(sockets: list[socket.socket]) -> None:
    """Without ``counted`` the agent half-closes the tunnel: nothing to announce."""
    sent: list[to_session.AgentToSession] = []
    tunnels = Tunnels()
    key = tunnels.key_for(1, sent.append)
    assert tunnels.add(key, 1, "incoming", new_sock(sockets)[0], b"")
    tunnel = tunnels.take(1)
    assert tunnel is not None
    assert tunnels.end_sender(1, tunnel) is None
    assert sent == []


def test_a_counted_tunnels_end_sender_tells_its_own_session(sockets: list[socket.socket]) -> None:
    """The agent's end of a counted tunnel goes to the tunnel's session as ``TunnelEnd(id, length)``."""
    sent: dict[int, list[to_session.AgentToSession]] = {1: [], 2: []}
    tunnels = Tunnels()
    keys = {session: tunnels.key_for(session, sent[session].append) for session in (1, 2)}
    assert tunnels.add(keys[2], 5, "incoming", new_sock(sockets)[0], b"", counted=True)
    tunnel = tunnels.take(2)
    assert tunnel is not None
    end = tunnels.end_sender(2, tunnel)
    assert end is not None
    end(1234)
    assert sent == {1: [], 2: [to_session.TunnelEnd(5, 1234)]}


def test_an_end_heard_before_the_tunnel_is_in_use_is_delivered_at_listen_end() -> None:
    """The session may announce its end before the agent has put the tunnel to use: it is kept for then."""
    tunnels = Tunnels()
    tunnels.key_for(1)
    tunnels.end_heard(1, 3, 42)
    heard: list[int] = []
    tunnels.listen_end(1, 3, heard.append)
    assert heard == [42]
    tunnels.end_heard(1, 3, 42)  # a repeat for a tunnel whose end was delivered does not reach it again
    assert heard == [42]


def test_an_end_heard_while_listening_is_delivered_at_once_and_only_to_its_tunnel() -> None:
    """``end_heard`` goes to the listener of that session's tunnel, not to another tunnel or session."""
    tunnels = Tunnels()
    for session in (1, 2):
        tunnels.key_for(session)
    heard: dict[tuple[int, int], list[int]] = {(1, 3): [], (1, 5): [], (2, 3): []}
    for (session, tunnel_id), lengths in heard.items():
        tunnels.listen_end(session, tunnel_id, lengths.append)
    tunnels.end_heard(1, 3, 7)
    assert heard == {(1, 3): [7], (1, 5): [], (2, 3): []}


def test_unlisten_drops_the_listener_and_a_stale_early_end() -> None:
    """Once a tunnel is over, neither its listener nor an end kept for it survives."""
    tunnels = Tunnels()
    tunnels.key_for(1)
    heard: list[int] = []
    tunnels.listen_end(1, 3, heard.append)
    tunnels.unlisten(1, 3)
    tunnels.end_heard(1, 3, 10)  # kept as early: nobody listens any more
    tunnels.unlisten(1, 3)  # ...and dropped
    assert heard == []
    later: list[int] = []
    tunnels.listen_end(1, 3, later.append)
    assert later == []


def test_forget_drops_a_sessions_listeners_and_early_ends() -> None:
    """A forgotten session's ends go nowhere, before or after; another session's are untouched."""
    tunnels = Tunnels()
    for session in (1, 2):
        tunnels.key_for(session)
    listened: list[int] = []
    tunnels.listen_end(1, 3, listened.append)
    tunnels.end_heard(1, 5, 11)
    tunnels.end_heard(2, 5, 22)
    tunnels.forget(1)

    tunnels.end_heard(1, 3, 10)
    tunnels.end_heard(1, 7, 12)  # the session is gone: not even kept
    early: list[int] = []
    for tunnel_id in (5, 7):
        tunnels.listen_end(1, tunnel_id, early.append)
    assert listened == [] and early == []
    other: list[int] = []
    tunnels.listen_end(2, 5, other.append)
    assert other == [22]


@pytest.mark.parametrize(("session", "tunnel_id"), [(9, 1), (1, 0)])
def test_an_end_for_no_live_session_or_no_tunnel_is_not_kept(session: int, tunnel_id: int) -> None:
    """Ends naming an unknown session or tunnel 0 are ignored rather than kept."""
    tunnels = Tunnels()
    tunnels.key_for(1)
    tunnels.end_heard(session, tunnel_id, 5)
    heard: list[int] = []
    tunnels.listen_end(session, tunnel_id, heard.append)
    assert heard == []
