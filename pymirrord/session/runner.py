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

from pymirrord import event_loop
from pymirrord.console import say
from pymirrord.kube.progress import terminal_progress
from pymirrord.open_files import raise_open_files_limit
from pymirrord.remote_env import TargetEnvironment, describe_names
from pymirrord.session.errors import SessionError
from pymirrord.session.layer_env import process_environment
from pymirrord.session.opening import OpenSession, open_session
from pymirrord.session.session import EventSink, print_events


def run(config: Any, command: Sequence[str], on_event: EventSink = print_events) -> int:
    """Runs ``command`` under pymirrord with a resolved config; returns the exit status to use."""
    raise_open_files_limit()
    return event_loop.run(_run(config, list(command), on_event))


async def _run(config: Any, command: list[str], on_event: EventSink) -> int:
    executable = shutil.which(command[0])
    if executable is None:
        raise SessionError(f"cannot run {command[0]!r}: command not found", "check the command and PATH")
    workdir = tempfile.mkdtemp(prefix="pymirrord-")  # mode 0700: only this user reaches the socket
    opened: OpenSession | None = None
    try:
        opened = await open_session(
            config,
            socket_path=os.path.join(workdir, "layer.sock"),
            name=f"exec {os.path.basename(command[0])}",
            on_event=on_event,
            progress=terminal_progress(),
        )
        env = child_environment(config, opened.session.socket_path, os.environ, opened.environment)
        return await _run_child(executable, command, env)
    finally:
        # Shielded: a second Ctrl-C during cleanup must not leave the agent or its rules behind.
        await asyncio.shield(_cleanup(opened, workdir))


def child_environment(
    config: Any,
    socket_path: str,
    base: Mapping[str, str],
    target: TargetEnvironment | None = None,
) -> dict[str, str]:
    """The command's environment: ``base`` with ``feature.env`` applied and the layer injected, exactly as
    ``prepareLaunch`` does it. Says which variables came from the target (names only)."""
    environment = process_environment(config, target or TargetEnvironment(), socket_path, base)
    for warning in target.warnings if target is not None else ():
        say(f"warning: {warning}")
    if environment.from_target:
        count = len(environment.from_target)
        source = f" ({target.source})" if target is not None and target.source else ""
        say(
            f"{count} environment variable{'s' if count != 1 else ''} from the target{source}: "
            + describe_names(environment.from_target)
        )
    return environment.apply(base)


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


async def _cleanup(opened: OpenSession | None, workdir: str) -> None:
    try:
        if opened is not None:
            await opened.close()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
