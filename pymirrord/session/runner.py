"""``pymirrord exec``: start the agent and the session, run the command with the layer, clean up.

Every exit path (the command ends, Ctrl-C, SIGTERM, the agent failing to start, the command not
existing) stops the command, closes the session and stops the agent, whose exit removes its rules.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import sys
import tempfile
from collections.abc import Mapping, Sequence
from typing import Any

from pymirrord.kube.deploy import KubeAgent
from pymirrord.kube.progress import terminal_progress
from pymirrord.protocol.types import Mode
from pymirrord.session.agent_link import AgentLink
from pymirrord.session.errors import SessionError
from pymirrord.session.http_requests import apply_http_filter
from pymirrord.session.layer_env import layer_environment, layer_settings_for
from pymirrord.session.local_agent import LocalAgent
from pymirrord.session.session import EventSink, Session, print_events

LOCAL_TARGET_PREFIXES = ("netns/", "pid/")
HANDOVER_SWITCH = "PYMIRRORD_HANDOVER"
"""Set to 0 to relay stolen connections of a local target through the session like remote ones."""


def is_local_target(target: str) -> bool:
    return target.startswith(LOCAL_TARGET_PREFIXES)


def run(config: Any, command: Sequence[str], on_event: EventSink = print_events) -> int:
    """Runs ``command`` under pymirrord with a resolved config; returns the exit status to use."""
    return asyncio.run(_run(config, list(command), on_event))


async def _run(config: Any, command: list[str], on_event: EventSink) -> int:
    # No target means targetless: an agent pod in the cluster for outgoing traffic and DNS only.
    target = config.target.path or "targetless"
    executable = shutil.which(command[0])
    if executable is None:
        raise SessionError(f"cannot run {command[0]!r}: command not found", "check the command and PATH")

    mode = Mode.STEAL if config.incoming.mode == "steal" else Mode.MIRROR
    workdir = tempfile.mkdtemp(prefix="pymirrord-")  # mode 0700: only this user reaches the socket
    agent: LocalAgent | KubeAgent | None = None
    session: Session | None = None
    try:
        if is_local_target(target):
            agent = await LocalAgent.start(target, float(config.agent.startup_timeout))
        else:
            agent = await KubeAgent.start(config, progress=terminal_progress())
        link = await AgentLink.open(
            agent.url,
            agent.token,
            f"exec {os.path.basename(command[0])}",
            float(config.agent.startup_timeout),
        )
        # A local agent hands stolen connections over as sockets: the app then talks to the client directly.
        handover = is_local_target(target) and os.environ.get(HANDOVER_SWITCH, "1") != "0"
        session = Session(link, mode, os.path.join(workdir, "layer.sock"), on_event, handover=handover)
        apply_http_filter(session.state, config.incoming.http_filter)
        await session.start()
        env = child_environment(config, session.socket_path, os.environ)
        return await _run_child(executable, command, env)
    finally:
        # Shielded: a second Ctrl-C during cleanup must not leave the agent or its rules behind.
        await asyncio.shield(_cleanup(session, agent, workdir))


def child_environment(config: Any, socket_path: str, base: Mapping[str, str]) -> dict[str, str]:
    """The command's environment: ``base`` with the layer injected, exactly as ``prepareLaunch`` does it."""
    added, unset = layer_environment(layer_settings_for(config), socket_path, base)
    return {k: v for k, v in base.items() if k not in unset} | added


async def _run_child(executable: str, command: list[str], env: dict[str, str]) -> int:
    try:
        child = await asyncio.create_subprocess_exec(executable, *command[1:], env=env)
    except OSError as error:
        raise SessionError(f"cannot run {command[0]!r}: {error.strerror}") from None
    loop = asyncio.get_running_loop()

    def forward(signum: int) -> None:
        if signum == signal.SIGINT and _terminal_sent_it_to_the_child():
            return
        with contextlib.suppress(ProcessLookupError):
            child.send_signal(signum)

    handled = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    for signum in handled:
        loop.add_signal_handler(signum, forward, signum)
    try:
        status = await child.wait()
    finally:
        for signum in handled:
            loop.remove_signal_handler(signum)
        if child.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                child.kill()
            await child.wait()
    return 128 - status if status < 0 else status


def _terminal_sent_it_to_the_child() -> bool:
    """A Ctrl-C typed in our terminal reaches the whole foreground process group, the child included."""
    try:
        return os.tcgetpgrp(sys.stdin.fileno()) == os.getpgrp()
    except (OSError, ValueError):
        return False


async def _cleanup(session: Session | None, agent: LocalAgent | KubeAgent | None, workdir: str) -> None:
    if session is not None:
        await session.close()
    if agent is not None:
        await agent.stop()
    shutil.rmtree(workdir, ignore_errors=True)
