"""Parsing local targets and entering their network namespace."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from pymirrord.agent.errors import (
    InvalidTarget,
    NamespaceEntryFailed,
    TargetNotFound,
    TargetPermissionDenied,
)
from pymirrord.agent.target import (
    LocalTarget,
    enter_network_namespace,
    in_network_namespace,
    list_network_namespaces,
    parse_target,
    read_process_state,
)

STAT_TAIL = " ".join(["0"] * 40)


@pytest.fixture
def netns_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "netns"
    directory.mkdir()
    for name in ("pod", "client"):
        (directory / name).touch()
    return directory


def fake_process(proc_dir: Path, pid: int, state: str = "S", comm: str = "app") -> None:
    (proc_dir / str(pid) / "ns").mkdir(parents=True)
    (proc_dir / str(pid) / "stat").write_text(f"{pid} ({comm}) {state} {STAT_TAIL}\n")
    (proc_dir / str(pid) / "ns" / "net").touch()


def test_netns_target(netns_dir: Path) -> None:
    target = parse_target("netns/pod", netns_dir=netns_dir)
    assert target == LocalTarget("netns", "pod", netns_dir / "pod")
    assert str(target) == "netns/pod"


def test_missing_netns_lists_existing_ones(netns_dir: Path) -> None:
    with pytest.raises(TargetNotFound) as info:
        parse_target("netns/pdo", netns_dir=netns_dir)
    assert "'pdo' not found" in info.value.message
    assert info.value.hint == "existing namespaces: client, pod"


def test_missing_netns_with_no_namespaces_at_all(tmp_path: Path) -> None:
    with pytest.raises(TargetNotFound) as info:
        parse_target("netns/pod", netns_dir=tmp_path / "absent")
    assert "ip netns add" in info.value.hint
    assert list_network_namespaces(tmp_path / "absent") == []


@pytest.mark.parametrize("text", ["netns/", "netns/a/b", "netns/..", "netns/."])
def test_invalid_netns_names(text: str, netns_dir: Path) -> None:
    with pytest.raises(InvalidTarget, match="invalid namespace name"):
        parse_target(text, netns_dir=netns_dir)


@pytest.mark.parametrize("text", ["", "pod", "pod/web", "deployment/web", "NETNS/pod"])
def test_unknown_forms(text: str) -> None:
    with pytest.raises(InvalidTarget) as info:
        parse_target(text)
    assert "netns/NAME" in info.value.hint and "pid/PID" in info.value.hint


def test_pid_target(tmp_path: Path) -> None:
    fake_process(tmp_path, 42, comm="my (odd) app")
    target = parse_target("pid/42", proc_dir=tmp_path)
    assert target == LocalTarget("pid", "42", tmp_path / "42" / "ns" / "net")
    assert target.etc_dir == tmp_path / "42" / "root" / "etc"
    assert read_process_state(tmp_path / "42") == "S"


def test_pid_of_this_process() -> None:
    target = parse_target(f"pid/{os.getpid()}")
    assert target.netns_path == Path(f"/proc/{os.getpid()}/ns/net")
    assert in_network_namespace(target)


@pytest.mark.parametrize("text", ["pid/", "pid/-1", "pid/0", "pid/12a", "pid/١٢"])
def test_invalid_pids(text: str) -> None:
    with pytest.raises(InvalidTarget, match="invalid pid"):
        parse_target(text)


def test_pid_not_running(tmp_path: Path) -> None:
    with pytest.raises(TargetNotFound, match="no running process with pid 42"):
        parse_target("pid/42", proc_dir=tmp_path)


def test_zombie_pid_is_not_running(tmp_path: Path) -> None:
    fake_process(tmp_path, 42, state="Z")
    with pytest.raises(TargetNotFound, match="no running process"):
        parse_target("pid/42", proc_dir=tmp_path)


def test_permission_denied_on_pid(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_process(tmp_path, 42)
    real_stat = os.stat

    def stat(path: str | os.PathLike[str], *args: object, **kwargs: object) -> os.stat_result:
        if str(path).endswith("/ns/net"):
            raise PermissionError(13, "Permission denied")
        return real_stat(path)

    monkeypatch.setattr(os, "stat", stat)
    with pytest.raises(TargetPermissionDenied) as info:
        parse_target("pid/42", proc_dir=tmp_path)
    assert "CAP_SYS_ADMIN" in info.value.hint


def test_netns_etc_dir(tmp_path: Path, netns_dir: Path) -> None:
    target = parse_target("netns/pod", netns_dir=netns_dir)
    etc = tmp_path / "etc"
    etc.mkdir()
    assert target.etc_dir_under(etc) == etc
    (etc / "netns" / "pod").mkdir(parents=True)
    assert target.etc_dir_under(etc) == etc / "netns" / "pod"


def test_enter_refuses_when_not_on_the_main_thread(netns_dir: Path) -> None:
    target = parse_target("netns/pod", netns_dir=netns_dir)
    errors: list[BaseException] = []

    def enter() -> None:
        try:
            enter_network_namespace(target)
        except NamespaceEntryFailed as exc:
            errors.append(exc)

    thread = threading.Thread(target=enter)
    thread.start()
    thread.join(timeout=10)
    assert len(errors) == 1
    assert "other threads" in str(errors[0])


# setns changes the whole test process if it works, so those cases run in a child interpreter.
ENTER = r"""
import sys
from pathlib import Path
from pymirrord.agent.errors import AgentError
from pymirrord.agent.target import LocalTarget, enter_network_namespace, in_network_namespace
target = LocalTarget(sys.argv[1], sys.argv[2], Path(sys.argv[3]))
try:
    enter_network_namespace(target)
except AgentError as exc:
    print(type(exc).__name__, exc.message, "|", exc.hint)
else:
    print("entered", in_network_namespace(target))
"""


def run_enter(kind: str, name: str, path: Path | str) -> str:
    result = subprocess.run(
        [sys.executable, "-c", ENTER, kind, name, str(path)],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return result.stdout.strip()


def test_enter_own_namespace_through_libc() -> None:
    # Entering the namespace one is already in exercises the real setns call without moving anything.
    assert run_enter("pid", "1", "/proc/self/ns/net") == "entered True"


def test_enter_something_that_is_not_a_namespace(tmp_path: Path) -> None:
    (tmp_path / "net").touch()
    out = run_enter("netns", "fake", tmp_path / "net")
    assert out.startswith("NamespaceEntryFailed") and "is not a network namespace" in out


def test_enter_a_vanished_namespace(tmp_path: Path) -> None:
    out = run_enter("netns", "gone", tmp_path / "gone")
    assert out.startswith("TargetNotFound netns/gone no longer exists")
