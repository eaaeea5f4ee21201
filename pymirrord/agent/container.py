"""Find a container's process from its container id, through ``/proc``, for any container runtime.

A pod's status names each container as ``<runtime>://<id>`` (``containerd://``, ``cri-o://``,
``docker://``). Every runtime puts the container's processes in a cgroup whose path contains that id
(``cri-containerd-<id>.scope``, ``crio-<id>.scope``, ``docker-<id>.scope``, ``/kubepods/.../<id>``), in cgroup
v1 and v2 alike, and seen from inside another cgroup namespace the path still ends with it. So scanning
``/proc/*/cgroup`` finds the container's processes without talking to any runtime; the agent (running with
``hostPID``) then works exactly as for a ``pid/PID`` target. Among the container's processes the one whose
parent is outside the container (its first process) is chosen, so the choice is stable while it lives.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from pymirrord.agent.errors import TargetError

PROC_DIR = Path("/proc")
_RUNTIME_PREFIX = re.compile(r"^[a-z0-9][a-z0-9.+-]*://")
_ID = re.compile(r"^[0-9a-f]{12,128}$")


class ContainerNotFound(TargetError):
    """No process on this host belongs to the container with the given id."""


@dataclass(frozen=True)
class ContainerProcess:
    """A process of the container, and the cgroup line that proves it."""

    pid: int
    ppid: int
    cgroup: str


def normalize_container_id(container_id: str) -> str:
    """``containerd://0a1b...`` -> ``0a1b...`` (12 to 128 lowercase hex digits), else ``TargetError``."""
    text = _RUNTIME_PREFIX.sub("", container_id.strip()).lower()
    if not _ID.match(text):
        raise TargetError(
            f"invalid container id {container_id!r}",
            "pass the containerID from the pod's status, e.g. containerd://<64 hex digits>",
        )
    return text


def cgroup_mentions(cgroup_text: str, container_id: str) -> str | None:
    """The first line of a ``/proc/PID/cgroup`` whose path names the container (as a whole hex word)."""
    pattern = re.compile(rf"(?<![0-9a-f]){re.escape(container_id)}(?![0-9a-f])")
    for line in cgroup_text.splitlines():
        path = line.split(":", 2)[-1]
        if pattern.search(path):
            return line
    return None


def container_processes(container_id: str, *, proc_dir: Path = PROC_DIR) -> list[ContainerProcess]:
    """Every process whose cgroup names the container, sorted by pid."""
    wanted = normalize_container_id(container_id)
    found = []
    for entry in proc_dir.iterdir():
        if not entry.name.isdecimal():
            continue
        try:
            line = cgroup_mentions((entry / "cgroup").read_text(), wanted)
            if line is None:
                continue
            stat = (entry / "stat").read_text()
        except OSError:
            continue  # exited while we looked, or not ours to read
        # Field 4 (ppid) follows the command name, which is in parentheses and may contain anything.
        fields = stat[stat.rindex(")") + 2 :].split()
        found.append(ContainerProcess(int(entry.name), int(fields[1]), line))
    return sorted(found, key=lambda process: process.pid)


def find_container_pid(container_id: str, *, proc_dir: Path = PROC_DIR) -> int:
    """The pid of the container's first process (any of its processes shares its network namespace).

    Raises ``ContainerNotFound`` naming what was scanned when no process belongs to the container.
    """
    wanted = normalize_container_id(container_id)
    processes = container_processes(wanted, proc_dir=proc_dir)
    if not processes:
        scanned = sum(1 for entry in proc_dir.iterdir() if entry.name.isdecimal())
        raise ContainerNotFound(
            f"no process of container {wanted[:12]} found among the {scanned} processes in {proc_dir}",
            "the agent needs hostPID and must run on the target's node; the container may also have "
            "restarted (its id changes): start the session again",
        )
    pids = {process.pid for process in processes}
    roots = [process for process in processes if process.ppid not in pids]
    return (roots or processes)[0].pid
