"""A targetless agent in-process: no rules, so every port subscription is refused with a hint to pick a
target.

The whole agent as a process (outgoing connections and DNS through it) is in
``tests/integration/test_agent_targetless.py``.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from websockets.asyncio.client import ClientConnection, connect

from pymirrord.agent.incoming import Incoming
from pymirrord.agent.server import AgentServer
from pymirrord.agent.subscriptions import Subscriptions
from pymirrord.cli import _build_parser
from pymirrord.protocol import PROTOCOL_VERSION
from pymirrord.protocol import agent_to_session as to_session
from pymirrord.protocol import session_to_agent as from_session
from pymirrord.protocol.http_types import HttpFilterSpec
from pymirrord.protocol.types import Mode

TOKEN = "targetless-token"
TIMEOUT = 10.0


@asynccontextmanager
async def targetless_agent() -> AsyncIterator[tuple[AgentServer, Subscriptions, str]]:
    subscriptions = Subscriptions()
    incoming = Incoming(subscriptions, bypass_mark=1)
    server = AgentServer(
        token=TOKEN, target="targetless", rules=None, subscriptions=subscriptions, incoming=incoming
    )
    sock = socket.create_server(("127.0.0.1", 0))
    await server.start(sock)
    try:
        yield server, subscriptions, f"ws://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        await server.close()
        await incoming.close()


async def receive(ws: ClientConnection) -> to_session.AgentToSession:
    frame = await asyncio.wait_for(ws.recv(), TIMEOUT)
    assert isinstance(frame, bytes)
    return to_session.CODEC.decode(frame)


async def subscribe(
    ws: ClientConnection, message: from_session.PortSubscribe
) -> to_session.PortSubscribeResult:
    await ws.send(from_session.CODEC.encode(message))
    answer = await receive(ws)
    assert isinstance(answer, to_session.PortSubscribeResult)
    return answer


@pytest.mark.parametrize("mode", [Mode.MIRROR, Mode.STEAL])
def test_a_targetless_agent_refuses_subscriptions_and_says_why(mode: Mode) -> None:
    async def scenario() -> None:
        async with targetless_agent() as (server, subscriptions, url):
            headers = {"Authorization": f"Bearer {TOKEN}"}
            async with connect(url, additional_headers=headers, proxy=None, open_timeout=TIMEOUT) as ws:
                await ws.send(from_session.CODEC.encode(from_session.ClientHello(PROTOCOL_VERSION, "t", "t")))
                hello = await receive(ws)
                assert isinstance(hello, to_session.AgentHello)
                assert hello.target == "targetless"
                assert hello.handover_path is None

                result = await subscribe(ws, from_session.PortSubscribe(8080, mode, handover=True))
                assert result.port == 8080 and result.mode is mode
                assert result.error is not None
                assert "targetless" in result.error
                assert "cannot mirror or steal port 8080" in result.error
                assert "pick a target" in result.error

                http = HttpFilterSpec(path="^/api")
                filtered = await subscribe(ws, from_session.PortSubscribe(80, mode, False, http))
                assert filtered.error is not None and "targetless" in filtered.error

                # Nothing was recorded, and the session keeps working after the refusals.
                assert not subscriptions.session_gone(1)
                await ws.send(from_session.CODEC.encode(from_session.Ping(7)))
                assert await receive(ws) == to_session.Pong(7)
                await ws.send(from_session.CODEC.encode(from_session.PortUnsubscribe(8080)))
                await ws.send(from_session.CODEC.encode(from_session.Ping(8)))
                assert await receive(ws) == to_session.Pong(8)
                assert server.session_count == 1

    asyncio.run(asyncio.wait_for(scenario(), 30))


def test_the_agent_command_takes_targetless_instead_of_a_target(capsys: pytest.CaptureFixture[str]) -> None:
    parser = _build_parser()
    args = parser.parse_args(["agent", "--targetless", "--listen", "0.0.0.0:7000"])
    assert args.targetless and args.target is None and args.container_id is None
    for clash in (["--target", "netns/x"], ["--container-id", "containerd://abc"]):
        with pytest.raises(SystemExit):
            parser.parse_args(["agent", "--targetless", *clash])
        assert "not allowed with argument" in capsys.readouterr().err
