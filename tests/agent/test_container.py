"""Finding a container's process from its container id through /proc (fake trees, and a real cgroup)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from pymirrord.agent.container import (
    ContainerNotFound,
    cgroup_mentions,
    container_processes,
    find_container_pid,
    normalize_container_id,
)
from pymirrord.agent.errors import TargetError

CID = "4f1c" + "ab" * 30


def fake_proc(root: Path, processes: dict[int, tuple[int, str]]) -> Path:
    """A /proc with ``pid -> (ppid, cgroup file text)``."""
    for pid, (ppid, cgroup) in processes.items():
        directory = root / str(pid)
        directory.mkdir()
        (directory / "cgroup").write_text(cgroup)
        (directory / "stat").write_text(f"{pid} (odd) name) S {ppid} {pid} {pid} 0 -1\n")
    (root / "self").mkdir()
    (root / "meminfo").write_text("")
    return root


@pytest.mark.parametrize(
    "text",
    [f"containerd://{CID}", f"cri-o://{CID}", f"docker://{CID}", CID, f"  containerd://{CID.upper()} "],
)
def test_normalize_strips_the_runtime_prefix(text: str) -> None:
    assert normalize_container_id(text) == CID


@pytest.mark.parametrize(
    "text", ["", "containerd://", "containerd://xyz", "abc", "containerd://" + "a" * 200]
)
def test_normalize_refuses_what_is_not_an_id(text: str) -> None:
    with pytest.raises(TargetError, match="invalid container id"):
        normalize_container_id(text)


@pytest.mark.parametrize(
    "line",
    [
        f"0::/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod1.slice/cri-containerd-{CID}.scope",
        f"0::/../../kubepods-burstable-pod2.slice/crio-{CID}.scope",
        f"4:memory:/kubepods/besteffort/pod3/{CID}",
        f"0::/system.slice/docker-{CID}.scope",
    ],
)
def test_cgroup_lines_of_every_runtime_name_the_container(line: str) -> None:
    assert cgroup_mentions(f"1:cpu:/\n{line}\n", CID) == line


def test_a_longer_id_that_merely_contains_it_does_not_count() -> None:
    assert cgroup_mentions(f"0::/kubepods/pod1/{CID}ff\n", CID) is None
    assert cgroup_mentions(f"0::/kubepods/pod1/aa{CID}\n", CID) is None


def test_the_containers_first_process_is_chosen(tmp_path: Path) -> None:
    scope = f"0::/kubepods/pod1/cri-containerd-{CID}.scope\n"
    proc = fake_proc(
        tmp_path,
        {
            1: (0, "0::/\n"),
            500: (1, "0::/system.slice/containerd.service\n"),  # the shim, outside the container
            612: (500, scope),  # the container's first process
            640: (612, scope),  # its child
            700: (1, f"0::/kubepods/pod9/cri-containerd-{'9' * 64}.scope\n"),  # another container
        },
    )
    assert [p.pid for p in container_processes(f"containerd://{CID}", proc_dir=proc)] == [612, 640]
    assert find_container_pid(f"containerd://{CID}", proc_dir=proc) == 612


def test_no_process_names_what_was_scanned(tmp_path: Path) -> None:
    proc = fake_proc(tmp_path, {1: (0, "0::/\n"), 2: (1, "0::/other\n")})
    with pytest.raises(ContainerNotFound) as caught:
        find_container_pid(f"containerd://{CID}", proc_dir=proc)
    assert caught.value.message == f"no process of container {CID[:12]} found among the 2 processes in {proc}"
    assert "hostPID" in caught.value.hint


def test_a_process_that_vanishes_while_scanning_is_skipped(tmp_path: Path) -> None:
    proc = fake_proc(tmp_path, {7: (1, f"0::/x/{CID}\n")})
    (proc / "8").mkdir()  # exited: no files left
    assert find_container_pid(CID, proc_dir=proc) == 7


def test_a_real_process_in_a_container_cgroup_is_found() -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from kube.cgroups import cgroup2_root, container_cgroup

    if cgroup2_root() is None or not Path("/proc/self/cgroup").exists():
        pytest.skip("no cgroup v2 hierarchy")
    import os

    if os.geteuid() != 0:
        pytest.skip("moving a process between cgroups needs root")
    container_id = os.urandom(32).hex()
    child = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
    try:
        with container_cgroup(container_id) as cgroup:
            cgroup.add(child.pid)
            assert find_container_pid(f"containerd://{container_id}") == child.pid
    finally:
        assert child.stdin is not None
        child.stdin.close()
        child.wait(10)
