"""Asking the agent for the target's environment variables (``feature.env``), on a link of its own.

The question is asked before the relay starts, on a second, short-lived link to the same agent: the relay's
link then carries only what the relay expects, and nothing it would have to set aside for later.
"""

from __future__ import annotations

import asyncio

from pymirrord.config.model import EnvConfig
from pymirrord.protocol import agent_to_session as from_agent
from pymirrord.protocol import session_to_agent as to_agent
from pymirrord.protocol.errors import ProtocolError
from pymirrord.remote_env import TargetEnvironment
from pymirrord.session.agent_link import AgentLink
from pymirrord.session.errors import AgentUnavailable

_REQUEST_ID = 1


async def ask_environment(
    url: str, token: str, name: str, env: EnvConfig, timeout: float
) -> tuple[TargetEnvironment, list[str]]:
    """The target's variables that ``env`` chooses (``env_file`` left empty), and the agent's log lines
    that came meanwhile. Raises ``AgentUnavailable`` when the agent does not answer."""
    link = await AgentLink.open(url, token, f"{name} (environment)", timeout)
    logs: list[str] = []
    try:
        result = await asyncio.wait_for(_answer(link, env, logs), timeout)
    except asyncio.TimeoutError:
        raise AgentUnavailable(
            f"the agent sent no environment within {timeout:g} s",
            "check the agent's log; feature.env: false (or --no-remote-env) skips the environment",
        ) from None
    except ProtocolError as error:
        raise AgentUnavailable(
            f"the agent broke off while sending the target's environment: {error}",
            "the agent and this pymirrord must be the same version",
        ) from None
    finally:
        await link.close()
    environment = TargetEnvironment(
        remote={variable.name: variable.value for variable in result.variables},
        source=result.source,
        warnings=(result.warning,) if result.warning else (),
    )
    return environment, logs


async def _answer(link: AgentLink, env: EnvConfig, logs: list[str]) -> from_agent.EnvResult:
    await link.send(to_agent.EnvRequest(_REQUEST_ID, env.include, env.exclude or ()))
    async for message in link.messages():
        if isinstance(message, from_agent.EnvResult) and message.request_id == _REQUEST_ID:
            return message
        if isinstance(message, from_agent.Log):
            logs.append(message.message)
        elif isinstance(message, from_agent.ErrorReport):
            raise AgentUnavailable(
                f"the agent refused to send the target's environment: {message.message}", message.hint
            )
        else:
            raise ProtocolError(f"expected EnvResult, the agent sent {type(message).__name__}")
    raise AgentUnavailable(
        "the agent closed the link instead of sending the target's environment",
        "the agent and this pymirrord must be the same version",
    )
