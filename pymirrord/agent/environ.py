"""Reading the target's environment variables from ``/proc``.

A ``pid/PID`` target (and a Kubernetes target, which the agent turns into the pid of the container's first
process) is read from ``/proc/PID/environ``: the environment the process was started with, so variables from
``envFrom``, secrets and the image's own ``ENV`` are all there. A ``netns/NAME`` target is read from the first
process (the oldest) in that network namespace, pymirrord's agents and guards excepted; when none runs there,
the answer is empty with a warning. Only names are ever logged.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from pymirrord.agent.target import PROC_DIR, LocalTarget, network_namespace_id

TOKEN_VARIABLE = b"PYMIRRORD_AGENT_TOKEN="
"""Agents and their guards hold it in their environment; it tells them apart from the pod's processes."""


@dataclass(frozen=True)
class ProcessEnvironment:
    """The variables read (``source`` names the process), or none with a ``warning`` saying why."""

    variables: dict[str, str]
    source: str
    warning: str | None = None


def parse_environ(raw: bytes) -> tuple[dict[str, str], list[str]]:
    """The variables of a ``/proc/PID/environ`` text, and the names of entries that are not UTF-8.

    Entries without ``=`` (a process may write anything there) are skipped; the first of two equal names wins,
    as in ``getenv``.
    """
    variables: dict[str, str] = {}
    undecodable: list[str] = []
    for entry in raw.split(b"\0"):
        name, sep, value = entry.partition(b"=")
        if not sep or not name:
            continue
        try:
            text_name = name.decode("utf-8")
            text_value = value.decode("utf-8")
        except UnicodeDecodeError:
            undecodable.append(name.decode("utf-8", "replace"))
            continue
        variables.setdefault(text_name, text_value)
    return variables, undecodable


def read_process_environment(pid: int, *, proc_dir: Path = PROC_DIR) -> ProcessEnvironment:
    """The environment of process ``pid``, or an empty one with a warning when it cannot be read."""
    source = f"process {pid}"
    try:
        raw = (proc_dir / str(pid) / "environ").read_bytes()
    except FileNotFoundError:
        return ProcessEnvironment({}, source, f"{source} has exited; no variables were taken from it")
    except PermissionError:
        return ProcessEnvironment(
            {}, source, f"not allowed to read the environment of {source}; no variables were taken from it"
        )
    except OSError as error:
        return ProcessEnvironment(
            {}, source, f"cannot read the environment of {source} ({error.strerror}); no variables taken"
        )
    variables, undecodable = parse_environ(raw)
    warning = None
    if undecodable:
        warning = f"{len(undecodable)} variables of {source} are not UTF-8 and were left out: " + ", ".join(
            sorted(undecodable)
        )
    return ProcessEnvironment(variables, source, warning)


def _start_time(process_dir: Path) -> int:
    stat = (process_dir / "stat").read_text()
    # Field 22 (start time); the command name (field 2) is in parentheses and may contain anything.
    return int(stat[stat.rindex(")") + 2 :].split()[19])


def first_process_in_namespace(
    netns_path: Path, *, proc_dir: Path = PROC_DIR, skip: frozenset[int] = frozenset()
) -> int | None:
    """The oldest process in the network namespace ``netns_path``, pymirrord's agents and guards excepted."""
    wanted = network_namespace_id(netns_path)
    found: list[tuple[int, int]] = []
    for entry in proc_dir.iterdir():
        if not entry.name.isdecimal() or int(entry.name) in skip:
            continue
        try:
            if network_namespace_id(entry / "ns" / "net") != wanted:
                continue
            if TOKEN_VARIABLE in (entry / "environ").read_bytes():
                continue
            found.append((_start_time(entry), int(entry.name)))
        except (OSError, ValueError, IndexError):
            continue  # exited while we looked, or not ours to read
    return min(found)[1] if found else None


def target_environment(target: LocalTarget, *, proc_dir: Path = PROC_DIR) -> ProcessEnvironment:
    """The environment of the target's process, as it is now."""
    if target.kind == "pid":
        return read_process_environment(int(target.name_or_pid), proc_dir=proc_dir)
    pid = first_process_in_namespace(target.netns_path, proc_dir=proc_dir, skip=frozenset({os.getpid()}))
    if pid is None:
        return ProcessEnvironment(
            {},
            "",
            f"no process runs in the network namespace of {target}; the local process gets no variables "
            "from it",
        )
    return read_process_environment(pid, proc_dir=proc_dir)
