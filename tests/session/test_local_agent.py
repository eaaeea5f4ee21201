from __future__ import annotations

import asyncio
import sys
from typing import Any

import pytest

from pymirrord.agent.errors import TargetNotFound
from pymirrord.session import local_agent
from pymirrord.session.errors import NotPermitted
from pymirrord.session.local_agent import LocalAgent, _agent_error


def test_the_agents_own_error_and_hint_are_picked_from_its_log() -> None:
    lines = [
        "pymirrord agent[1]: INFO starting",
        "pymirrord: error: no running process with pid 7",
        "  hint: check the pid with `ps -p PID`",
    ]
    assert _agent_error(lines) == ("no running process with pid 7", "check the pid with `ps -p PID`")
    assert _agent_error(["pymirrord: error: boom"]) == ("boom", "")
    assert _agent_error(["something else"]) == ("", "")


def test_a_missing_local_target_fails_before_any_process_starts() -> None:
    with pytest.raises(TargetNotFound, match="network namespace 'pmd-surely-absent' not found"):
        asyncio.run(LocalAgent.start("netns/pmd-surely-absent", 5))


def test_without_capabilities_a_local_target_fails_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(local_agent, "missing_here", lambda: ["CAP_SYS_ADMIN", "CAP_NET_ADMIN"])
    with pytest.raises(NotPermitted, match="needs CAP_SYS_ADMIN and CAP_NET_ADMIN") as caught:
        asyncio.run(LocalAgent.start("netns/anything", 5))
    assert "root" in caught.value.hint


def test_cancelling_the_start_stops_the_agent(monkeypatch: pytest.MonkeyPatch) -> None:
    # An "agent" that never prints its ready line: only cancellation ends the wait.
    script = "import time; time.sleep(60)"
    started: list[asyncio.subprocess.Process] = []
    real_exec = asyncio.create_subprocess_exec
    monkeypatch.setattr(local_agent, "parse_target", lambda target: None)

    async def scenario() -> None:
        spawned = asyncio.Event()

        async def fake_exec(*args: str, **kwargs: Any) -> asyncio.subprocess.Process:
            process = await real_exec(sys.executable, "-c", script, **kwargs)
            started.append(process)
            spawned.set()
            return process

        monkeypatch.setattr(asyncio, "create_subprocess_exec", fake_exec)
        task = asyncio.create_task(LocalAgent.start("netns/x", 60))
        await asyncio.wait_for(spawned.wait(), 10)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(scenario())
    assert started[0].returncode is not None, "the agent process was stopped, not left running"
