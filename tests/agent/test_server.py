"""The agent's websocket server in-process: authentication, handshake, subscriptions, the outbox.

No namespace here: the redirect rules are a fake that records calls (only at this unit level).
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from pymirrord.agent.errors import IptablesError
from pymirrord.agent.incoming import Incoming
from pymirrord.agent.server import AgentServer, Outbox
from pymirrord.agent.subscriptions import Subscriptions
from pymirrord.protocol import PROTOCOL_VERSION
from pymirrord.protocol import agent_to_session as to_session
from pymirrord.protocol import session_to_agent as from_session
from pymirrord.protocol.types import Mode

TOKEN = "s3cret-token"
TIMEOUT = 10.0
T = TypeVar("T")


class FakeRules:
    def __init__(self, fail_ports: frozenset[int] = frozenset()) -> None:
        self.calls: list[tuple[str, int]] = []
        self.fail_ports = fail_ports

    def add_port(self, port: int) -> None:
        if port in self.fail_ports:
            raise IptablesError(f"could not redirect port {port}", "test")
        self.calls.append(("add", port))

    def remove_port(self, port: int) -> bool:
        self.calls.append(("remove", port))
        return True


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(asyncio.wait_for(coro, 30))


@asynccontextmanager
async def agent(rules: FakeRules | None = None) -> AsyncIterator[tuple[AgentServer, str]]:
    subscriptions = Subscriptions()
    incoming = Incoming(subscriptions, bypass_mark=1)
    server = AgentServer(
        token=TOKEN,
        target="netns/test",
        rules=rules or FakeRules(),
        subscriptions=subscriptions,
        incoming=incoming,
    )
    sock = socket.create_server(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    await server.start(sock)
    try:
        yield server, f"ws://127.0.0.1:{port}"
    finally:
        await server.close()
        await incoming.close()


def client(url: str, token: str | None = TOKEN) -> connect:
    headers = {} if token is None else {"Authorization": f"Bearer {token}"}
    return connect(url, additional_headers=headers, proxy=None, open_timeout=TIMEOUT)


async def send(ws: ClientConnection, message: from_session.SessionToAgent) -> None:
    await ws.send(from_session.CODEC.encode(message))


async def receive(ws: ClientConnection) -> to_session.AgentToSession:
    frame = await asyncio.wait_for(ws.recv(), TIMEOUT)
    assert isinstance(frame, bytes)
    return to_session.CODEC.decode(frame)


async def hello(ws: ClientConnection) -> to_session.AgentHello:
    await send(ws, from_session.ClientHello(PROTOCOL_VERSION, "test", "test-session"))
    answer = await receive(ws)
    assert isinstance(answer, to_session.AgentHello)
    return answer


async def until(predicate: Callable[[], bool]) -> None:
    """Wait (bounded) for server-side state that follows a client's disconnect."""

    async def poll() -> None:
        while not predicate():
            await asyncio.sleep(0.01)

    await asyncio.wait_for(poll(), TIMEOUT)


# --- authentication ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("token", [None, "wrong", TOKEN + "x", ""])
def test_missing_or_wrong_token_is_rejected_with_401(
    token: str | None, caplog: pytest.LogCaptureFixture
) -> None:
    async def scenario() -> None:
        async with agent() as (server, url):
            with pytest.raises(InvalidStatus) as info:
                async with client(url, token):
                    pass
            assert info.value.response.status_code == 401
            assert server.session_count == 0

    with caplog.at_level(logging.WARNING, logger="pymirrord.agent.server"):
        run(scenario())
    rejected = [r.getMessage() for r in caplog.records if "rejected" in r.getMessage()]
    assert len(rejected) == 1
    assert "127.0.0.1:" in rejected[0]
    assert "401" in rejected[0]
    assert TOKEN not in rejected[0]


def test_other_authorization_schemes_are_rejected() -> None:
    async def scenario() -> None:
        async with agent() as (_, url):
            headers = {"Authorization": f"Basic {TOKEN}"}
            with pytest.raises(InvalidStatus) as info:
                async with connect(url, additional_headers=headers, proxy=None):
                    pass
            assert info.value.response.status_code == 401

    run(scenario())


# --- handshake ---------------------------------------------------------------------------------------------


def test_handshake_answers_with_agent_hello() -> None:
    async def scenario() -> None:
        async with agent() as (server, url), client(url) as ws:
            answer = await hello(ws)
            assert answer.protocol_version == PROTOCOL_VERSION
            assert answer.target == "netns/test"
            assert server.session_count == 1
            await send(ws, from_session.Ping(42))
            assert await receive(ws) == to_session.Pong(42)

    run(scenario())


def test_wrong_protocol_version_gets_an_error_report_and_a_close() -> None:
    async def scenario() -> None:
        async with agent() as (server, url), client(url) as ws:
            await send(ws, from_session.ClientHello(PROTOCOL_VERSION + 1, "9.9", "future"))
            report = await receive(ws)
            assert isinstance(report, to_session.ErrorReport)
            assert report.code == "version-mismatch"
            assert str(PROTOCOL_VERSION + 1) in report.message
            assert report.hint
            with pytest.raises(ConnectionClosed):
                await receive(ws)
            assert server.session_count == 0

    run(scenario())


@pytest.mark.parametrize(
    "first",
    [from_session.CODEC.encode(from_session.Ping(1)), b"\xff\xff garbage", "text frame"],
)
def test_anything_but_client_hello_first_is_refused(first: bytes | str) -> None:
    async def scenario() -> None:
        async with agent() as (_, url), client(url) as ws:
            await ws.send(first)
            report = await receive(ws)
            assert isinstance(report, to_session.ErrorReport)
            assert report.code in {"handshake", "bad-message"}
            with pytest.raises(ConnectionClosed):
                await receive(ws)

    run(scenario())


def test_a_bad_message_after_the_handshake_closes_the_session() -> None:
    async def scenario() -> None:
        rules = FakeRules()
        async with agent(rules) as (server, url), client(url) as ws:
            await hello(ws)
            await send(ws, from_session.PortSubscribe(80, Mode.MIRROR, handover=False))
            await receive(ws)
            await ws.send(b"\x7f")
            report = await receive(ws)
            assert isinstance(report, to_session.ErrorReport)
            assert report.code == "bad-message"
            with pytest.raises(ConnectionClosed):
                await receive(ws)
            await until(lambda: server.session_count == 0)
            assert rules.calls == [("add", 80), ("remove", 80)]

    run(scenario())


# --- subscriptions -----------------------------------------------------------------------------------------


def test_subscriptions_drive_the_rules_and_a_second_stealer_is_refused() -> None:
    async def scenario() -> None:
        rules = FakeRules()
        async with agent(rules) as (server, url), client(url) as first, client(url) as second:
            await hello(first)
            await hello(second)
            await send(first, from_session.PortSubscribe(80, Mode.STEAL, handover=False))
            assert await receive(first) == to_session.PortSubscribeResult(80, Mode.STEAL, None)
            assert rules.calls == [("add", 80)]

            await send(second, from_session.PortSubscribe(80, Mode.STEAL, handover=False))
            refused = await receive(second)
            assert isinstance(refused, to_session.PortSubscribeResult)
            assert refused.error is not None
            assert "80" in refused.error
            await send(second, from_session.PortSubscribe(80, Mode.MIRROR, handover=False))
            assert await receive(second) == to_session.PortSubscribeResult(80, Mode.MIRROR, None)
            assert rules.calls == [("add", 80)]

            await send(second, from_session.PortUnsubscribe(80))
            await send(second, from_session.Ping(1))
            assert await receive(second) == to_session.Pong(1)
            assert rules.calls == [("add", 80)]

            # The stealer disconnecting drops its subscription: nobody is left, so the rule goes.
            await first.close()
            await until(lambda: server.session_count == 1)
            assert rules.calls == [("add", 80), ("remove", 80)]

    run(scenario())


def test_a_failing_rule_refuses_the_subscription_and_leaves_nothing() -> None:
    async def scenario() -> None:
        rules = FakeRules(fail_ports=frozenset({81}))
        async with agent(rules) as (_, url), client(url) as ws:
            await hello(ws)
            await send(ws, from_session.PortSubscribe(81, Mode.MIRROR, handover=False))
            result = await receive(ws)
            assert isinstance(result, to_session.PortSubscribeResult)
            assert result.error is not None
            assert "81" in result.error
            # Retrying asks for the rule again: the failed attempt left no subscription behind.
            await send(ws, from_session.PortSubscribe(81, Mode.MIRROR, handover=False))
            again = await receive(ws)
            assert isinstance(again, to_session.PortSubscribeResult)
            assert again.error is not None

    run(scenario())


def test_invalid_port_is_refused() -> None:
    async def scenario() -> None:
        rules = FakeRules()
        async with agent(rules) as (_, url), client(url) as ws:
            await hello(ws)
            await send(ws, from_session.PortSubscribe(0, Mode.MIRROR, handover=False))
            result = await receive(ws)
            assert isinstance(result, to_session.PortSubscribeResult)
            assert result.error is not None
            assert rules.calls == []

    run(scenario())


def test_wait_idle_returns_after_the_last_session_leaves() -> None:
    async def scenario() -> None:
        async with agent() as (server, url):
            async with client(url) as ws:
                await hello(ws)
                idle = asyncio.ensure_future(server.wait_idle(0.05))
                await send(ws, from_session.Ping(7))
                assert await receive(ws) == to_session.Pong(7)
                assert not idle.done()
            await asyncio.wait_for(idle, TIMEOUT)
            assert server.session_count == 0

    run(scenario())


# --- the outbox --------------------------------------------------------------------------------------------


def test_outbox_sends_in_order_refuses_copies_over_its_bound_and_paces_writers() -> None:
    async def scenario() -> None:
        sent: list[list[bytes]] = []
        room = True

        def send(frames: list[bytes]) -> None:
            sent.append(frames)

        outbox = Outbox(send, lambda: room, limit=10, resume_below=4)
        outbox.put(b"aaaa")
        outbox.put(b"bb")
        await asyncio.wait_for(outbox.flush(), TIMEOUT)
        assert sent == [[b"aaaa", b"bb"]]  # one turn's messages leave together
        room = False  # the websocket is full: nothing leaves until it says it has room
        assert outbox.offer(b"cccc")
        assert not outbox.offer(b"ddddddd")  # 4 + 7 > 10
        outbox.put(b"eeeeee")  # control messages always go in
        writable = asyncio.ensure_future(outbox.wait_writable())
        flushed = asyncio.ensure_future(outbox.flush())
        await asyncio.sleep(0)  # a turn of the loop: the scheduled send finds no room
        assert not writable.done()
        assert not flushed.done()
        assert sent == [[b"aaaa", b"bb"]]
        room = True
        outbox.resume()
        await asyncio.wait_for(writable, TIMEOUT)
        await asyncio.wait_for(flushed, TIMEOUT)
        assert sent == [[b"aaaa", b"bb"], [b"cccc", b"eeeeee"]]
        outbox.close()
        assert outbox.offer(b"x" * 100)  # a closed outbox swallows everything
        await asyncio.wait_for(outbox.wait_writable(), TIMEOUT)

    run(scenario())


def test_a_session_leaving_before_its_hello_is_no_error(caplog: pytest.LogCaptureFixture) -> None:
    async def scenario() -> None:
        async with agent() as (server, url):
            async with client(url):
                pass
            async with client(url) as ws:
                await hello(ws)
            assert server.session_count <= 1

    with caplog.at_level(logging.INFO):
        run(scenario())
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert any("left before its handshake" in r.getMessage() for r in caplog.records)
