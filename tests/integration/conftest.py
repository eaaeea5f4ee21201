"""Fixtures for integration tests: real network namespaces, removed pass or fail.

- ``netns_factory()``: a callable that makes a fresh ``Netns`` (loopback up); all are deleted after the test.
- ``pod_netns``: one fresh namespace.
- ``topology``: a ``Topology`` with a "pod" and a "client" namespace joined by a veth pair.

Helpers for processes and commands live in ``netns_helpers`` (importable from tests in this folder).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator

import pytest
from netns_helpers import Netns, Topology, create_netns, delete_netns
from netns_helpers import topology as make_topology


@pytest.fixture(scope="session")
def _require_netns_support() -> None:
    # CI and the dev container run as root; elsewhere say why instead of failing on the first `ip` call.
    if os.geteuid() != 0:
        pytest.skip("integration tests need root (network namespaces and iptables)")
    for tool in ("ip", "iptables", "iptables-restore"):
        if shutil.which(tool) is None:
            pytest.skip(f"integration tests need `{tool}` on PATH")


@pytest.fixture
def netns_factory(_require_netns_support: None) -> Iterator[Callable[[], Netns]]:
    made: list[Netns] = []

    def make() -> Netns:
        ns = create_netns()
        made.append(ns)
        return ns

    try:
        yield make
    finally:
        for ns in reversed(made):
            delete_netns(ns)


@pytest.fixture
def pod_netns(netns_factory: Callable[[], Netns]) -> Netns:
    return netns_factory()


@pytest.fixture
def topology(_require_netns_support: None) -> Iterator[Topology]:
    with make_topology() as topo:
        yield topo
