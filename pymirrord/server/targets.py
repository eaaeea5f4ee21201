"""The targets a user can pick: local ones (named network namespaces, processes in a network namespace of
their own such as local containers) and, where a kubeconfig is set up, Kubernetes ones.

Providers are plain functions returning a ``Listing``; ``list_targets`` merges them. The Kubernetes provider
is used when ``pymirrord.kube.listing`` offers ``list_targets``; anything it cannot do becomes a note, never
an error, so that local targets are always listed.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

NETNS_DIR = Path("/run/netns")
PROC = Path("/proc")


@dataclass(frozen=True)
class Target:
    path: str
    kind: str
    namespace: str | None = None
    available: bool = True
    label: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "kind": self.kind,
            "namespace": self.namespace,
            "available": self.available,
            "label": self.label or self.path,
        }


@dataclass(frozen=True)
class Listing:
    targets: tuple[Target, ...] = ()
    current_namespace: str | None = None
    namespaces: tuple[str, ...] = ()
    notes: tuple[str, ...] = field(default_factory=tuple)

    def to_json(self) -> dict[str, Any]:
        return {
            "targets": [target.to_json() for target in self.targets],
            "currentNamespace": self.current_namespace,
            "namespaces": list(self.namespaces),
            "notes": list(self.notes),
        }

    def paths(self) -> list[str]:
        return [target.path for target in self.targets]


def _netns_inode(path: Path) -> int | None:
    try:
        return os.stat(path).st_ino
    except OSError:
        return None


def named_namespaces(netns_dir: Path = NETNS_DIR) -> list[tuple[str, int | None]]:
    """``ip netns`` names with their namespace inode (None when the entry cannot be opened)."""
    try:
        names = sorted(entry.name for entry in netns_dir.iterdir())
    except OSError:
        return []
    return [(name, _netns_inode(netns_dir / name)) for name in names]


def host_namespace(proc: Path = PROC) -> int | None:
    """The inode of the machine's own network namespace: pid 1's, or ours when pid 1's is hidden from us."""
    return _netns_inode(proc / "1" / "ns" / "net") or _netns_inode(proc / "self" / "ns" / "net")


_CONTAINER_ID = re.compile(r"(?:docker|containerd|crio|libpod|cri-containerd)[-/:]([0-9a-f]{12,64})")


def _read(path: Path) -> str:
    try:
        return path.read_bytes().decode("utf-8", "replace")
    except OSError:
        return ""


def describe_process(pid: int, proc: Path = PROC) -> str:
    """``python3 service.py --port 80 (container 3f2a1b0c9d8e)``: what a person recognises a process by."""
    argv = [part for part in _read(proc / str(pid) / "cmdline").split("\0") if part]
    command = " ".join(argv)[:80] or _read(proc / str(pid) / "comm").strip()
    container = _CONTAINER_ID.search(_read(proc / str(pid) / "cgroup"))
    suffix = f" (container {container.group(1)[:12]})" if container else ""
    return f"{command}{suffix}"


@dataclass(frozen=True)
class ProcessNamespace:
    inode: int
    pid: int


def isolated_processes(exclude: set[int], proc: Path = PROC) -> list[ProcessNamespace]:
    """One process (the oldest, lowest pid) per network namespace that is not in ``exclude``."""
    found: dict[int, int] = {}
    try:
        entries = [entry for entry in proc.iterdir() if entry.name.isdigit()]
    except OSError:
        return []
    for entry in entries:
        inode = _netns_inode(entry / "ns" / "net")
        if inode is None or inode in exclude:
            continue
        pid = int(entry.name)
        if inode not in found or pid < found[inode]:
            found[inode] = pid
    return [ProcessNamespace(inode, pid) for inode, pid in sorted(found.items(), key=lambda item: item[1])]


def local_targets(netns_dir: Path = NETNS_DIR, proc: Path = PROC) -> Listing:
    """Named network namespaces, then processes that run in a network namespace of their own."""
    targets: list[Target] = []
    named = named_namespaces(netns_dir)
    for name, inode in named:
        targets.append(
            Target(f"netns/{name}", "netns", None, inode is not None, f"netns/{name} (network namespace)")
        )
    exclude = {inode for _, inode in named if inode is not None}
    host = host_namespace(proc)
    if host is not None:
        exclude.add(host)
    for item in isolated_processes(exclude, proc):
        label = f"pid/{item.pid} — {describe_process(item.pid, proc)}"
        targets.append(Target(f"pid/{item.pid}", "pid", None, True, label))
    return Listing(tuple(targets))


KubeProvider = Callable[[Any, str | None], Listing]


def kubernetes_targets(config: Any, namespace: str | None) -> Listing:
    """Kubernetes targets through ``pymirrord.kube.listing``; a note (not an error) when it cannot list."""
    try:
        from pymirrord.kube import listing as kube_listing
        from pymirrord.kube.client import KubeSettings, connect
    except ImportError:
        return Listing()
    list_function = getattr(kube_listing, "list_targets", None)
    if list_function is None:
        return Listing()
    from pymirrord.errors import PymirrordError
    from pymirrord.kube.errors import KubeconfigError

    settings = KubeSettings.from_config(config) if config is not None else KubeSettings()
    namespace = namespace or (config.target.namespace if config is not None else None)
    try:
        api = connect(settings)
    except KubeconfigError:
        return Listing()  # no cluster configured: a local-only user needs no note about it
    except PymirrordError as error:
        return Listing(notes=(f"Kubernetes: {error.message}",))
    try:
        found = list_function(api, namespace)
    except PymirrordError as error:
        return Listing(notes=(f"Kubernetes: {error.message}",))
    except Exception as error:  # a provider must never hide the local targets
        return Listing(notes=(f"Kubernetes: cannot list targets: {error}",))
    finally:
        api.close()
    return Listing(
        tuple(Target(t.path, t.kind, found.namespace, t.available, t.path) for t in found.targets),
        found.namespace,
        tuple(found.namespaces),
        tuple(found.notes),
    )


def merge(*listings: Listing) -> Listing:
    targets: list[Target] = []
    notes: list[str] = []
    current: str | None = None
    namespaces: list[str] = []
    for listing in listings:
        targets.extend(listing.targets)
        notes.extend(listing.notes)
        current = current or listing.current_namespace
        namespaces.extend(ns for ns in listing.namespaces if ns not in namespaces)
    return Listing(tuple(targets), current, tuple(namespaces), tuple(notes))
