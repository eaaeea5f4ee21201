"""Opening a session for a resolved config: the right agent, the link to it, and the relay.

``pymirrord exec`` and the editor helper's ``prepareLaunch`` both open sessions here, so a debug launch
and a terminal run get the same agent, the same socket handover and the same HTTP filter.
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass

from pymirrord.config.model import ResolvedConfig
from pymirrord.kube.deploy import KubeAgent
from pymirrord.kube.progress import Progress
from pymirrord.protocol.types import Mode
from pymirrord.session.agent_link import AgentLink
from pymirrord.session.http_requests import apply_http_filter
from pymirrord.session.local_agent import LocalAgent
from pymirrord.session.session import EventSink, Session, SessionObserver

LOCAL_TARGET_PREFIXES = ("netns/", "pid/")
HANDOVER_SWITCH = "PYMIRRORD_HANDOVER"
"""Set to 0 to relay the connections of a local target through the session like remote ones."""

Agent = LocalAgent | KubeAgent


def is_local_target(target: str) -> bool:
    return target.startswith(LOCAL_TARGET_PREFIXES)


@dataclass
class OpenSession:
    """A running agent and the session relaying to it; ``close`` stops both."""

    agent: Agent
    session: Session

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
    agent: Agent | None = None
    session: Session | None = None
    try:
        if local:
            agent = await LocalAgent.start(target, timeout)
        else:
            agent = await KubeAgent.start(config, progress=progress)
        link = await AgentLink.open(agent.url, agent.token, name, timeout)
        # A local agent hands connections over as sockets: the app then talks to its peers directly.
        handover = handover and local and os.environ.get(HANDOVER_SWITCH, "1") != "0"
        mode = Mode.STEAL if config.incoming.mode == "steal" else Mode.MIRROR
        session = Session(link, mode, socket_path, on_event, handover=handover, observer=observer)
        apply_http_filter(session.state, config.incoming.http_filter)
        await session.start()
    except BaseException:
        await asyncio.shield(_release(session, agent))
        raise
    return OpenSession(agent, session)


async def _release(session: Session | None, agent: Agent | None) -> None:
    try:
        if session is not None:
            await session.close()
    finally:
        if agent is not None:
            await agent.stop()
