"""Fixtures for the end-to-end tests: the helper as a subprocess, and (for the debug path) real namespaces.

The namespace helpers live with the integration tests; their folder is put on ``sys.path`` here so both
suites build targets the same way.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))

from netns_helpers import Topology
from netns_helpers import topology as make_topology

from pymirrord.server.rpc_client import HelperClient

ROOT = Path(__file__).resolve().parents[2]


def helper_argv() -> list[str]:
    beside = Path(sys.executable).parent / "pymirrord"
    found = str(beside) if beside.exists() else shutil.which("pymirrord")
    if found is None:
        pytest.fail("the pymirrord console script is not installed; run scripts/setup.sh --dev")
    return [found, "lsp"]


@pytest.fixture
def helper(tmp_path: Path) -> Iterator[HelperClient]:
    client = HelperClient(helper_argv(), cwd=str(tmp_path))
    try:
        client.initialize(tmp_path.as_uri())
        yield client
    finally:
        client.close()


@pytest.fixture
def topology() -> Iterator[Topology]:
    if os.geteuid() != 0:
        pytest.skip("the debug path needs root (network namespaces and iptables)")
    for tool in ("ip", "iptables"):
        if shutil.which(tool) is None:
            pytest.skip(f"the debug path needs `{tool}` on PATH")
    with make_topology() as topo:
        yield topo
