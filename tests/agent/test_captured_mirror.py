"""CapturedMirror fed capture events by hand: copies go down socket pairs standing in for the tunnels."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterable, Iterator
from typing import TypeVar

import pytest
from capture_helpers import needs_capture, until

from pymirrord.agent.capture_hold import HOLD_TIME, CaptureHold
from pymirrord.agent.captured_mirror import CapturedMirror
from pymirrord.agent.connections import ConnectionTable, Effect, Send
from pymirrord.agent.subscriptions import Route, Subscriptions
from pymirrord.agent.tcp_capture import ClientEnd, Closed, Data, Lost, Opened
from pymirrord.agent.tunnels import IdleTunnel, Tunnels
from pymirrord.protocol.agent_to_session import ConnectionClosed, NewConnection
from pymirrord.protocol.types import Mode, SocketAddress
from pymirrord.tunnel.copies import Copy

M = TypeVar("M")

SESSION = 1
PORT = 80
KEY = (bytes([10, 0, 0, 2]), 40000, bytes([10, 0, 0, 1]), PORT)
CLIENT, LOCAL = SocketAddress("10.0.0.2", 40000), SocketAddress("10.0.0.1", PORT)


class World:
    def __init__(self) -> None:
        self.subscriptions = Subscriptions(capture_mirrors=True)
        assert self.subscriptions.subscribe(SESSION, PORT, Mode.MIRROR).error is None
        self.effects: list[Effect] = []
        self.app_ends: list[socket.socket] = []
        self.tunnel_ends: list[socket.socket] = []
        self.mirror = CapturedMirror(
            self.subscriptions,
            ConnectionTable(),
            Tunnels(),
            self._take,
            self._apply,
            copy_dropped=self._dropped,
        )
        self.dropped: list[tuple[int, int, str | None]] = []

    def _take(self, route: Route) -> dict[int, IdleTunnel]:
        ours, theirs = socket.socketpair()
        ours.setblocking(False)
        self.tunnel_ends.append(ours)
        self.app_ends.append(theirs)  # an app that does not read: the copy waits in the agent
        return {session: IdleTunnel(len(self.tunnel_ends), ours, b"") for session in route.mirrors}

    def _apply(self, effects: Iterable[Effect]) -> None:
        self.effects.extend(effects)

    def _dropped(self, connection_id: int, session: int, reason: str | None) -> None:
        self.dropped.append((connection_id, session, reason))

    def sent(self, kind: type[M]) -> list[M]:
        return [e.message for e in self.effects if isinstance(e, Send) and isinstance(e.message, kind)]

    def holding(self) -> bool:
        """(A call, not the property: an assert on a property would make the next one on it look
        unreachable to mypy.)"""
        return self.mirror.holding

    def close(self) -> None:
        for sock in self.app_ends + self.tunnel_ends:
            sock.close()


@pytest.fixture
def world() -> Iterator[World]:
    made = World()
    try:
        yield made
    finally:
        made.close()


def test_a_new_connection_from_the_same_address_ends_the_one_still_draining(world: World) -> None:
    async def scenario() -> None:
        mirror = world.mirror
        mirror._handle([Opened(KEY, CLIENT, LOCAL), Data(KEY, b"x" * (8 << 20)), ClientEnd(KEY)])
        mirror._handle([Closed(KEY, "the connection ended")])  # the copy still holds bytes: it drains
        assert not world.sent(ConnectionClosed)
        first = world.sent(NewConnection)[0]

        mirror._handle([Opened(KEY, CLIENT, LOCAL)])  # the client's port, reused at once

        closed = world.sent(ConnectionClosed)
        assert [message.connection_id for message in closed] == [first.connection_id]
        assert world.dropped and world.dropped[0][:2] == (first.connection_id, SESSION)
        assert world.tunnel_ends[0].fileno() == -1  # the first copy's tunnel is closed
        second = world.sent(NewConnection)[1]
        assert second.connection_id != first.connection_id
        assert world.tunnel_ends[1].fileno() != -1  # the second copy goes on

        await mirror.close()
        assert len(world.sent(ConnectionClosed)) == 2

    asyncio.run(asyncio.wait_for(scenario(), 10))


@needs_capture
def test_a_full_tunnel_holds_the_capture_until_the_app_takes_the_copy(world: World) -> None:
    async def scenario() -> None:
        mirror = world.mirror
        mirror.watch([PORT])
        try:
            assert not world.holding()
            upload = b"x" * (8 << 20)  # more than a socket pair's buffers take
            mirror._handle([Opened(KEY, CLIENT, LOCAL), Data(KEY, upload)])
            assert world.holding()
            app = world.app_ends[0]
            app.setblocking(False)
            received = 0
            while received < len(upload):
                received += len(await asyncio.get_running_loop().sock_recv(app, 1 << 20))
            assert await until(lambda: not world.holding())
            assert not world.dropped
        finally:
            await mirror.close()

    asyncio.run(asyncio.wait_for(scenario(), 30))


@needs_capture
def test_an_app_that_stops_reading_holds_the_capture_a_moment_then_its_copy_waits_in_the_agent(
    world: World,
) -> None:
    async def scenario() -> None:
        mirror = world.mirror
        mirror.watch([PORT])
        try:
            mirror._handle([Opened(KEY, CLIENT, LOCAL), Data(KEY, b"x" * (8 << 20))])
            assert world.holding()
            started = asyncio.get_running_loop().time()
            assert await until(lambda: not world.holding())
            assert asyncio.get_running_loop().time() - started >= HOLD_TIME * 0.9
            # Until it caught up, the copy keeps what its tunnel refuses, and the capture reads on.
            mirror._handle([Data(KEY, b"y" * (1 << 20))])
            assert not world.holding()
            assert not world.dropped
        finally:
            await mirror.close()

    asyncio.run(asyncio.wait_for(scenario(), 30))


@needs_capture
def test_a_copy_given_up_while_it_holds_the_capture_lets_it_read_again(world: World) -> None:
    async def scenario() -> None:
        mirror = world.mirror
        mirror._hold = CaptureHold[Copy](hold_time=3600.0)  # so that only the copy's end can end the hold
        mirror.watch([PORT])
        try:
            mirror._handle([Opened(KEY, CLIENT, LOCAL), Data(KEY, b"x" * (8 << 20))])
            assert world.holding()
            mirror._handle([Lost(KEY, "segments were never captured")])
            assert world.dropped and world.dropped[0][2] == "segments were never captured"
            assert await until(lambda: not world.holding())
        finally:
            await mirror.close()

    asyncio.run(asyncio.wait_for(scenario(), 30))
