"""Run ``pymirrord exec`` as a user would, and watch what it and the app print.

A run is a ``pymirrord.lab.WatchedProcess``: pymirrord's own lines and the app's log lines arrive in one
queue, and a test waits for a line with a bounded timeout.
"""

from __future__ import annotations

import json
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from netns_helpers import REPO_ROOT, Netns, child_env

from pymirrord.lab import WatchedProcess

APPS = Path(__file__).resolve().parent / "apps"
USER_SERVICE = REPO_ROOT / "examples" / "user-service" / "service.py"


def pymirrord_exec(
    target: Netns,
    app: Sequence[str],
    *,
    steal: bool = False,
    config: dict[str, Any] | None = None,
    handover: bool = True,
    flags: Sequence[str] = (),
    env: dict[str, str] | None = None,
) -> WatchedProcess:
    argv = [sys.executable, "-m", "pymirrord", "exec", "--target", target.target, *flags]
    if steal:
        argv.append("--steal")
    if config is not None:
        handle = tempfile.NamedTemporaryFile("w", suffix=".json", delete=False)  # noqa: SIM115 - kept for the run
        with handle:
            json.dump(config, handle)
        argv += ["-f", handle.name]
    extra = {} if handover else {"PYMIRRORD_HANDOVER": "0"}
    return WatchedProcess([*argv, "--", *app], env=child_env({**extra, **(env or {})}))


def pmd_chains(ns: Netns) -> list[str]:
    """The pymirrord chains and jumps left in the namespace's nat table."""
    return [line for line in ns.nat_rules().splitlines() if "PMD-" in line]


HTTP_GET = """
import sys, urllib.request
with urllib.request.urlopen(sys.argv[1], timeout=10) as response:
    print(response.read().decode())
"""

HTTP_POST_JSON = """
import sys, urllib.request
headers = {"Content-type": "application/json"}
request = urllib.request.Request(sys.argv[1], data=sys.argv[2].encode(), headers=headers)
with urllib.request.urlopen(request, timeout=10) as response:
    print(response.read().decode())
"""


def get(client: Netns, url: str) -> str:
    return client.python(HTTP_GET, url).stdout.strip()


def post_json(client: Netns, url: str, body: dict[str, Any]) -> str:
    return client.python(HTTP_POST_JSON, url, json.dumps(body)).stdout.strip()


def find_agent_pids(target: Netns) -> list[int]:
    """Processes running ``pymirrord agent`` for the given target."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"agent" in argv and target.target.encode() in argv and b"pymirrord" in argv:
            pids.append(int(entry.name))
    return pids
