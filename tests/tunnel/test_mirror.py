"""``MirrorRelay`` between socket pairs: ``client_peer <-> client [relay] pod <-> pod_peer``, and each
session's copy ``[relay] tunnel <-> app`` (the app stands for the session's end of its tunnel).

Focused on counted copies (tunnels through a Kubernetes port-forward): their end is announced with a
length, never a half-close, and the session's own end comes as ``copy_ended``.
"""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from pymirrord.tunnel import mirror, pump, tee
from pymirrord.tunnel.mirror import MirrorRelay

from .sockets import (
    TIMEOUT,
    assert_no_end_of_stream,
    fill,
    length_recorder,
    recv_exactly,
    recv_until_eof,
    run,
    send_and_shut,
    unread,
)


@dataclass
class Ends:
    client_peer: socket.socket
    client: socket.socket
    pod: socket.socket
    pod_peer: socket.socket
    tunnels: dict[int, socket.socket]
    apps: dict[int, socket.socket]


@pytest.fixture
def ends() -> Iterator[Ends]:
    """Non-blocking socket pairs: the client's connection, the pod's, and copies for sessions 1 and 2."""
    client_peer, client = socket.socketpair()
    pod, pod_peer = socket.socketpair()
    pairs = {session: socket.socketpair() for session in (1, 2)}
    made = Ends(
        client_peer,
        client,
        pod,
        pod_peer,
        {session: pair[0] for session, pair in pairs.items()},
        {session: pair[1] for session, pair in pairs.items()},
    )
    every = [client_peer, client, pod, pod_peer, *made.tunnels.values(), *made.apps.values()]
    for sock in every:
        sock.setblocking(False)
    yield made
    for sock in every:
        sock.close()


async def finish_main_connection(ends: Ends, relay: MirrorRelay) -> None:
    """The pod answers and closes; the client sees it all; the relay is then over."""
    await send_and_shut(ends.pod_peer, b"answer")
    assert await asyncio.wait_for(recv_until_eof(ends.client_peer), TIMEOUT) == b"answer"
    await asyncio.wait_for(relay.wait(), TIMEOUT)


def test_a_counted_copy_announces_its_full_length_and_its_tunnel_stays_open(ends: Ends) -> None:
    """A counted copy's end goes to its callable with every byte copied; an uncounted one is half-closed."""

    async def scenario() -> None:
        heard, end = length_recorder()
        drops: list[tuple[int, str | None]] = []
        relay = MirrorRelay(
            ends.client, ends.pod, ends.tunnels, lambda *drop: drops.append(drop), counted={1: end}
        )
        relay.start()
        data = os.urandom(1024 * 1024 + 7)
        _, at_pod, at_counted, at_uncounted = await asyncio.gather(
            send_and_shut(ends.client_peer, data),
            recv_until_eof(ends.pod_peer),
            recv_exactly(ends.apps[1], len(data)),
            recv_until_eof(ends.apps[2]),
        )
        assert at_pod == at_counted == at_uncounted == data
        assert await asyncio.wait_for(heard, TIMEOUT) == len(data)
        assert_no_end_of_stream(ends.apps[1])
        await finish_main_connection(ends, relay)
        assert relay.failure is None
        assert drops == []
        assert_no_end_of_stream(ends.apps[1])

    run(scenario())


def test_a_client_always_ready_gives_the_loop_back_after_a_turn_and_every_copy_gets_it_all(
    ends: Ends,
) -> None:
    """A client that always has more must not keep the loop: the connection's news (its session is told of
    it on this loop) and the copies' writers wait on it. The relay reads ``turn_bytes`` and lets it run."""

    async def scenario() -> None:
        sent = fill(ends.client_peer, 192 * 1024)
        relay = MirrorRelay(ends.client, ends.pod, ends.tunnels, lambda *_: None, turn_bytes=8 * 1024)
        relay.start()
        assert unread(ends.client) > 0, "the first turn read everything the client sent"
        ends.client_peer.shutdown(socket.SHUT_WR)
        at_pod, at_one, at_two = await asyncio.gather(
            recv_until_eof(ends.pod_peer), recv_until_eof(ends.apps[1]), recv_until_eof(ends.apps[2])
        )
        assert at_pod == at_one == at_two == sent
        await finish_main_connection(ends, relay)
        assert relay.failure is None

    run(scenario())


def test_copy_ended_after_the_copys_end_closes_it_without_a_drop(ends: Ends) -> None:
    """The session's end of a copy that was passed on whole ends it quietly, and its tunnel is no longer
    read: what the app writes afterwards stays in the tunnel."""

    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        heard, end = length_recorder()
        drops: list[tuple[int, str | None]] = []
        relay = MirrorRelay(
            ends.client, ends.pod, {1: ends.tunnels[1]}, lambda *drop: drops.append(drop), counted={1: end}
        )
        relay.start()
        await send_and_shut(ends.client_peer, b"request")
        assert await asyncio.wait_for(recv_until_eof(ends.pod_peer), TIMEOUT) == b"request"
        assert await asyncio.wait_for(recv_exactly(ends.apps[1], 7), TIMEOUT) == b"request"
        assert await asyncio.wait_for(heard, TIMEOUT) == 7

        relay.copy_ended(1)
        await loop.sock_sendall(ends.apps[1], b"late")
        # A round trip through the relay gives it turns to (wrongly) read the tunnel.
        await loop.sock_sendall(ends.pod_peer, b"ping")
        assert await asyncio.wait_for(recv_exactly(ends.client_peer, 4), TIMEOUT) == b"ping"
        assert ends.tunnels[1].recv(16) == b"late"
        await finish_main_connection(ends, relay)
        assert relay.failure is None
        assert drops == []

    run(scenario())


def test_copy_ended_before_the_copys_end_drops_the_copy(ends: Ends) -> None:
    """A session that ends its side of a copy early wants no more of it: the copy is dropped (reason None),
    later bytes do not reach it, its end is never announced, and the relay does not wait for it."""

    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        announced: list[int] = []
        drops: list[tuple[int, str | None]] = []
        relay = MirrorRelay(
            ends.client,
            ends.pod,
            ends.tunnels,
            lambda *drop: drops.append(drop),
            counted={1: announced.append, 2: announced.append},
        )
        relay.start()
        await loop.sock_sendall(ends.client_peer, b"first")
        for sock in (ends.pod_peer, ends.apps[1], ends.apps[2]):
            assert await asyncio.wait_for(recv_exactly(sock, 5), TIMEOUT) == b"first"

        relay.copy_ended(1)
        assert drops == [(1, None)]
        relay.copy_ended(1)  # twice: nothing more
        relay.copy_ended(9)  # no such copy: nothing
        assert drops == [(1, None)]

        await send_and_shut(ends.client_peer, b"second")
        assert await asyncio.wait_for(recv_until_eof(ends.pod_peer), TIMEOUT) == b"second"
        assert await asyncio.wait_for(recv_exactly(ends.apps[2], 6), TIMEOUT) == b"second"
        await finish_main_connection(ends, relay)
        assert relay.failure is None
        assert announced == [11]  # session 2's copy only
        assert_no_end_of_stream(ends.apps[1])  # nothing more came down the dropped copy

    run(scenario())


def test_a_copy_that_lags_never_holds_the_pod_back_and_still_gets_every_byte(
    ends: Ends, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Copy 1's app reads nothing until the pod has had it all: the bytes that copy has not taken wait (in
    its pipe, then in memory once the pipe is needed for newer ones) and reach it whole and in order."""
    spills: list[int] = []
    spill = mirror._PipeQueue._spill

    def counted_spill(queue: mirror._PipeQueue) -> None:
        spills.append(queue.in_pipe)
        spill(queue)

    monkeypatch.setattr(mirror._PipeQueue, "_spill", counted_spill)

    async def scenario() -> None:
        drops: list[tuple[int, str | None]] = []
        relay = MirrorRelay(ends.client, ends.pod, {1: ends.tunnels[1]}, lambda *drop: drops.append(drop))
        relay.start()
        data = os.urandom(6 * 1024 * 1024 + 11)  # several pipes' worth, far below COPY_BUFFER
        _, at_pod = await asyncio.gather(send_and_shut(ends.client_peer, data), recv_until_eof(ends.pod_peer))
        assert at_pod == data, "the pod got everything while the copy's app read nothing"
        assert await asyncio.wait_for(recv_until_eof(ends.apps[1]), TIMEOUT) == data
        await finish_main_connection(ends, relay)
        assert drops == [] and relay.failure is None
        if tee.AVAILABLE:
            assert spills, "the copy's pipe never had to make room: the test did not make the copy lag"

    run(scenario())


def test_a_copy_too_far_behind_is_dropped_and_the_pod_gets_everything(
    ends: Ends, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def scenario() -> None:
        monkeypatch.setattr(mirror, "COPY_BUFFER", 2 * 1024 * 1024)
        drops: list[tuple[int, str | None]] = []
        relay = MirrorRelay(ends.client, ends.pod, {1: ends.tunnels[1]}, lambda *drop: drops.append(drop))
        relay.start()
        data = os.urandom(8 * 1024 * 1024)
        _, at_pod = await asyncio.gather(send_and_shut(ends.client_peer, data), recv_until_eof(ends.pod_peer))
        assert at_pod == data
        assert drops == [(1, "the app fell more than 2 MiB behind")]
        await finish_main_connection(ends, relay)
        assert relay.failure is None

    run(scenario())


def test_a_lagging_copy_of_many_small_writes_gets_them_all(ends: Ends) -> None:
    """Small writes make small pipe buffers: a copy's pipe can run out of slots long before it runs out of
    bytes. The copy still gets every byte, in order, and the pod too."""

    async def scenario() -> None:
        drops: list[tuple[int, str | None]] = []
        relay = MirrorRelay(ends.client, ends.pod, {1: ends.tunnels[1]}, lambda *drop: drops.append(drop))
        relay.start()
        pieces = [b"%06d;" % n for n in range(20_000)]

        async def send_small() -> None:
            loop = asyncio.get_running_loop()
            for piece in pieces:
                await loop.sock_sendall(ends.client_peer, piece)
            ends.client_peer.shutdown(socket.SHUT_WR)

        _, at_pod = await asyncio.gather(send_small(), recv_until_eof(ends.pod_peer))
        assert at_pod == b"".join(pieces)
        assert await asyncio.wait_for(recv_until_eof(ends.apps[1]), TIMEOUT) == b"".join(pieces)
        await finish_main_connection(ends, relay)
        assert drops == [] and relay.failure is None

    run(scenario())


def test_a_relay_that_cannot_get_its_pipes_leaves_none_open(
    ends: Ends, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Out of file descriptors half way through making pipes: the ones made are closed again."""
    if not tee.AVAILABLE:
        pytest.skip("no tee here: the relay makes no pipes of its own for copies")
    calls: list[int] = []

    def failing_third(size: int = pump.PIPE_SIZE) -> tuple[int, int, int]:
        calls.append(size)
        if len(calls) == 3:
            raise OSError(24, "Too many open files")
        return pump.make_pipe(size)

    monkeypatch.setattr(mirror, "make_pipe", failing_third)

    async def scenario() -> None:
        before = len(os.listdir("/proc/self/fd"))
        with pytest.raises(OSError, match="Too many open files"):
            MirrorRelay(ends.client, ends.pod, ends.tunnels, lambda *_: None)
        assert len(os.listdir("/proc/self/fd")) == before

    run(scenario())
