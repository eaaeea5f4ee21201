"""Opening a session for a resolved config: the right agent, the link to it, and the relay.

``pymirrord exec`` and the editor helper's ``prepareLaunch`` both open sessions here, so a debug launch
and a terminal run get the same agent, the same socket handover, the same HTTP filter and the same
variables from the target (``feature.env``: asked from the agent before the relay starts,
``session.target_env``).
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
from dataclasses import dataclass, field

from pymirrord.config.env_file import read_env_file
from pymirrord.config.model import ResolvedConfig
from pymirrord.kube.deploy import KubeAgent
from pymirrord.kube.progress import Progress
from pymirrord.protocol.types import Mode
from pymirrord.remote_env import TargetEnvironment
from pymirrord.session.agent_link import AgentLink
from pymirrord.session.http_requests import apply_http_filter
from pymirrord.session.local_agent import LocalAgent
from pymirrord.session.session import EventSink, Session, SessionEvent, SessionObserver, shows_traffic
from pymirrord.session.target_env import ask_environment

LOCAL_TARGET_PREFIXES = ("netns/", "pid/")
HANDOVER_SWITCH = "PYMIRRORD_HANDOVER"
"""Set to 0 to relay the connections of a local target through the session like remote ones."""

Agent = LocalAgent | KubeAgent


def is_local_target(target: str) -> bool:
    return target.startswith(LOCAL_TARGET_PREFIXES)


@dataclass
class OpenSession:
    """A running agent and the session relaying to it; ``close`` stops both. ``environment`` holds what
    ``feature.env`` takes from the target and the env file, for ``layer_env.process_environment``."""

    agent: Agent
    session: Session
    environment: TargetEnvironment = field(default_factory=TargetEnvironment)

    async def close(self) -> None:
        try:
            await self.session.close()
        finally:
            await self.agent.stop()


async def open_session(
    config: ResolvedConfig,
    *,
    socket_path: str,
    name: str,
    on_event: EventSink,
    progress: Progress,
    observer: SessionObserver | None = None,
    handover: bool = True,
) -> OpenSession:
    """Starts the agent the config's target needs and a session on it; on failure nothing is left running.

    No target means targetless: an agent in the cluster for outgoing traffic and DNS only. ``handover``
    lets a local agent pass connections as sockets (the fastest path, but their bytes then bypass the
    session, which sees connections come and go and nothing of what they carry).
    """
    target = config.target.path or "targetless"
    timeout = float(config.agent.startup_timeout)
    local = is_local_target(target)
    # Read before anything starts: a bad env file must not cost an agent start.
    env_file = read_env_file(config.env.env_file) if config.env.env_file is not None else {}
    environment = TargetEnvironment(env_file=env_file)
    agent: Agent | None = None
    session: Session | None = None
    try:
        if local:
            agent = await LocalAgent.start(target, timeout)
        else:
            agent = await KubeAgent.start(config, progress=progress)
        if config.env.enabled and target != "targetless":
            remote, logs = await ask_environment(agent.url, agent.token, name, config.env, timeout)
            for message in logs:
                on_event(SessionEvent("log", message))
            environment = dataclasses.replace(remote, env_file=env_file)
        link = await AgentLink.open(
            agent.url, agent.token, name, timeout, report_traffic=shows_traffic(observer)
        )
        # A local agent hands connections over as sockets: the app then talks to its peers directly.
        handover = handover and local and os.environ.get(HANDOVER_SWITCH, "1") != "0"
        mode = Mode.STEAL if config.incoming.mode == "steal" else Mode.MIRROR
        # A Kubernetes port-forward carries no half-close: through one, tunnels announce their ends as
        # messages instead (counted tunnels).
        session = Session(
            link,
            mode,
            socket_path,
            on_event,
            handover=handover,
            observer=observer,
            forwarded=None if isinstance(agent, LocalAgent) else agent.forwarder,
        )
        apply_http_filter(session.state, config.incoming.http_filter)
        await session.start()
    except BaseException:
        await asyncio.shield(_release(session, agent))
        raise
    return OpenSession(agent, session, environment)


async def _release(session: Session | None, agent: Agent | None) -> None:
    try:
        if session is not None:
            await session.close()
    finally:
        if agent is not None:
            await agent.stop()
