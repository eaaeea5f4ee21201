from __future__ import annotations

import os
from pathlib import Path

from pymirrord.server.targets import Listing, Target, describe_process, local_targets, merge


def test_named_namespaces_and_processes_of_their_own(tmp_path: Path) -> None:
    netns = tmp_path / "netns"
    netns.mkdir()
    (netns / "demo").write_text("")
    proc = tmp_path / "proc"
    # Fake /proc: each process's ns/net is a file whose inode stands for its namespace.
    shared = tmp_path / "host-ns"
    shared.write_text("")
    container_ns = tmp_path / "container-ns"
    container_ns.write_text("")
    for pid, ns in (
        ("1", shared),
        ("self", shared),
        ("50", container_ns),
        ("51", container_ns),
        ("60", netns / "demo"),
    ):
        (proc / pid / "ns").mkdir(parents=True)
        os.link(ns, proc / pid / "ns" / "net")
        (proc / pid / "cmdline").write_bytes(b"python3\0service.py\0")
        (proc / pid / "cgroup").write_text("0::/system.slice/docker-3f2a1b0c9d8e77aa.scope\n")
    listing = local_targets(netns, proc)
    assert listing.paths() == ["netns/demo", "pid/50"]
    assert listing.targets[1].label == "pid/50 — python3 service.py (container 3f2a1b0c9d8e)"
    assert describe_process(99, proc) == ""


def test_merge_keeps_local_targets_and_notes() -> None:
    local = Listing((Target("netns/a", "netns"),))
    kube = Listing((Target("pod/x", "pod", "shop"),), "shop", ("default", "shop"), ("a note",))
    merged = merge(local, kube).to_json()
    assert [t["path"] for t in merged["targets"]] == ["netns/a", "pod/x"]
    assert merged["currentNamespace"] == "shop" and merged["notes"] == ["a note"]
