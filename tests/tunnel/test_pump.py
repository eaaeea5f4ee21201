"""``TunnelRelay`` between real sockets, ``a <-> near [relay] far <-> b``: socket pairs and TCP on loopback.

``a`` and ``b`` are the two outer ends the test drives; the relay owns ``near`` and ``far``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest

from pymirrord.tunnel.pump import TunnelRelay, reset
from pymirrord.tunnel.state import Relay

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

MB = 1024 * 1024


def _small_buffers(sock: socket.socket, size: int) -> None:
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, size)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, size)


def tcp_pair(buffer: int | None = None) -> tuple[socket.socket, socket.socket]:
    """Two connected TCP sockets on loopback (``buffer``: fixed small kernel buffers, no autotuning)."""
    with socket.socket() as listener:
        if buffer is not None:
            _small_buffers(listener, buffer)  # inherited by the accepted socket
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        client = socket.socket()
        if buffer is not None:
            _small_buffers(client, buffer)
        client.connect(listener.getsockname())
        server, _ = listener.accept()
    return client, server


def unix_pair(buffer: int | None = None) -> tuple[socket.socket, socket.socket]:
    one, two = socket.socketpair()
    if buffer is not None:
        for sock in (one, two):
            _small_buffers(sock, buffer)
    return one, two


@dataclass
class Ends:
    a: socket.socket
    near: socket.socket
    far: socket.socket
    b: socket.socket

    def all(self) -> tuple[socket.socket, ...]:
        return (self.a, self.near, self.far, self.b)


MakeEnds = Callable[..., Ends]


@pytest.fixture(params=["socketpair", "tcp"])
def make_ends(request: pytest.FixtureRequest) -> Iterator[MakeEnds]:
    pair = unix_pair if request.param == "socketpair" else tcp_pair
    made: list[Ends] = []

    def make(buffer: int | None = None) -> Ends:
        a, near = pair(buffer)
        far, b = pair(buffer)
        ends = Ends(a, near, far, b)
        for sock in ends.all():
            sock.setblocking(False)
        made.append(ends)
        return ends

    yield make
    for ends in made:
        for sock in ends.all():
            sock.close()


@pytest.fixture
def tcp_ends() -> Iterator[Ends]:
    a, near = tcp_pair()
    far, b = tcp_pair()
    ends = Ends(a, near, far, b)
    for sock in ends.all():
        sock.setblocking(False)
    yield ends
    for sock in ends.all():
        sock.close()


async def wait_done(relay: TunnelRelay) -> Relay:
    return await asyncio.wait_for(relay.wait(), TIMEOUT)


def open_fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


def test_megabytes_arrive_whole_and_in_order_both_ways(make_ends: MakeEnds) -> None:
    async def scenario() -> None:
        ends = make_ends()
        forward, back = os.urandom(4 * MB), os.urandom(3 * MB + 17)
        moved = {True: 0, False: 0}

        def on_moved(is_forward: bool, count: int) -> None:
            assert count > 0
            moved[is_forward] += count

        relay = TunnelRelay(ends.near, ends.far, on_moved=on_moved)
        relay.start()
        _, _, at_b, at_a = await asyncio.gather(
            send_and_shut(ends.a, forward),
            send_and_shut(ends.b, back),
            recv_until_eof(ends.b),
            recv_until_eof(ends.a),
        )
        assert at_b == forward
        assert at_a == back
        outcome = await wait_done(relay)
        assert outcome is relay.relay
        assert outcome.finished and outcome.failure is None
        assert outcome.forward.shut and outcome.back.shut
        assert outcome.forward.moved == len(forward) == moved[True]
        assert outcome.back.moved == len(back) == moved[False]

    run(scenario())


@pytest.mark.parametrize("tapped", [False, True], ids=["splice", "copy"])
def test_a_direction_always_ready_gives_the_loop_back_after_its_turn(
    make_ends: MakeEnds, tapped: bool
) -> None:
    """A connection whose both ends always take more must not keep the loop from every other one: a
    direction moves ``turn_bytes`` and then waits for the loop's next turn, and still passes on everything."""

    async def scenario() -> None:
        ends = make_ends()
        _small_buffers(ends.far, 16 * 1024)
        sent = fill(ends.a, 192 * 1024)
        at_b = bytearray()

        def drain_b(forward: bool, count: int) -> None:
            # b takes everything at once, so far always has room: only the turn can stop the relay.
            with contextlib.suppress(BlockingIOError):
                while chunk := ends.b.recv(1 << 20):
                    at_b.extend(chunk)

        relay = TunnelRelay(
            ends.near,
            ends.far,
            tap_forward=(lambda _: None) if tapped else None,
            on_moved=drain_b,
            turn_bytes=8 * 1024,
        )
        relay.start()
        assert unread(ends.near) + relay.relay.forward.pending > 0, "the first turn moved everything"
        ends.a.shutdown(socket.SHUT_WR)
        at_b.extend(await recv_until_eof(ends.b))
        assert bytes(at_b) == sent
        relay.abort("done")
        await wait_done(relay)

    run(scenario())


@pytest.mark.parametrize("tapped", [False, True], ids=["splice", "copy"])
def test_the_heads_go_out_before_anything_read_later(make_ends: MakeEnds, tapped: bool) -> None:
    async def scenario() -> None:
        ends = make_ends()
        moved = {True: 0, False: 0}
        taps: list[bytes] = []

        def on_moved(is_forward: bool, count: int) -> None:
            moved[is_forward] += count

        relay = TunnelRelay(
            ends.near,
            ends.far,
            head_forward=b"early-forward:",
            head_back=b"early-back:",
            tap_forward=taps.append if tapped else None,
            tap_back=taps.append if tapped else None,
            on_moved=on_moved,
        )
        relay.start()
        body_forward, body_back = os.urandom(300_000), os.urandom(200_000)
        _, _, at_b, at_a = await asyncio.gather(
            send_and_shut(ends.a, body_forward),
            send_and_shut(ends.b, body_back),
            recv_until_eof(ends.b),
            recv_until_eof(ends.a),
        )
        assert at_b == b"early-forward:" + body_forward
        assert at_a == b"early-back:" + body_back
        outcome = await wait_done(relay)
        assert outcome.failure is None
        assert outcome.forward.moved == moved[True] == len(at_b)
        assert outcome.back.moved == moved[False] == len(at_a)

    run(scenario())


def test_the_back_head_alone_reaches_near_before_the_far_side_says_anything(make_ends: MakeEnds) -> None:
    async def scenario() -> None:
        ends = make_ends()
        relay = TunnelRelay(ends.near, ends.far, head_back=b"already read")
        relay.start()
        assert await recv_exactly(ends.a, 12) == b"already read"
        await asyncio.get_running_loop().sock_sendall(ends.b, b" and more")
        assert await recv_exactly(ends.a, 9) == b" and more"
        relay.abort("test over")
        await wait_done(relay)

    run(scenario())


@pytest.mark.parametrize("first", ["a", "b"])
def test_each_half_close_is_passed_on_on_its_own(make_ends: MakeEnds, first: str) -> None:
    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        ends = make_ends()
        closer, other = (ends.a, ends.b) if first == "a" else (ends.b, ends.a)
        relay = TunnelRelay(ends.near, ends.far)
        relay.start()
        waiting = asyncio.ensure_future(relay.wait())

        await send_and_shut(closer, b"last words")
        assert await asyncio.wait_for(recv_until_eof(other), TIMEOUT) == b"last words"
        closed, still_open = (
            (relay.relay.forward, relay.relay.back)
            if first == "a"
            else (relay.relay.back, relay.relay.forward)
        )
        assert closed.shut and not still_open.shut
        assert not waiting.done()

        # The other way is still open, several times over.
        for word in (b"still ", b"talking"):
            await loop.sock_sendall(other, word)
            assert await recv_exactly(closer, len(word)) == word
        assert not waiting.done()

        await send_and_shut(other, b"bye")
        assert await asyncio.wait_for(recv_until_eof(closer), TIMEOUT) == b"bye"
        outcome = await asyncio.wait_for(waiting, TIMEOUT)
        assert outcome.finished and outcome.failure is None

    run(scenario())


def test_taps_see_every_byte_of_their_direction_in_order(make_ends: MakeEnds) -> None:
    async def scenario() -> None:
        ends = make_ends()
        tapped_forward: list[bytes] = []
        tapped_back: list[bytes] = []
        relay = TunnelRelay(
            ends.near, ends.far, tap_forward=tapped_forward.append, tap_back=tapped_back.append
        )
        relay.start()
        forward, back = os.urandom(2 * MB + 5), os.urandom(MB + 3)
        _, _, at_b, at_a = await asyncio.gather(
            send_and_shut(ends.a, forward),
            send_and_shut(ends.b, back),
            recv_until_eof(ends.b),
            recv_until_eof(ends.a),
        )
        assert at_b == forward and at_a == back
        assert b"".join(tapped_forward) == forward
        assert b"".join(tapped_back) == back
        assert all(tapped_forward) and all(tapped_back)  # no empty chunk for the end of stream
        outcome = await wait_done(relay)
        assert outcome.failure is None

    run(scenario())


def test_a_tap_that_has_seen_enough_hears_no_more_and_every_byte_still_arrives(make_ends: MakeEnds) -> None:
    """A tap returns False once it wants no more (the sessions view's sniffer gave up on a connection that
    is not HTTP): the direction moves by splice from then on, and nothing is lost or left open."""

    async def scenario() -> None:
        ends = make_ends()
        before = open_fds()
        seen: list[int] = []

        def tap(data: bytes) -> bool:
            seen.append(len(data))
            return len(seen) < 3

        relay = TunnelRelay(ends.near, ends.far, tap_forward=tap)
        relay.start()
        forward = os.urandom(4 * MB)
        _, at_b = await asyncio.gather(send_and_shut(ends.a, forward), recv_until_eof(ends.b))
        assert at_b == forward
        assert len(seen) == 3, "the tap heard nothing after it said it had seen enough"
        await send_and_shut(ends.b, b"bye")
        assert await recv_until_eof(ends.a) == b"bye"
        outcome = await wait_done(relay)
        assert outcome.failure is None and outcome.forward.moved == len(forward)
        assert open_fds() == before

    run(scenario())


def test_a_single_tapped_direction_leaves_the_other_one_whole(make_ends: MakeEnds) -> None:
    async def scenario() -> None:
        ends = make_ends()
        tapped: list[bytes] = []
        relay = TunnelRelay(ends.near, ends.far, tap_back=tapped.append)
        relay.start()
        forward, back = os.urandom(MB), os.urandom(MB)
        _, _, at_b, at_a = await asyncio.gather(
            send_and_shut(ends.a, forward),
            send_and_shut(ends.b, back),
            recv_until_eof(ends.b),
            recv_until_eof(ends.a),
        )
        assert at_b == forward and at_a == back
        assert b"".join(tapped) == back
        assert (await wait_done(relay)).failure is None

    run(scenario())


def test_a_slow_reader_holds_back_its_direction_only(make_ends: MakeEnds) -> None:
    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        ends = make_ends(buffer=32 * 1024)
        relay = TunnelRelay(ends.near, ends.far)
        relay.start()
        # Far more than the pipe and the four small socket buffers hold: b reads none of it for now.
        forward = os.urandom(8 * MB)
        sending = loop.create_task(send_and_shut(ends.a, forward))

        back = os.urandom(2 * MB)
        _, at_a = await asyncio.gather(send_and_shut(ends.b, back), recv_until_eof(ends.a))
        assert at_a == back
        assert relay.relay.back.shut
        assert not sending.done()  # the forward direction is held back by b, which reads nothing
        assert relay.relay.forward.pending > 0
        assert not relay.relay.finished

        assert await recv_until_eof(ends.b) == forward
        await asyncio.wait_for(sending, TIMEOUT)
        outcome = await wait_done(relay)
        assert outcome.failure is None and outcome.forward.moved == len(forward)

    run(scenario())


@pytest.mark.parametrize("peer", ["a", "b"])
def test_a_peer_reset_ends_the_relay_as_failed(tcp_ends: Ends, peer: str) -> None:
    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        relay = TunnelRelay(tcp_ends.near, tcp_ends.far)
        relay.start()
        await loop.sock_sendall(tcp_ends.a, b"ping")
        assert await recv_exactly(tcp_ends.b, 4) == b"ping"
        reset(tcp_ends.a if peer == "a" else tcp_ends.b)
        outcome = await wait_done(relay)
        assert outcome.finished
        assert outcome.failure is not None
        assert outcome.forward.done and outcome.back.done

    run(scenario())


def test_a_reset_of_the_far_peer_is_the_failure_reported(tcp_ends: Ends) -> None:
    async def scenario() -> None:
        relay = TunnelRelay(tcp_ends.near, tcp_ends.far)
        relay.start()
        reset(tcp_ends.b)
        outcome = await wait_done(relay)
        assert outcome.failure is not None and "reset" in outcome.failure.lower()

    run(scenario())


def test_a_reset_of_the_near_peer_is_the_failure_reported(tcp_ends: Ends) -> None:
    async def scenario() -> None:
        relay = TunnelRelay(tcp_ends.near, tcp_ends.far)
        relay.start()
        reset(tcp_ends.a)
        outcome = await wait_done(relay)
        assert outcome.failure is not None and "reset" in outcome.failure.lower()

    run(scenario())


def test_abort_ends_a_relay_with_its_reason_and_leaves_the_sockets_open(make_ends: MakeEnds) -> None:
    async def scenario() -> None:
        ends = make_ends()
        relay = TunnelRelay(ends.near, ends.far)
        relay.start()
        await asyncio.get_running_loop().sock_sendall(ends.a, b"x")
        assert await recv_exactly(ends.b, 1) == b"x"
        relay.abort("the agent is stopping")
        outcome = await wait_done(relay)
        assert outcome.finished
        assert outcome.failure == "the agent is stopping"
        assert ends.near.fileno() >= 0 and ends.far.fileno() >= 0

    run(scenario())


def test_cancelling_wait_stops_the_relay(make_ends: MakeEnds) -> None:
    async def scenario() -> None:
        ends = make_ends()
        relay = TunnelRelay(ends.near, ends.far)
        relay.start()
        waiting = asyncio.ensure_future(relay.wait())
        await asyncio.get_running_loop().sock_sendall(ends.a, b"x")
        assert await recv_exactly(ends.b, 1) == b"x"
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        assert relay.relay.finished
        assert relay.relay.failure == "stopped"

    run(scenario())


@pytest.mark.parametrize("tapped", [False, True], ids=["splice", "copy"])
def test_the_relay_leaves_no_descriptor_open_behind_it(make_ends: MakeEnds, tapped: bool) -> None:
    async def scenario() -> None:
        ends = make_ends()
        before = open_fds()
        relay = TunnelRelay(ends.near, ends.far, tap_forward=(lambda _: None) if tapped else None)
        relay.start()
        await asyncio.gather(
            send_and_shut(ends.a, b"one"),
            send_and_shut(ends.b, b"two"),
            recv_until_eof(ends.a),
            recv_until_eof(ends.b),
        )
        assert (await wait_done(relay)).failure is None
        assert open_fds() == before

    run(scenario())


def test_reset_makes_the_peer_see_a_reset_not_an_end_of_stream(tcp_ends: Ends) -> None:
    async def scenario() -> None:
        reset(tcp_ends.a)
        assert tcp_ends.a.fileno() == -1
        with pytest.raises(ConnectionResetError):
            await asyncio.wait_for(asyncio.get_running_loop().sock_recv(tcp_ends.near, 16), TIMEOUT)

    run(scenario())


# --- counted tunnels: ``far``'s ends travel as lengths, never as half-closes ---------------------------


def test_a_counted_forward_end_is_announced_with_its_length_and_far_stays_open(make_ends: MakeEnds) -> None:
    """near's end of stream goes to ``end_far`` with every byte moved (the head too); far is not
    half-closed."""

    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        ends = make_ends()
        heard, end_far = length_recorder()
        relay = TunnelRelay(ends.near, ends.far, head_forward=b"head:", end_far=end_far)
        relay.start()
        body = os.urandom(300_000)
        await send_and_shut(ends.a, body)
        assert await recv_exactly(ends.b, 5 + len(body)) == b"head:" + body
        assert await asyncio.wait_for(heard, TIMEOUT) == 5 + len(body)
        assert relay.relay.forward.shut and not relay.relay.back.shut
        # The back way still works, and b has not seen an end of stream.
        await loop.sock_sendall(ends.b, b"still here")
        assert await recv_exactly(ends.a, 10) == b"still here"
        assert_no_end_of_stream(ends.b)
        assert not relay.relay.finished
        relay.abort("test over")
        await wait_done(relay)

    run(scenario())


@pytest.mark.parametrize("announced", ["before", "midway", "after"])
def test_far_ended_ends_the_back_direction_after_exactly_that_many_bytes(
    make_ends: MakeEnds, announced: str
) -> None:
    """``far_ended(n)``, whether it comes before, among or after the n bytes, half-closes near after them."""

    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        ends = make_ends()
        heard, end_far = length_recorder()
        relay = TunnelRelay(ends.near, ends.far, end_far=end_far)
        relay.start()
        first, second = os.urandom(70_000), os.urandom(50_000)
        total = len(first) + len(second)
        if announced == "before":
            relay.far_ended(total)
        await loop.sock_sendall(ends.b, first)
        assert await recv_exactly(ends.a, len(first)) == first
        if announced == "midway":
            relay.far_ended(total)
        await loop.sock_sendall(ends.b, second)
        if announced == "after":
            assert await recv_exactly(ends.a, len(second)) == second
            relay.far_ended(total)
            assert await asyncio.wait_for(recv_until_eof(ends.a), TIMEOUT) == b""
        else:
            assert await asyncio.wait_for(recv_until_eof(ends.a), TIMEOUT) == second
        assert relay.relay.back.shut and relay.relay.back.moved == total
        assert not relay.relay.finished  # a has not ended its way yet

        await send_and_shut(ends.a, b"bye")
        assert await recv_exactly(ends.b, 3) == b"bye"
        assert await asyncio.wait_for(heard, TIMEOUT) == 3
        outcome = await wait_done(relay)
        assert outcome.finished and outcome.failure is None
        assert_no_end_of_stream(ends.b)  # neither way half-closed far

    run(scenario())


@pytest.mark.parametrize("first", ["near", "far"])
def test_a_counted_relay_finishes_once_both_ways_ended_in_either_order(
    make_ends: MakeEnds, first: str
) -> None:
    """The relay is over only when near's end was announced and far's announced length has gone to near."""

    async def scenario() -> None:
        ends = make_ends()
        heard, end_far = length_recorder()
        relay = TunnelRelay(ends.near, ends.far, end_far=end_far)
        relay.start()
        waiting = asyncio.ensure_future(relay.wait())
        await asyncio.get_running_loop().sock_sendall(ends.b, b"answer")

        async def near_ends() -> None:
            await send_and_shut(ends.a, b"question")
            assert await recv_exactly(ends.b, 8) == b"question"
            assert await asyncio.wait_for(heard, TIMEOUT) == 8

        async def far_ends() -> None:
            relay.far_ended(6)
            assert await asyncio.wait_for(recv_until_eof(ends.a), TIMEOUT) == b"answer"

        for step in (near_ends, far_ends) if first == "near" else (far_ends, near_ends):
            assert not waiting.done()
            await step()
        outcome = await asyncio.wait_for(waiting, TIMEOUT)
        assert outcome.finished and outcome.failure is None
        assert outcome.forward.moved == 8 and outcome.back.moved == 6
        relay.far_ended(6)  # a late repeat changes nothing

    run(scenario())


def test_the_back_head_counts_towards_the_announced_length(make_ends: MakeEnds) -> None:
    """Bytes that came behind the tunnel's handshake (``head_back``) are part of what far's peer announced."""

    async def scenario() -> None:
        ends = make_ends()
        relay = TunnelRelay(ends.near, ends.far, head_back=b"early:", end_far=lambda _length: None)
        relay.start()
        relay.far_ended(6 + 4)
        await asyncio.get_running_loop().sock_sendall(ends.b, b"late")
        assert await asyncio.wait_for(recv_until_eof(ends.a), TIMEOUT) == b"early:late"
        relay.abort("test over")
        await wait_done(relay)

    run(scenario())


def test_more_bytes_than_far_announced_fail_the_relay(make_ends: MakeEnds) -> None:
    """An announced length shorter than what already came from far is a failure, not a silent cut."""

    async def scenario() -> None:
        ends = make_ends()
        relay = TunnelRelay(ends.near, ends.far, end_far=lambda _length: None)
        relay.start()
        await asyncio.get_running_loop().sock_sendall(ends.b, b"0123456789")
        assert await recv_exactly(ends.a, 10) == b"0123456789"
        relay.far_ended(6)
        outcome = await wait_done(relay)
        assert outcome.failure is not None and "4 bytes more than the 6 announced" in outcome.failure

    run(scenario())
