"""``pymirrord exec`` end to end against real namespaces: the mission document's mirror and steal stories,
keep-alive, concurrency, a 50 MB payload, port_mapping, child processes, and the fault cases."""

from __future__ import annotations

import json
import os
import signal
import sys

import pytest
from exec_helpers import (
    APPS,
    USER_SERVICE,
    find_agent_pids,
    get,
    pmd_chains,
    post_json,
    pymirrord_exec,
)
from netns_helpers import Topology, wait_until

from pymirrord.lab import WatchedProcess

METAL_BEAR = [{"Last": "Bear", "Name": "Metal"}]


def start_pod_service(topology: Topology) -> None:
    topology.pod.start(sys.executable, str(USER_SERVICE), "--seed", "Metal:Bear")


def test_mirror_copies_traffic_and_the_pod_keeps_answering(topology: Topology) -> None:
    start_pod_service(topology)
    url = f"http://{topology.pod_ip}/users"
    with pymirrord_exec(topology.pod, [sys.executable, str(USER_SERVICE)]) as run:
        run.wait_for("pymirrord: port 80 mirrored")
        # The local copy has no users, yet the client gets the pod's answer: the local reply went nowhere.
        assert json.loads(get(topology.client, url)) == METAL_BEAR
        logged = run.wait_for('"GET /users HTTP/1.1" 200')
        assert logged.startswith(topology.client_ip), "the app sees the real client as its peer"
        assert json.loads(post_json(topology.client, f"http://{topology.pod_ip}/user", {"Name": "X"})) == {
            "Name": "X"
        }
        run.wait_for('"POST /user HTTP/1.1" 200')
        run.signal(signal.SIGINT)
        assert run.wait() == 0
    assert pmd_chains(topology.pod) == []
    assert json.loads(get(topology.client, url)) == [*METAL_BEAR, {"Name": "X"}]


@pytest.mark.parametrize("handover", [True, False], ids=["handover", "relay"])
def test_steal_serves_locally_then_the_pod_serves_again(topology: Topology, handover: bool) -> None:
    start_pod_service(topology)
    users = f"http://{topology.pod_ip}/users"
    app = [sys.executable, str(USER_SERVICE)]
    with pymirrord_exec(topology.pod, app, steal=True, handover=handover) as run:
        run.wait_for("pymirrord: port 80 stolen")
        assert json.loads(get(topology.client, users)) == []
        mehul = {"Name": "Mehul", "Last": "Arora"}
        assert json.loads(post_json(topology.client, f"http://{topology.pod_ip}/user", mehul)) == mehul
        assert json.loads(get(topology.client, users)) == [mehul]
        run.signal(signal.SIGINT)
        assert run.wait() == 0
    assert pmd_chains(topology.pod) == []
    assert json.loads(get(topology.client, users)) == METAL_BEAR


KEEPALIVE_CLIENT = """
import http.client, json, sys
connections = [http.client.HTTPConnection(sys.argv[1], 80, timeout=10) for _ in range(2)]
results = []
for round in range(3):
    for index, connection in enumerate(connections):
        connection.request("GET", "/users")
        response = connection.getresponse()
        results.append((index, response.status, json.loads(response.read())))
        if round == 0:
            connection._first_sock = connection.sock
print(json.dumps({"results": results, "reused": all(c.sock is c._first_sock for c in connections)}))
"""


@pytest.mark.parametrize("steal", [False, True], ids=["mirror", "steal"])
def test_two_keep_alive_connections(topology: Topology, steal: bool) -> None:
    start_pod_service(topology)
    with pymirrord_exec(topology.pod, [sys.executable, str(USER_SERVICE)], steal=steal) as run:
        run.wait_for("pymirrord: port 80")
        report = json.loads(topology.client.python(KEEPALIVE_CLIENT, topology.pod_ip).stdout)
        assert report["reused"] is True
        expected = [] if steal else METAL_BEAR
        assert [(status, body) for _, status, body in report["results"]] == [(200, expected)] * 6
        for _ in range(6):
            run.wait_for('"GET /users HTTP/1.1" 200')


CONCURRENT_CLIENT = """
import asyncio, sys
async def one(i):
    reader, writer = await asyncio.open_connection(sys.argv[1], int(sys.argv[2]))
    writer.write(f"conn-{i}\\n".encode())
    await writer.drain()
    line = await asyncio.wait_for(reader.readline(), 20)
    writer.close()
    return line.decode().strip() == f"local:conn-{i}"
async def main():
    results = await asyncio.gather(*(one(i) for i in range(100)))
    print(sum(results))
asyncio.run(main())
"""


def test_hundred_concurrent_stolen_connections(topology: Topology) -> None:
    with pymirrord_exec(
        topology.pod, [sys.executable, str(APPS / "echo_server.py"), "7000", "local"], steal=True
    ) as run:
        run.wait_for("pymirrord: port 7000 stolen")
        result = topology.client.python(CONCURRENT_CLIENT, topology.pod_ip, "7000", timeout=60)
        assert result.stdout.strip() == "100"


HASH_CLIENT = """
import hashlib, os, socket, sys
payload = os.urandom(int(sys.argv[3]))
with socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=60) as connection:
    view = memoryview(payload)
    for start in range(0, len(payload), 1 << 20):
        connection.sendall(view[start:start + (1 << 20)])
    connection.shutdown(socket.SHUT_WR)
    answer = b""
    while chunk := connection.recv(4096):
        answer += chunk
print(hashlib.sha256(payload).hexdigest(), answer.decode())
"""

FIFTY_MB = str(50 * 1024 * 1024)


@pytest.mark.parametrize("handover", [True, False], ids=["handover", "relay"])
def test_fifty_megabytes_arrive_intact_when_stolen(topology: Topology, handover: bool) -> None:
    app = [sys.executable, str(APPS / "hash_server.py"), "9000", "local"]
    with pymirrord_exec(topology.pod, app, steal=True, handover=handover) as run:
        run.wait_for("pymirrord: port 9000 stolen")
        sent, answered = topology.client.python(
            HASH_CLIENT, topology.pod_ip, "9000", FIFTY_MB, timeout=120
        ).stdout.split()
        assert answered == sent
        assert sent in run.wait_for("local hashed 52428800 bytes")


def test_fifty_megabytes_mirrored_reach_both_apps_intact(topology: Topology) -> None:
    topology.pod.start(sys.executable, str(APPS / "hash_server.py"), "9000", "pod")
    app = [sys.executable, str(APPS / "hash_server.py"), "9000", "local"]
    with pymirrord_exec(topology.pod, app) as run:
        run.wait_for("pymirrord: port 9000 mirrored")
        sent, answered = topology.client.python(
            HASH_CLIENT, topology.pod_ip, "9000", FIFTY_MB, timeout=120
        ).stdout.split()
        assert answered == sent, "the pod's app answered with the right hash"
        assert sent in run.wait_for("local hashed 52428800 bytes", timeout=60)


def test_port_mapping_serves_a_pod_port_from_another_local_port(topology: Topology) -> None:
    config = {"feature": {"network": {"incoming": {"mode": "steal", "port_mapping": [[3000, 80]]}}}}
    app = [sys.executable, str(USER_SERVICE), "--port", "3000", "--seed", "Local:Copy"]
    with pymirrord_exec(topology.pod, app, config=config) as run:
        run.wait_for("pymirrord: port 80 stolen")
        assert json.loads(get(topology.client, f"http://{topology.pod_ip}/users")) == [
            {"Last": "Copy", "Name": "Local"}
        ]


ECHO_ONCE = """
import socket, sys
with socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=10) as connection:
    connection.sendall(b"hello\\n")
    print(connection.makefile().readline().strip())
"""


def test_child_processes_share_the_session(topology: Topology) -> None:
    app = [sys.executable, str(APPS / "echo_server.py"), "7001", "parent", "7002", "child"]
    with pymirrord_exec(topology.pod, app, steal=True) as run:
        run.wait_for("pymirrord: port 7001 stolen")
        run.wait_for("pymirrord: port 7002 stolen")
        assert topology.client.python(ECHO_ONCE, topology.pod_ip, "7001").stdout.strip() == "parent:hello"
        assert topology.client.python(ECHO_ONCE, topology.pod_ip, "7002").stdout.strip() == "child:hello"
        assert agent_count(topology) == 1


def agent_count(topology: Topology) -> int:
    return len(find_agent_pids(topology.pod))


def pod_answers(topology: Topology) -> bool:
    result = topology.client.python(ECHO_ONCE, topology.pod_ip, "7003", check=False)
    return result.stdout.strip() == "pod:hello"


def start_stolen_echo(topology: Topology) -> tuple[WatchedProcess, int]:
    topology.pod.start(sys.executable, str(APPS / "echo_server.py"), "7003", "pod")
    run = pymirrord_exec(
        topology.pod, [sys.executable, str(APPS / "echo_server.py"), "7003", "local"], steal=True
    )
    listening, _ = run.wait_for_each("local listening pid=", "pymirrord: port 7003 stolen")
    app_pid = int(listening.split("pid=")[1])
    assert topology.client.python(ECHO_ONCE, topology.pod_ip, "7003").stdout.strip() == "local:hello"
    return run, app_pid


def test_agent_sigkill_leaves_no_rule_and_the_pod_answers(topology: Topology) -> None:
    run, _ = start_stolen_echo(topology)
    with run:
        [agent] = find_agent_pids(topology.pod)
        os.kill(agent, signal.SIGKILL)
        assert wait_until(lambda: pmd_chains(topology.pod) == [])
        assert wait_until(lambda: pod_answers(topology))
        run.wait_for("lost the agent")


def test_app_sigkill_gives_the_port_back_to_the_pod(topology: Topology) -> None:
    run, app_pid = start_stolen_echo(topology)
    with run:
        os.kill(app_pid, signal.SIGKILL)
        assert run.wait() == 128 + signal.SIGKILL
        assert wait_until(lambda: pod_answers(topology))
        assert wait_until(lambda: pmd_chains(topology.pod) == [])
        assert wait_until(lambda: agent_count(topology) == 0)


def test_session_sigkill_makes_the_agent_drop_its_subscriptions(topology: Topology) -> None:
    run, _ = start_stolen_echo(topology)
    with run:
        run.signal(signal.SIGKILL)  # the exec process hosts the session
        run.wait()
        assert wait_until(lambda: not any("7003" in rule for rule in pmd_chains(topology.pod)))
        assert wait_until(lambda: pod_answers(topology))
        assert wait_until(lambda: agent_count(topology) == 0, timeout=30), "an orphaned agent exits by itself"
        assert pmd_chains(topology.pod) == []


ECHO_BYTES = """
import socket, sys
with socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=10) as connection:
    connection.sendall(b"ping")
    print(connection.recv(10).decode())
"""


@pytest.mark.parametrize("handover", [True, False], ids=["handover", "relay"])
def test_a_stolen_connection_reaches_the_app_as_the_clients_own_socket(
    topology: Topology, handover: bool
) -> None:
    app = [sys.executable, str(APPS / "peer_probe.py"), "7004"]
    with pymirrord_exec(topology.pod, app, steal=True, handover=handover) as run:
        run.wait_for_each("probe listening", "pymirrord: port 7004 stolen")
        assert topology.client.python(ECHO_BYTES, topology.pod_ip, "7004").stdout.strip() == "ping"
        accepted = run.wait_for("accepted peer=")
        assert f"peer={topology.client_ip} " in accepted, "the layer shows the client either way"
        expected_kernel_peer = topology.client_ip if handover else "127.0.0.1"
        assert accepted.endswith(f"kernel_peer={expected_kernel_peer}")
