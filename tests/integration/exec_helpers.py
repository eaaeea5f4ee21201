"""Run ``pymirrord exec`` as a user would, and watch what it and the app print.

A run is a ``pymirrord.lab.WatchedProcess``: pymirrord's own lines and the app's log lines arrive in one
queue, and a test waits for a line with a bounded timeout.
"""

from __future__ import annotations

import json
import re
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from netns_helpers import REPO_ROOT, Netns, Process, Topology, child_env, run

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


POD_ENDS = """
import hashlib, os, socket, sys, threading
size = int(sys.argv[1]) << 20
source, sink = socket.create_server(("127.0.0.1", 0)), socket.create_server(("127.0.0.1", 0))
print(source.getsockname()[1], sink.getsockname()[1], flush=True)
def serve_source():
    connection, peer = source.accept()
    payload = os.urandom(size)
    with connection:
        connection.sendall(payload)
    print("source", size, hashlib.sha256(payload).hexdigest(), peer[0], peer[1], flush=True)
def serve_sink():
    connection, peer = sink.accept()
    digest, count = hashlib.sha256(), 0
    with connection:
        while chunk := connection.recv(1 << 20):
            digest.update(chunk)
            count += len(chunk)
        connection.sendall(f"{count} {digest.hexdigest()}".encode())
    print("sink", count, digest.hexdigest(), peer[0], peer[1], flush=True)
threading.Thread(target=serve_source).start()
serve_sink()
"""
TRANSFER_MIB = 8


def listener_pids(port: int) -> set[int]:
    """The processes listening on TCP ``port`` in this machine's namespace."""
    listing = run(["ss", "-Htlnp", f"sport = :{port}"]).stdout
    return {int(pid) for pid in re.findall(r"pid=(\d+)", listing)}


def assert_transfers_whole(result: dict[str, Any], pod: Process, ports: tuple[str, str]) -> list[Any]:
    """``transfer_probe.py``'s ``result`` against what ``POD_ENDS`` (at ``ports``: source, sink) printed:
    both transfers whole, the sink's answer after the half-close, each connection showing the pod's
    addresses. Returns the download's and the upload's records."""
    ends = {line.split()[0]: line.split()[1:] for line in (pod.read_line(), pod.read_line())}
    download, uploaded = result["download"], result["upload"]
    size = str(TRANSFER_MIB << 20)
    assert [str(download["size"]), download["sha256"]] == ends["source"][:2], "the download is whole"
    assert [str(uploaded["size"]), uploaded["sha256"]] == ends["sink"][:2], "the upload is whole"
    assert uploaded["answer"] == f"{size} {uploaded['sha256']}", "the sink answered after the half-close"
    for connection, port, end in ((download, ports[0], "source"), (uploaded, ports[1], "sink")):
        assert connection["peer"] == ["127.0.0.1", int(port)], "the app sees the pod's address"
        pod_side = [ends[end][2], int(ends[end][3])]
        assert connection["local"] == pod_side, "getsockname shows the connection's address in the pod"
    return [download, uploaded]


def start_http_client(topology: Topology, specs: Sequence[Any], port: int = 80) -> Process:
    """``http_client.py`` in the client namespace, sending ``specs`` to the pod's ``port`` on one keep-alive
    connection; its answers come as lines (``read_line``), one JSON object each."""
    argv = [str(APPS / "http_client.py"), topology.pod_ip, str(port), json.dumps(list(specs))]
    return topology.client.start(sys.executable, *argv, ready=False)
