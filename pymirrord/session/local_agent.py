"""Start an agent on this machine for a local target (``netns/NAME``, ``pid/PID``) and stop it again."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import signal
import sys
from dataclasses import dataclass

from pymirrord.agent.target import parse_target
from pymirrord.console import line
from pymirrord.privileges import missing_here
from pymirrord.session.errors import AgentUnavailable, NotPermitted

# An agent whose session vanished (the exec process was killed) exits by itself after this long.
IDLE_TIMEOUT = 10.0


def require_local_privileges(target: str) -> None:
    missing = missing_here()
    if missing:
        raise NotPermitted(
            f"{target} is on this machine, and reaching it needs {' and '.join(missing)}",
            "run pymirrord as root (sudo), or grant it CAP_NET_ADMIN and CAP_SYS_ADMIN",
        )


@dataclass
class LocalAgent:
    """A running ``pymirrord agent`` child process and how to reach it."""

    process: asyncio.subprocess.Process
    url: str
    token: str
    agent_id: str
    _stderr_task: asyncio.Task[None]

    @classmethod
    async def start(cls, target: str, timeout: float) -> LocalAgent:
        require_local_privileges(target)
        # The agent would find a missing namespace or process too, but only after a process start.
        parse_target(target)
        token = secrets.token_urlsafe(32)
        env = dict(os.environ, PYMIRRORD_AGENT_TOKEN=token)
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "pymirrord",
            "agent",
            "--target",
            target,
            "--listen",
            "127.0.0.1:0",
            "--idle-timeout",
            f"{IDLE_TIMEOUT:g}",
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=env,
            # Its own process group: a Ctrl-C in the terminal is for the app; the agent is stopped by us,
            # after the app, so that rules are removed in order.
            start_new_session=True,
        )
        assert process.stdout is not None and process.stderr is not None
        stderr_lines: list[str] = []
        stderr_task = asyncio.create_task(_collect(process.stderr, stderr_lines))
        try:
            line = await asyncio.wait_for(process.stdout.readline(), timeout)
        except asyncio.CancelledError:
            # Cancelled while starting (Ctrl-C, an editor's cancel): the agent must not outlive us.
            await asyncio.shield(_stop(process))
            stderr_task.cancel()
            raise
        except TimeoutError:
            await _stop(process)
            raise AgentUnavailable(
                f"the agent for {target} did not start within {timeout:g} s",
                "raise agent.startup_timeout, or look at the agent's log: " + _tail(stderr_lines),
            ) from None
        if not line:
            await process.wait()
            await stderr_task
            message, hint = _agent_error(stderr_lines)
            raise AgentUnavailable(
                f"the agent for {target} could not start: {message}"
                if message
                else f"the agent for {target} exited with status {process.returncode} before it was ready",
                hint or "set PYMIRRORD_AGENT_LOG=1 to see the agent's log",
            )
        try:
            ready = json.loads(line)
            address = ready["address"]
            agent_id = str(ready.get("agent_id", ""))
        except (ValueError, KeyError, TypeError):
            await _stop(process)
            raise AgentUnavailable(f"the agent printed an unexpected ready line: {line!r}") from None
        return cls(process, f"ws://{address}/", token, agent_id, stderr_task)

    async def stop(self) -> None:
        await _stop(self.process)
        with contextlib.suppress(asyncio.CancelledError):
            await self._stderr_task


async def _collect(stream: asyncio.StreamReader, lines: list[str]) -> None:
    """Keeps the agent's last log lines for error messages, and mirrors its warnings to our stderr."""
    while raw := await stream.readline():
        text = raw.decode("utf-8", "replace").rstrip()
        lines.append(text)
        del lines[:-20]
        if os.environ.get("PYMIRRORD_AGENT_LOG"):
            line(f"[agent] {text}")


def _agent_error(lines: list[str]) -> tuple[str, str]:
    """The agent's own last error and hint (it prints ``pymirrord: error: ...`` then ``  hint: ...``)."""
    for index in range(len(lines) - 1, -1, -1):
        if lines[index].startswith("pymirrord: error: "):
            message = lines[index].removeprefix("pymirrord: error: ")
            following = lines[index + 1].strip() if index + 1 < len(lines) else ""
            return message, following.removeprefix("hint: ") if following.startswith("hint: ") else ""
    return "", ""


def _tail(lines: list[str]) -> str:
    return " | ".join(line for line in lines[-5:] if line)


async def _stop(process: asyncio.subprocess.Process, grace: float = 5.0) -> None:
    if process.returncode is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        process.send_signal(signal.SIGTERM)
    try:
        await asyncio.wait_for(process.wait(), grace)
    except TimeoutError:
        # Its guard process removes the rules when it dies this way.
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        await process.wait()
