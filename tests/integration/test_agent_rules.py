"""The agent's namespace entry, redirect rules and guard, against real namespaces and iptables."""

from __future__ import annotations

import json
import os
import signal
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from netns_helpers import Netns, Process, Topology, python_argv, start_process, wait_until

from pymirrord.agent.guard import spawn_guard
from pymirrord.agent.target import network_namespace_id

BYPASS_MARK = 0x5EED

# A stand-in for the agent: starts in the host namespace, enters the target's, spawns its guard there,
# installs its rules, then obeys one command per stdin line ("add PORT", "remove PORT", "exit"), answering
# "ok".
AGENT_STUB = r"""
import json, sys
from pymirrord.agent.guard import spawn_guard
from pymirrord.agent.iptables import RedirectRules
from pymirrord.agent.target import enter_network_namespace, parse_target

target, agent_id, redirect_port = sys.argv[1], sys.argv[2], int(sys.argv[3])
enter_network_namespace(parse_target(target))
guard = spawn_guard(agent_id)
rules = RedirectRules(agent_id, redirect_port, int(sys.argv[4]))
rules.install()
print(json.dumps({"guard": guard.pid}), flush=True)
for line in sys.stdin:
    command, *args = line.split()
    if command == "add":
        rules.add_port(int(args[0]))
    elif command == "remove":
        rules.remove_port(int(args[0]))
    elif command == "exit":
        print("removed" if rules.remove_all() else "failed", guard.release(), flush=True)
        break
    print("ok", flush=True)
"""

# Accepts connections and tells each client where the connection was addressed before REDIRECT.
REDIRECT_LISTENER = r"""
import socket, struct
srv = socket.create_server(("0.0.0.0", 0))
print(srv.getsockname()[1], flush=True)
while True:
    conn, _ = srv.accept()
    with conn:
        raw = conn.getsockopt(socket.SOL_IP, 80, 16)  # SO_ORIGINAL_DST: a struct sockaddr_in
        port, addr = struct.unpack_from("!2xH4s", raw)
        conn.sendall(f"redirected {socket.inet_ntoa(addr)}:{port}\n".encode())
"""

# The pod's real app: answers every connection with "app".
APP = r"""
import socket
srv = socket.create_server(("0.0.0.0", 0))
print(srv.getsockname()[1], flush=True)
while True:
    conn, _ = srv.accept()
    with conn:
        conn.sendall(b"app\n")
"""

# Connects to argv[1]:argv[2] (with SO_MARK argv[3] when given) and prints the first line it receives.
CLIENT = r"""
import socket, sys
sock = socket.socket()
if len(sys.argv) > 3:
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_MARK, int(sys.argv[3]))
sock.settimeout(10)
sock.connect((sys.argv[1], int(sys.argv[2])))
print(sock.makefile().readline().strip())
"""


@dataclass
class Scene:
    topology: Topology
    agent_id: str
    app_port: int
    redirect_port: int
    agent: Process
    guard_pid: int

    def ask(self, ns: Netns, host: str, *, mark: int | None = None) -> str:
        args = [host, str(self.app_port)] + ([str(mark)] if mark is not None else [])
        return ns.python(CLIENT, *args).stdout.strip()


def _agent_id() -> str:
    return os.urandom(4).hex()


def _pmd_lines(ns: Netns) -> list[str]:
    return [line for line in ns.nat_rules().splitlines() if "PMD-" in line]


def _gone(pid: int) -> bool:
    """True once ``pid`` has exited (a zombie waiting for its new parent to reap it counts as exited)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] in {"Z", "X"}
    except FileNotFoundError:
        return True


@pytest.fixture
def scene(topology: Topology) -> Iterator[Scene]:
    pod = topology.pod
    app = pod.start_python(APP)
    listener = pod.start_python(REDIRECT_LISTENER)
    agent_id = _agent_id()
    agent = start_process(
        python_argv(AGENT_STUB, pod.target, agent_id, listener.ready_line, str(BYPASS_MARK))
    )
    try:
        guard_pid = json.loads(agent.ready_line)["guard"]
        yield Scene(topology, agent_id, int(app.ready_line), int(listener.ready_line), agent, guard_pid)
    finally:
        # The stub lives in the pod's namespace too, but it is not started through Netns.start.
        agent.kill()


def test_connection_from_other_host_lands_on_redirect_port(scene: Scene) -> None:
    topo = scene.topology
    assert scene.ask(topo.client, topo.pod_ip) == "app"

    assert scene.agent.request(f"add {scene.app_port}") == "ok"

    # PREROUTING: SO_ORIGINAL_DST tells the listener where the client meant to go.
    assert scene.ask(topo.client, topo.pod_ip) == f"redirected {topo.pod_ip}:{scene.app_port}"


def test_clients_inside_the_pod_are_redirected_but_marked_sockets_are_not(scene: Scene) -> None:
    pod = scene.topology.pod
    assert scene.agent.request(f"add {scene.app_port}") == "ok"

    assert scene.ask(pod, "127.0.0.1") == f"redirected 127.0.0.1:{scene.app_port}"
    # The pod's own address is local too, so its traffic goes out through lo as well.
    assert scene.ask(pod, scene.topology.pod_ip) == f"redirected {scene.topology.pod_ip}:{scene.app_port}"
    # What the agent does to reach the real app: its mark makes OUTPUT skip the redirect.
    assert scene.ask(pod, "127.0.0.1", mark=BYPASS_MARK) == "app"
    assert scene.ask(pod, "127.0.0.1", mark=BYPASS_MARK + 1) == f"redirected 127.0.0.1:{scene.app_port}"


def test_remove_port_restores_direct_delivery(scene: Scene) -> None:
    topo = scene.topology
    assert scene.agent.request(f"add {scene.app_port}") == "ok"
    assert scene.ask(topo.client, topo.pod_ip).startswith("redirected")

    assert scene.agent.request(f"remove {scene.app_port}") == "ok"

    assert scene.ask(topo.client, topo.pod_ip) == "app"
    assert scene.ask(topo.pod, "127.0.0.1") == "app"
    # The chains stay (other ports may come) but hold no redirect any more.
    assert not [line for line in _pmd_lines(topo.pod) if "REDIRECT" in line]


def test_guard_inherits_the_namespace_and_cleans_up_after_sigkill(scene: Scene) -> None:
    pod = scene.topology.pod
    assert scene.agent.request(f"add {scene.app_port}") == "ok"
    assert network_namespace_id(f"/proc/{scene.guard_pid}/ns/net") == network_namespace_id(pod.path)
    assert _pmd_lines(pod)

    scene.agent.kill()

    assert wait_until(lambda: not _pmd_lines(pod)), pod.nat_rules()
    assert wait_until(lambda: _gone(scene.guard_pid))
    assert scene.ask(scene.topology.client, scene.topology.pod_ip) == "app"


def test_clean_exit_removes_rules_and_releases_the_guard(scene: Scene) -> None:
    assert scene.agent.request(f"add {scene.app_port}") == "ok"

    assert scene.agent.request("exit") == "removed 0"

    assert scene.agent.wait() == 0
    assert _pmd_lines(scene.topology.pod) == []
    assert _gone(scene.guard_pid)


def test_stale_chains_of_dead_owners_are_removed_and_live_ones_kept(scene: Scene) -> None:
    pod = scene.topology.pod
    # An owner that has exited, and one whose pid is alive but belongs to a newer process (pid reuse).
    with start_process(python_argv("import sys; print('up'); sys.stdin.read()")) as gone:
        dead_pid = gone.pid
        dead_start = _start_time(dead_pid)
        gone.close_stdin()
        assert gone.wait() == 0
    reused_pid = os.getpid()
    pod.python(
        PLANT_RULES,
        json.dumps([["dead1", dead_pid, dead_start], ["reused1", reused_pid, _start_time(reused_pid) + 1]]),
    )
    assert scene.agent.request(f"add {scene.app_port}") == "ok"

    report = json.loads(pod.python(REMOVE_STALE).stdout)

    assert report["stale"] == [["dead1", dead_pid, [80]], ["reused1", reused_pid, [80]]]
    assert report["live"] == [[scene.agent_id, scene.agent.pid, [scene.app_port]]]
    chains = {line.split()[1] for line in _pmd_lines(pod) if line.startswith("-N")}
    assert chains == {f"PMD-{scene.agent_id}-PRE", f"PMD-{scene.agent_id}-OUT"}
    # The live agent's redirect still works.
    assert scene.ask(scene.topology.client, scene.topology.pod_ip).startswith("redirected")


PLANT_RULES = r"""
import json, sys
from pymirrord.agent.iptables import Owner, RedirectRules
for agent_id, pid, start in json.loads(sys.argv[1]):
    rules = RedirectRules(agent_id, 4000, 1, owner=Owner(pid, start))
    rules.install()
    rules.add_port(80)
"""

REMOVE_STALE = r"""
import json
from pymirrord.agent.iptables import remove_stale
scan = remove_stale()
print(json.dumps({
    kind: [[a.agent_id, a.owner.pid if a.owner else None, list(a.ports)] for a in agents]
    for kind, agents in (("stale", scan.stale), ("live", scan.live))
}))
"""


def _start_time(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as f:
        return int(f.read().rsplit(")", 1)[1].split()[19])


def test_guard_ignores_sigint_and_holds_no_descriptors_of_its_parent(pod_netns: Netns) -> None:
    guard = spawn_guard(_agent_id(), target=pod_netns.target)
    try:
        fds = os.listdir(f"/proc/{guard.pid}/fd")
        assert sorted(fds) == ["0", "1", "2"]
        assert os.readlink(f"/proc/{guard.pid}/fd/1") == "/dev/null"
        assert network_namespace_id(f"/proc/{guard.pid}/ns/net") == network_namespace_id(pod_netns.path)

        # An ignored signal is discarded when sent, so if the guard then exits normally it never saw it.
        os.kill(guard.pid, signal.SIGINT)
        assert guard.release() == 0
    finally:
        guard.process.kill()
        guard.process.wait()


def test_guard_removes_rules_on_sigterm(pod_netns: Netns) -> None:
    agent_id = _agent_id()
    pod_netns.python(PLANT_RULES, json.dumps([[agent_id, os.getpid(), _start_time(os.getpid())]]))
    guard = spawn_guard(agent_id, target=pod_netns.target)
    try:
        assert _pmd_lines(pod_netns)
        guard.process.terminate()
        assert guard.process.wait(timeout=30) == 0
        assert _pmd_lines(pod_netns) == []
    finally:
        guard.process.kill()
        guard.process.wait()


def test_ipv6_rules_are_installed_and_removed_with_ipv4(pod_netns: Netns) -> None:
    agent_id = _agent_id()
    guard = spawn_guard(agent_id, ipv6=True, target=pod_netns.target)
    try:
        pod_netns.python(
            "import sys\n"
            "from pymirrord.agent.iptables import RedirectRules\n"
            "rules = RedirectRules(sys.argv[1], 4000, 1, ipv6=True)\n"
            "rules.install()\n"
            "rules.add_port(80)\n",
            agent_id,
        )
        for ipv6 in (False, True):
            assert f"-A PMD-{agent_id}-PRE -p tcp -m tcp --dport 80 -j REDIRECT --to-ports 4000" in (
                pod_netns.nat_rules(ipv6=ipv6)
            )

        assert guard.close() == 0

        for ipv6 in (False, True):
            assert "PMD-" not in pod_netns.nat_rules(ipv6=ipv6)
    finally:
        guard.process.kill()
        guard.process.wait()


def test_a_guard_removes_the_dead_agents_directories_too(pod_netns: Netns) -> None:
    directory = tempfile.mkdtemp(prefix="pmd-test-handover-")
    kept = tempfile.mkdtemp(prefix="pmd-test-kept-")
    try:
        guard = spawn_guard("ab12", target=pod_netns.target, remove_dirs=[directory])
        assert guard.close() == 0, "the agent 'died': the guard cleaned up and exited"
        assert not os.path.exists(directory)
        released = spawn_guard("ab13", target=pod_netns.target, remove_dirs=[kept])
        assert released.release() == 0
        assert os.path.isdir(kept), "an agent that released its guard removes its own directories"
    finally:
        for path in (directory, kept):
            if os.path.isdir(path):
                os.rmdir(path)
