"""A cgroup named like a container runtime names a container's (``cri-containerd-<id>.scope``), for tests.

The pod's process is moved into it, so that the agent finds it from the container id exactly as on a node.
Uses the cgroup v2 hierarchy wherever it is mounted (``/sys/fs/cgroup`` or ``/sys/fs/cgroup/unified``);
``remove`` moves whatever is left back to the root cgroup and removes the directories.
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Iterator
from pathlib import Path


def cgroup2_root() -> Path | None:
    """Where the cgroup v2 hierarchy is mounted, if anywhere."""
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        fields = line.split()
        separator = fields.index("-")
        if fields[separator + 1] == "cgroup2":
            return Path(fields[4])
    return None


class ContainerCgroup:
    def __init__(self, root: Path, container_id: str) -> None:
        self.root = root
        self.top = root / f"pmd-test-{secrets.token_hex(4)}"
        self.path = (
            self.top / "kubepods" / f"pod{secrets.token_hex(8)}" / f"cri-containerd-{container_id}.scope"
        )
        self.path.mkdir(parents=True)

    def add(self, pid: int) -> None:
        (self.path / "cgroup.procs").write_text(f"{pid}\n")

    def remove(self) -> None:
        nested = sorted((p for p in self.top.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts))
        for directory in [*nested, self.top]:
            with contextlib.suppress(OSError):
                for pid in (directory / "cgroup.procs").read_text().split():
                    with contextlib.suppress(OSError):
                        (self.root / "cgroup.procs").write_text(pid + "\n")
            with contextlib.suppress(OSError):
                directory.rmdir()


@contextlib.contextmanager
def container_cgroup(container_id: str) -> Iterator[ContainerCgroup]:
    root = cgroup2_root()
    if root is None:
        raise RuntimeError("no cgroup v2 hierarchy is mounted")
    cgroup = ContainerCgroup(root, container_id)
    try:
        yield cgroup
    finally:
        cgroup.remove()
