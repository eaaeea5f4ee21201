"""``pymirrord demo``: the mission document's user-service story, for real, on this machine.

A "pod" network namespace serves examples/user-service on port 80, a "client" namespace sends it
requests, and a second copy of the service runs here under ``pymirrord exec``: first mirroring the
pod's traffic, then stealing it. Everything it creates is removed at the end, also on Ctrl-C.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from pymirrord.errors import PymirrordError
from pymirrord.lab import Lab, WatchedProcess, in_namespace
from pymirrord.session.local_agent import require_local_privileges

_SERVICE = Path(__file__).resolve().parents[1] / "examples" / "user-service" / "service.py"
_WAIT = 30.0


class DemoError(PymirrordError):
    """A step of the demo did not happen as expected."""


def run_demo(out: TextIO = sys.stdout) -> int:
    require_local_privileges("the demo's network namespaces")
    if not _SERVICE.exists():
        raise DemoError(f"{_SERVICE} is missing", "run the demo from a pymirrord source checkout")
    processes: list[WatchedProcess] = []
    lab = Lab.create("pmd-demo")
    try:
        _story(lab, processes, out)
    except TimeoutError as error:
        raise DemoError(str(error), "set PYMIRRORD_AGENT_LOG=1 to see the agent's log as well") from None
    finally:
        for process in reversed(processes):
            process.interrupt()
        lab.close()
        print("\nCleaned up: namespaces, processes and rules are gone.", file=out)
    return 0


def _story(lab: Lab, processes: list[WatchedProcess], out: TextIO) -> None:
    def say(text: str = "") -> None:
        print(text, file=out, flush=True)

    def start(argv: Sequence[str]) -> WatchedProcess:
        process = WatchedProcess(argv)
        processes.append(process)
        return process

    def curl(path: str, user: dict[str, str] | None = None) -> None:
        url = f"http://{lab.pod_ip}{path}"
        shown = (
            f"curl -X POST -H 'Content-type: application/json' -d '{json.dumps(user)}' {url}"
            if user
            else f"curl {url}"
        )
        say(f"client$ {shown}")
        say(_request(lab, url, user))

    python = sys.executable
    say(f"The pod: network namespace {lab.pod} ({lab.pod_ip}) runs user-service on port 80.")
    say(f"The client: network namespace {lab.client} ({lab.client_ip}).\n")
    pod = start(in_namespace(lab.pod, [python, str(_SERVICE), "--seed", "Metal:Bear"]))
    pod.wait_for("Running on")
    curl("/users")

    say("\n=== Mirroring: the local copy receives the pod's traffic; the pod keeps answering ===")
    say(f"local$ pymirrord exec --target {lab.target} -- python user-service/service.py")
    local = start(_exec(lab, python, steal=False))
    say(local.wait_for("port 80 mirrored"))
    curl("/users")
    say(f"local app log: {local.wait_for('GET /users')}    <- mirrored from the pod")
    local.interrupt()
    processes.remove(local)

    say("\n=== Stealing: the local copy answers instead of the pod ===")
    say(f"local$ pymirrord exec --steal --target {lab.target} -- python user-service/service.py")
    local = start(_exec(lab, python, steal=True))
    say(local.wait_for("port 80 stolen"))
    curl("/users")
    curl("/user", {"Name": "Mehul", "Last": "Arora"})
    curl("/users")
    say(f"local app log: {local.wait_for('POST /user')}")
    say("\nlocal$ ^C   (the local copy exits; the pod serves again)")
    status = local.interrupt()
    processes.remove(local)
    if status not in (0, 130):
        raise DemoError(f"pymirrord exec exited with status {status}")
    curl("/users")


def _exec(lab: Lab, python: str, *, steal: bool) -> list[str]:
    flags = ["--steal"] if steal else []
    return [python, "-m", "pymirrord", "exec", *flags, "--target", lab.target, "--", python, str(_SERVICE)]


_CLIENT_SCRIPT = """
import json, sys, urllib.request
url, body = sys.argv[1], sys.argv[2]
data = body.encode() if body else None
request = urllib.request.Request(url, data=data, headers={"Content-type": "application/json"})
with urllib.request.urlopen(request, timeout=10) as response:
    print(response.read().decode())
"""


def _request(lab: Lab, url: str, user: dict[str, str] | None) -> str:
    argv = in_namespace(
        lab.client, [sys.executable, "-c", _CLIENT_SCRIPT, url, json.dumps(user) if user else ""]
    )
    result = subprocess.run(argv, capture_output=True, text=True, timeout=_WAIT, check=False)
    if result.returncode != 0:
        raise DemoError(f"the client's request to {url} failed: {result.stderr.strip().splitlines()[-1:]}")
    return result.stdout.strip()
