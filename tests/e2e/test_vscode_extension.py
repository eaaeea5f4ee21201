"""The VS Code extension's own tests, run from pytest so that the suite covers the extension too.

``node --test`` runs the extension's pure modules, its ``vscode`` glue against a recorded fake of the API,
and the protocol end against the real helper (this virtualenv's ``pymirrord lsp``), which is what keeps
the extension and the helper from drifting apart. Those tests need no npm package; the type check needs
``typescript`` and the ``@types`` packages, installed by ``npm ci`` at the repository root.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess

import pytest

from e2e.conftest import ROOT, helper_argv

EXTENSION = ROOT / "vscode-extension"
NODE = shutil.which("node")
MINIMUM_NODE = 18  # the first with `node --test`


def _node_major() -> int:
    assert NODE is not None
    version = subprocess.run([NODE, "--version"], capture_output=True, text=True, check=True).stdout
    return int(version.strip().lstrip("v").split(".")[0])


pytestmark = [
    pytest.mark.skipif(
        NODE is None, reason="node is not installed: the VS Code extension's tests need Node 18+"
    ),
    pytest.mark.timeout(300),
]


def _run_node(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    assert NODE is not None
    return subprocess.run(
        [NODE, *args], cwd=EXTENSION, capture_output=True, text=True, timeout=240, env=env, check=False
    )


def test_extension_node_tests_pass() -> None:
    if _node_major() < MINIMUM_NODE:
        pytest.skip(
            f"node {_node_major()} has no test runner; the extension's tests need Node {MINIMUM_NODE}+"
        )
    tests = sorted(str(path.relative_to(EXTENSION)) for path in (EXTENSION / "test").glob("*.test.js"))
    assert "test/helper.test.js" in tests
    env = {**os.environ, "PYMIRRORD_BIN": helper_argv()[0]}
    result = _run_node("--test", *tests, env=env)
    report = result.stdout + result.stderr
    assert result.returncode == 0, report[-12000:]
    counts = dict(re.findall(r"^# (pass|fail|skipped|cancelled) (\d+)$", result.stdout, re.MULTILINE))
    assert counts.get("fail") == "0" and counts.get("cancelled") == "0", report[-12000:]
    assert int(counts.get("pass", "0")) > 0, report[-12000:]


def test_extension_typechecks() -> None:
    tsc = ROOT / "node_modules" / "typescript" / "bin" / "tsc"
    if not tsc.exists():
        pytest.skip(
            "typescript is not installed: run `npm ci` at the repository root (scripts/setup.sh --dev)"
        )
    result = _run_node(str(tsc), "-p", "jsconfig.json")
    assert result.returncode == 0, (result.stdout + result.stderr)[-12000:]
