"""``pymirrord exec`` with the agent reached over the relay (``PYMIRRORD_HANDOVER=0``, as a remote agent is):
each stolen TCP connection and each outgoing TCP connection gets its own raw TCP connection to the agent, a
tunnel, which the layer puts in place of the app's socket.

The local app (``apps/tunnel_probe.py``) tells for each connection whether it is such a tunnel: the kernel's
local port of a tunnel is not the listener's. With ``PYMIRRORD_TUNNELS=0`` the same traffic travels as
messages on the websocket. An app's outgoing socket that is a tunnel is connected to the agent's own listener.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
from typing import Any

import pytest
from exec_helpers import (
    APPS,
    POD_ENDS,
    TRANSFER_MIB,
    assert_transfers_whole,
    find_agent_pids,
    listener_pids,
    pmd_chains,
    pymirrord_exec,
)
from netns_helpers import Topology, wait_until

from pymirrord.lab import WatchedProcess

PROBE = str(APPS / "tunnel_probe.py")
UPLOAD_CLIENT = str(APPS / "upload_client.py")
PORT = "9200"
FALLBACK = "cannot open a tunnel"
"""What the session says when it cannot open tunnels (connections then travel as messages)."""
NO_TUNNELS = {"PYMIRRORD_TUNNELS": "0"}


def steal(topology: Topology, *, tunnels: bool = True) -> tuple[WatchedProcess, int]:
    """The probe app under ``pymirrord exec --steal`` on the relayed path; the run and the app's pid."""
    app = [sys.executable, PROBE, PORT, "local"]
    process = pymirrord_exec(
        topology.pod, app, steal=True, handover=False, env=None if tunnels else NO_TUNNELS
    )
    try:
        listening, _ = process.wait_for_each("local listening pid=", f"pymirrord: port {PORT} stolen")
    except BaseException:
        process.interrupt()
        raise
    return process, int(listening.split("pid=")[1])


def accepted(process: WatchedProcess, tag: str = "") -> dict[str, Any]:
    """What the probe printed about the connection ``tag`` (without one: the next connection): its tag,
    addresses, and whether it is a tunnel."""
    line = process.wait_for(f"local {tag} accepted " if tag else " accepted ", timeout=15)
    head, _, described = line.partition(" accepted ")
    description: dict[str, Any] = json.loads(described)
    return {**description, "tag": head.split()[-1]}


def everything_printed(process: WatchedProcess) -> list[str]:
    """All the lines of a run that has exited, also those nobody waited for."""
    with contextlib.suppress(TimeoutError):
        process.wait_for("\0", timeout=15)  # never printed: reads up to the end of the output
    return process.seen


def upload(topology: Topology, mib: int, mode: str, tag: str) -> dict[str, Any]:
    argv = [sys.executable, UPLOAD_CLIENT, topology.pod_ip, PORT, str(mib), mode, tag]
    result: dict[str, Any] = json.loads(topology.client.run(*argv, timeout=30).stdout)
    return result


@pytest.mark.parametrize("tunnels", [True, False], ids=["tunnels", "messages"])
def test_a_stolen_upload_arrives_whole_and_the_app_sees_the_client(topology: Topology, tunnels: bool) -> None:
    with steal(topology, tunnels=tunnels)[0] as process:
        sent = upload(topology, 8, "digest", "up")
        assert sent["answer"] == f"{sent['size']} {sent['sha256']}", "answered after the half-close"
        connection = accepted(process, "up")
        assert connection["tunneled"] is tunnels
        assert connection["peer"] == sent["client"], "the layer reports the remote client"
        assert connection["local"] == [topology.pod_ip, int(PORT)], "and the pod-side address"
        assert connection["kernel_peer"][0] == "127.0.0.1"
        process.wait_for(f"local up read {sent['size']} bytes: {sent['sha256']}")
    assert FALLBACK not in "\n".join(everything_printed(process))


BURST = """
import asyncio, hashlib, json, os, sys
async def one(index, size):
    payload = os.urandom(size)
    reader, writer = await asyncio.open_connection(sys.argv[1], int(sys.argv[2]))
    writer.write(f"digest c{index}\\n".encode() + payload)
    await writer.drain()
    writer.write_eof()
    answer = await asyncio.wait_for(reader.read(), 30)
    writer.close()
    return answer.decode().split() == [str(size), hashlib.sha256(payload).hexdigest()]
async def main():
    count, size = int(sys.argv[3]), int(sys.argv[4])
    print(json.dumps(await asyncio.gather(*(one(index, size) for index in range(count)))))
asyncio.run(main())
"""
BURST_SIZE = 20
"""Simultaneous connections: far more than the session keeps idle tunnels (4)."""


def test_a_burst_beyond_the_tunnel_pool_is_served_whole(topology: Topology) -> None:
    with steal(topology)[0] as process:
        answers = topology.client.python(BURST, topology.pod_ip, PORT, str(BURST_SIZE), str(256 << 10)).stdout
        assert json.loads(answers) == [True] * BURST_SIZE
        connections = [accepted(process) for _ in range(BURST_SIZE)]  # in whichever order they came
        assert sorted(connection["tag"] for connection in connections) == sorted(
            f"c{index}" for index in range(BURST_SIZE)
        )
        # How many of the others find a replacement tunnel already open depends on how fast this machine
        # opens them (all of them, on a quick one): only the first few are sure to take one.
        assert any(connection["tunneled"] for connection in connections)
        client_ip = {connection["peer"][0] for connection in connections}
        assert client_ip == {topology.client_ip}
    assert FALLBACK not in "\n".join(everything_printed(process))


@pytest.mark.parametrize("tunnels", [True, False], ids=["tunnels", "messages"])
def test_outgoing_transfers_arrive_whole_both_ways(topology: Topology, tunnels: bool) -> None:
    pod = topology.pod.start_python(POD_ENDS, str(TRANSFER_MIB))
    source_port, sink_port = pod.ready_line.split()
    app = [sys.executable, str(APPS / "transfer_probe.py"), source_port, sink_port, str(TRANSFER_MIB)]
    env = None if tunnels else NO_TUNNELS
    with pymirrord_exec(topology.pod, app, handover=False, env=env) as process:
        result = json.loads(process.wait_for("RESULT ", timeout=30).split("RESULT ", 1)[1])
        for connection in assert_transfers_whole(result, pod, (source_port, sink_port)):
            # A tunnel is connected to the agent's own listener; a relayed socket to the session's
            # one-shot interceptor (closed once the app connected).
            owners, agents = listener_pids(connection["kernel_peer"][1]), set(find_agent_pids(topology.pod))
            assert bool(owners & agents) is tunnels, (owners, agents)
    assert FALLBACK not in "\n".join(everything_printed(process))


HOLD_OPEN = """
import socket, sys
connection = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=10)
connection.sendall(b"hold open\\n" + b"x" * 65536)
print("sent", flush=True)
try:
    data = connection.recv(65536)
    print("ended", "eof" if not data else "data", flush=True)
except ConnectionResetError:
    print("ended reset", flush=True)
except TimeoutError:
    print("ended never", flush=True)
"""
ECHO_ONCE = """
import socket, sys
with socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=5) as connection:
    connection.sendall(b"hello\\n")
    print(connection.makefile().readline().strip())
"""


@pytest.mark.parametrize("ending", ["interrupt", "app-killed"])
def test_an_open_tunneled_connection_ends_with_the_run(topology: Topology, ending: str) -> None:
    topology.pod.start(sys.executable, str(APPS / "echo_server.py"), PORT, "pod")
    process, app_pid = steal(topology)
    with process:
        client = topology.client.start_python(HOLD_OPEN, topology.pod_ip, PORT)
        assert accepted(process, "open")["tunneled"] is True
        process.wait_for("local open holding")
        if ending == "interrupt":
            process.signal(signal.SIGINT)
            assert process.wait(15) == 0
        else:
            os.kill(app_pid, signal.SIGKILL)
            assert process.wait(15) == 128 + signal.SIGKILL
        assert client.read_line(timeout=10) in ("ended eof", "ended reset")
    assert pmd_chains(topology.pod) == []

    def pod_answers() -> bool:
        answer = topology.client.python(ECHO_ONCE, topology.pod_ip, PORT, check=False).stdout.strip()
        return answer == "pod:hello"

    assert wait_until(pod_answers, timeout=10), "the pod's own app answers on the port again"
    assert FALLBACK not in "\n".join(everything_printed(process))


HELD_UPLOAD = """
import hashlib, os, socket, sys
size = int(sys.argv[3]) << 20
payload = os.urandom(size)
with socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=30) as connection:
    connection.sendall(b"hold held\\n")
    print("connected", flush=True)
    view = memoryview(payload)
    for mib in range(size >> 20):
        connection.sendall(view[mib << 20:(mib + 1) << 20])
        print("sent", mib + 1, flush=True)
    connection.shutdown(socket.SHUT_WR)
    answer = connection.makefile().readline().strip()
print("done", size, hashlib.sha256(payload).hexdigest(), answer, flush=True)
"""
ASK = """
import socket, sys
with socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=10) as connection:
    connection.sendall(sys.argv[3].encode() + b"\\n")
    print(connection.makefile().readline().strip())
"""
HELD_MIB = 16
UNREAD_MIB = 4
"""Sent on the held connection before the second one asks: past what the app's socket buffers take."""


def test_a_connection_the_app_does_not_read_holds_up_no_other(topology: Topology) -> None:
    with steal(topology)[0] as process:
        held = topology.client.start_python(HELD_UPLOAD, topology.pod_ip, PORT, str(HELD_MIB))
        assert accepted(process, "held")["tunneled"] is True
        process.wait_for("local held holding")
        while (line := held.read_line(timeout=15)) != f"sent {UNREAD_MIB}":
            assert line.startswith("sent "), line

        def ask(line: str) -> str:
            return topology.client.python(ASK, topology.pod_ip, PORT, line, timeout=10).stdout.strip()

        assert ask("ping second") == "pong", "the same port, another connection, while the first is unread"
        assert ask("release third") == "released"
        while (line := held.read_line(timeout=15)).startswith("sent "):
            pass
        _, size, digest, answer_size, answer_digest = line.split()
        assert (answer_size, answer_digest) == (size, digest), "the held upload arrived whole"
        process.wait_for(f"local held read {size} bytes: {digest}")
    assert FALLBACK not in "\n".join(everything_printed(process))
