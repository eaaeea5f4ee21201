"""Asking an agent for the target's environment: the agent's own server in-process, its /proc reading
replaced by a fixed environment (real /proc: tests/agent/test_environ.py and the integration tests)."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from pymirrord.agent.environ import ProcessEnvironment
from pymirrord.agent.incoming import Incoming
from pymirrord.agent.server import AgentServer, EnvironmentSource
from pymirrord.agent.subscriptions import Subscriptions
from pymirrord.config.model import EnvConfig
from pymirrord.session.target_env import ask_environment

TOKEN = "env-token"
TIMEOUT = 10.0
POD = {"DATABASE_URL": "postgres://db", "FEATURE_X": "on", "PATH": "/pod/bin", "KUBERNETES_PORT": "tcp://k"}


@asynccontextmanager
async def agent(environment: EnvironmentSource | None) -> AsyncIterator[str]:
    subscriptions = Subscriptions()
    incoming = Incoming(subscriptions, bypass_mark=1)
    server = AgentServer(
        token=TOKEN,
        target="netns/test" if environment is not None else "targetless",
        rules=None,
        subscriptions=subscriptions,
        incoming=incoming,
        environment=environment,
    )
    sock = socket.create_server(("127.0.0.1", 0))
    await server.start(sock)
    try:
        yield f"ws://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        await server.close()
        await incoming.close()


def test_the_agent_sends_what_include_and_exclude_choose() -> None:
    async def scenario() -> None:
        async with agent(lambda: ProcessEnvironment(dict(POD), "process 42")) as url:
            everything, _ = await ask_environment(url, TOKEN, "t", EnvConfig(), TIMEOUT)
            assert dict(everything.remote) == {"DATABASE_URL": "postgres://db", "FEATURE_X": "on"}
            assert everything.source == "process 42" and everything.warnings == ()
            chosen, _ = await ask_environment(
                url, TOKEN, "t", EnvConfig(include=("FEATURE_*", "PATH")), TIMEOUT
            )
            assert dict(chosen.remote) == {"FEATURE_X": "on", "PATH": "/pod/bin"}
            rest, _ = await ask_environment(url, TOKEN, "t", EnvConfig(exclude=("DATABASE_*",)), TIMEOUT)
            assert dict(rest.remote) == {"FEATURE_X": "on"}

    asyncio.run(asyncio.wait_for(scenario(), 30))


def test_missing_variables_come_with_the_agents_warning() -> None:
    async def scenario() -> None:
        warning = "no process runs in the network namespace of netns/test"
        async with agent(lambda: ProcessEnvironment({}, "", warning)) as url:
            environment, _ = await ask_environment(url, TOKEN, "t", EnvConfig(), TIMEOUT)
        assert dict(environment.remote) == {} and environment.warnings == (warning,)
        async with agent(None) as url:
            environment, _ = await ask_environment(url, TOKEN, "t", EnvConfig(), TIMEOUT)
        assert dict(environment.remote) == {} and "targetless" in environment.warnings[0]

    asyncio.run(asyncio.wait_for(scenario(), 30))
