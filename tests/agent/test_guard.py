"""The guard's pipe protocol and start-up; rule removal by a real guard is in tests/integration."""

from __future__ import annotations

import io
import os
import signal
import tempfile

import pytest

from pymirrord.agent.errors import GuardError
from pymirrord.agent.guard import parse_args, spawn_guard, wait_for_release


@pytest.mark.parametrize(
    ("data", "released"),
    [
        (b"", False),
        (b"hello\n", False),
        (b"hello\nrelease\n", True),
        (b"release", False),
        (b"release\nx\n", True),
    ],
)
def test_wait_for_release(data: bytes, released: bool) -> None:
    assert wait_for_release(io.BytesIO(data)) is released


def test_parse_args() -> None:
    args = parse_args(["--agent-id", "ab12", "--ipv6", "--target", "netns/pod"])
    assert (args.agent_id, args.ipv6, args.target) == ("ab12", True, "netns/pod")
    assert parse_args(["--agent-id", "ab12"]).target is None


def test_spawn_guard_refuses_bad_agent_id() -> None:
    with pytest.raises(ValueError):
        spawn_guard("not valid!")


def test_guard_that_cannot_start_reports_why() -> None:
    with tempfile.TemporaryFile() as log:
        with pytest.raises(GuardError) as info:
            spawn_guard("ab12", target="netns/pmd-test-does-not-exist", stderr=log)
        log.seek(0)
        assert b"pmd-test-does-not-exist" in log.read()
    assert "exited with status 2" in info.value.message


def test_released_guard_exits_without_work_even_after_sigint() -> None:
    # No target and a release: the guard never runs iptables, so this needs no namespace.
    guard = spawn_guard("ab12")
    try:
        assert sorted(os.listdir(f"/proc/{guard.pid}/fd")) == ["0", "1", "2"]
        assert os.readlink(f"/proc/{guard.pid}/fd/1") == "/dev/null"
        # Its own session: Ctrl-C at a terminal is sent to the foreground group, which it is not in.
        assert os.getsid(guard.pid) == guard.pid
        os.kill(guard.pid, signal.SIGINT)
        assert guard.release() == 0
    finally:
        guard.process.kill()
        guard.process.wait()
