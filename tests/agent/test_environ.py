"""Reading a target's environment from /proc: real processes with known environments."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from pymirrord.agent.environ import (
    first_process_in_namespace,
    parse_environ,
    read_process_environment,
    target_environment,
)
from pymirrord.agent.target import LocalTarget

WAIT = "import sys; print('ready', flush=True); sys.stdin.read()"


@contextmanager
def process(env: dict[str, str] | dict[bytes, bytes]) -> Iterator[subprocess.Popen[bytes]]:
    """A process started with exactly ``env``; it waits until its stdin closes."""
    child = subprocess.Popen(
        [sys.executable, "-c", WAIT], env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    try:
        assert child.stdout is not None and child.stdout.readline() == b"ready\n"
        yield child
    finally:
        assert child.stdin is not None
        child.stdin.close()
        child.wait(15)


def test_parse_environ_keeps_the_first_of_equal_names_and_skips_junk() -> None:
    raw = b"A=1\0B=x=y\0A=2\0junk\0=nameless\0EMPTY=\0"
    assert parse_environ(raw) == ({"A": "1", "B": "x=y", "EMPTY": ""}, [])
    variables, undecodable = parse_environ(b"OK=1\0BAD=\xff\xfe\0")
    assert variables == {"OK": "1"} and undecodable == ["BAD"]


def test_a_process_environment_is_read_as_it_started() -> None:
    env = {"DATABASE_URL": "postgres://db/users", "MULTI": "line one\nline two", "PATH": "/usr/bin"}
    with process(env) as child:
        read = read_process_environment(child.pid)
    assert read.warning is None and read.source == f"process {child.pid}"
    assert {name: read.variables[name] for name in env} == env


def test_variables_that_are_not_utf8_are_left_out_by_name() -> None:
    with process({b"GOOD": b"yes", b"LATIN1": b"caf\xe9", b"PATH": b"/usr/bin"}) as child:
        read = read_process_environment(child.pid)
    assert read.variables["GOOD"] == "yes" and "LATIN1" not in read.variables
    assert read.warning is not None and "LATIN1" in read.warning and "caf" not in read.warning


def test_an_exited_process_gives_a_warning_not_an_error() -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait(15)
    read = read_process_environment(child.pid)
    assert read.variables == {} and read.warning is not None and "exited" in read.warning


def test_a_pid_target_reads_that_process(tmp_path: Path) -> None:
    with process({"WHO": "the target"}) as child:
        target = LocalTarget("pid", str(child.pid), Path(f"/proc/{child.pid}/ns/net"))
        assert target_environment(target).variables["WHO"] == "the target"


def _fake_process(proc: Path, pid: int, netns: Path, start: int, environ: bytes) -> None:
    entry = proc / str(pid)
    (entry / "ns").mkdir(parents=True)
    os.link(netns, entry / "ns" / "net")  # the same inode: the same namespace
    (entry / "environ").write_bytes(environ)
    fields = ["S", "1", *["0"] * 17, str(start), "0"]
    (entry / "stat").write_text(f"{pid} (some (odd) name) {' '.join(fields)}\n")


def test_the_oldest_process_of_a_namespace_is_chosen_and_agents_are_not(tmp_path: Path) -> None:
    # /proc/PID/ns/net of processes in one namespace are the same inode; a copy of that shape is enough to
    # check the choice among several processes (real namespaces: tests/integration/test_exec_env.py).
    proc = tmp_path / "proc"
    netns = tmp_path / "netns-pod"
    netns.write_text("")
    other = tmp_path / "netns-other"
    other.write_text("")
    _fake_process(proc, 10, netns, 500, b"A=young\0")
    _fake_process(proc, 11, netns, 100, b"PYMIRRORD_AGENT_TOKEN=t\0A=agent\0")
    _fake_process(proc, 12, netns, 200, b"A=oldest\0")
    _fake_process(proc, 13, other, 50, b"A=elsewhere\0")
    assert first_process_in_namespace(netns, proc_dir=proc) == 12
    assert first_process_in_namespace(netns, proc_dir=proc, skip=frozenset({12})) == 10
    target = LocalTarget("netns", "pod", netns)
    assert target_environment(target, proc_dir=proc).variables == {"A": "oldest"}


def test_a_namespace_without_processes_gives_a_warning(tmp_path: Path) -> None:
    netns = tmp_path / "netns-empty"
    netns.write_text("")
    (tmp_path / "proc").mkdir()
    read = target_environment(LocalTarget("netns", "empty", netns), proc_dir=tmp_path / "proc")
    assert read.variables == {} and read.warning is not None and "no process" in read.warning


@pytest.mark.skipif(os.geteuid() != 0, reason="reading other processes' environ needs the same user or root")
def test_the_real_proc_has_this_process_in_its_own_namespace() -> None:
    found = first_process_in_namespace(Path("/proc/self/ns/net"))
    assert found is not None
