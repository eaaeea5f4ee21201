"""``pymirrord exec`` with outgoing traffic and DNS, against real namespaces.

The world: a "pod" namespace whose own 127.0.0.1 serves ``pod`` (HTTP and UDP) on the same ports where this
machine's 127.0.0.1 serves ``local``; a "backend" namespace routed only from the pod, serving ``backend``; the
pod's ``/etc/netns/NAME`` files (a hosts entry, a search domain and ``ndots``) and a DNS server on the pod's
loopback. The app runs on this machine under ``pymirrord exec`` and reports what it reached.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import socket
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import debugpy
import pytest
from exec_helpers import APPS, pymirrord_exec
from netns_helpers import Netns, connect, random_subnet, start_process

from pymirrord import event_loop

PROBE = str(APPS / "outgoing_probe.py")
SERVICE = str(APPS / "named_service.py")
DNS_SERVER = str(APPS / "dns_server.py")
CLOSED_PORT = 1
"""Nothing listens on it in the fresh pod namespace."""
DNS_PORT = 53
"""resolv.conf cannot name another port; the server binds it inside the test's own pod namespace."""


@dataclass(frozen=True)
class World:
    pod: Netns
    backend_ip: str
    port: int
    """TCP: ``pod`` on the pod's 127.0.0.1, ``local`` on this machine's."""
    udp_port: int
    """UDP: the same two sides."""
    backend_port: int


@pytest.fixture
def world(netns_factory: Callable[[], Netns]) -> Iterator[World]:
    pod, backend = netns_factory(), netns_factory()
    pod_side_ip, backend_ip = random_subnet()
    connect(pod, backend, pod_side_ip, backend_ip)
    etc = Path("/etc/netns") / pod.name
    etc.mkdir(parents=True)
    local = None
    try:
        (etc / "hosts").write_text(f"127.0.0.1 localhost\n{backend_ip} hosts-only.test hosts-alias\n")
        (etc / "resolv.conf").write_text(
            "nameserver 127.0.0.1\nsearch svc.cluster.local cluster.local\noptions ndots:5 timeout:2\n"
        )
        local = start_process([sys.executable, SERVICE, "127.0.0.1", "0", "0", "local"])
        port, udp_port = local.ready_line.split()
        pod.start(sys.executable, SERVICE, "127.0.0.1", port, udp_port, "pod")
        backend_service = backend.start(sys.executable, SERVICE, "0.0.0.0", "0", "0", "backend")
        backend_port = int(backend_service.ready_line.split()[0])
        records = [f"api.svc.cluster.local={backend_ip}", f"db.example.test={backend_ip}"]
        pod.start(sys.executable, DNS_SERVER, "127.0.0.1", str(DNS_PORT), *records)
        yield World(pod, backend_ip, int(port), int(udp_port), backend_port)
    finally:
        if local is not None:
            local.stop()
        shutil.rmtree(etc, ignore_errors=True)


def probe(world: World, plan: list[list[Any]], **options: Any) -> dict[str, Any]:
    """Runs the probe app under pymirrord with ``plan``; its results by key."""
    with pymirrord_exec(world.pod, [sys.executable, PROBE, json.dumps(plan)], **options) as run:
        line = run.wait_for("RESULT ", timeout=60)
        assert run.wait(timeout=30) == 0
    result: dict[str, Any] = json.loads(line.split("RESULT ", 1)[1])
    return result


@pytest.mark.parametrize(
    ("handover", "loop"),
    [(True, "1"), (False, "1"), (False, "0")],
    # The agent and the session run on uvloop where it is installed, as here: once on asyncio's own loop too.
    ids=["handover", "relay", "relay-asyncio-loop"],
)
def test_pod_only_services_answer_the_local_app(world: World, handover: bool, loop: str) -> None:
    backend = f"{world.backend_ip}:{world.backend_port}"
    loopback = f"127.0.0.1:{world.port}"
    results = probe(
        world,
        [
            ["requests_loopback", "requests", f"http://{loopback}/"],
            ["urllib_loopback", "urllib", f"http://{loopback}/"],
            ["asyncio_loopback", "asyncio", "127.0.0.1", world.port],
            ["aiohttp_loopback", "aiohttp", f"http://{loopback}/"],
            ["requests_backend", "requests", f"http://{backend}/"],
            ["asyncio_backend", "asyncio", world.backend_ip, world.backend_port],
            ["aiohttp_backend", "aiohttp", f"http://{backend}/"],
            ["nonblocking_backend", "nonblocking", world.backend_ip, world.backend_port],
            ["names", "names", "127.0.0.1", world.port],
            ["refused", "names", "127.0.0.1", CLOSED_PORT],
            ["udp", "udp", "127.0.0.1", world.udp_port, "ping"],
            ["udp_sendto", "udp_sendto", "127.0.0.1", world.udp_port, "pong"],
            ["kernel_peer", "kernel_peer", world.backend_ip, world.backend_port],
        ],
        handover=handover,
        env={event_loop.SWITCH: loop},
    )
    # Handed over, the app's socket is the pod's own connection; relayed, it reaches a local interceptor.
    assert results["kernel_peer"] == (world.backend_ip if handover else "127.0.0.1")
    for key in ("requests_loopback", "urllib_loopback", "asyncio_loopback", "aiohttp_loopback"):
        assert results[key] == "pod", key
    for key in ("requests_backend", "asyncio_backend", "aiohttp_backend"):
        assert results[key] == "backend", key
    assert results["nonblocking_backend"] == "status=0 body=backend"
    assert results["names"]["peer"] == ["127.0.0.1", world.port]
    assert results["names"]["local"][0] == "127.0.0.1"
    assert results["refused"] == "error:ConnectionRefusedError:111"
    assert results["udp"] == f"pod:ping peer=127.0.0.1:{world.udp_port}"
    assert results["udp_sendto"] == f"pod:pong from=127.0.0.1:{world.udp_port}"


def test_names_resolve_as_in_the_pod(world: World) -> None:
    results = probe(
        world,
        [
            ["hosts_file", "resolve", "hosts-only.test"],
            ["hosts_alias", "gethostbyname", "hosts-alias"],
            ["hosts_ex", "gethostbyname_ex", "hosts-only.test"],
            ["search_domain", "resolve", "api"],
            ["search_domain_ex", "gethostbyname", "api.svc"],
            ["fqdn", "resolve", "db.example.test"],
            ["localhost", "resolve", "localhost"],
            ["unknown", "resolve", "no-such-name.example.test"],
            ["by_short_name", "requests", f"http://api:{world.backend_port}/"],
            ["by_hosts_name", "aiohttp", f"http://hosts-only.test:{world.backend_port}/"],
        ],
    )
    ip = world.backend_ip
    assert results["hosts_file"] == [ip]
    assert results["hosts_alias"] == ip
    assert results["hosts_ex"] == ["hosts-only.test", [], [ip]]
    assert results["search_domain"] == [ip]
    assert results["search_domain_ex"] == ip
    assert results["fqdn"] == [ip]
    assert "127.0.0.1" in results["localhost"]
    assert results["unknown"] == f"error:gaierror:{socket.EAI_NONAME}"
    assert results["by_short_name"] == "backend"
    assert results["by_hosts_name"] == "backend"


SIDES_PLAN = [
    ["tcp_loopback", "requests", "URL"],
    ["udp_loopback", "udp", "127.0.0.1", "UDP_PORT", "x"],
    ["hosts_name", "resolve", "hosts-only.test"],
    ["dns_name", "resolve", "db.example.test"],
    ["backend", "urllib", "BACKEND_URL"],
]


def sides(world: World, **options: Any) -> dict[str, str]:
    """Which side served each kind of traffic: ``pod`` or ``local`` (connections), ``remote`` or ``local``
    (names)."""
    url = f"http://127.0.0.1:{world.port}/"
    backend_url = f"http://{world.backend_ip}:{world.backend_port}/"
    plan = json.loads(
        json.dumps(SIDES_PLAN)
        .replace('"URL"', json.dumps(url))
        .replace('"UDP_PORT"', str(world.udp_port))
        .replace('"BACKEND_URL"', json.dumps(backend_url))
    )
    results = probe(world, plan, **options)

    def name_side(value: Any) -> str:
        return "remote" if value == [world.backend_ip] else "local"

    return {
        "tcp": results["tcp_loopback"] if results["tcp_loopback"] in ("pod", "local") else "failed",
        "udp": str(results["udp_loopback"]).split(":", 1)[0],
        "hosts_name": name_side(results["hosts_name"]),
        "dns_name": name_side(results["dns_name"]),
        "backend": "pod" if results["backend"] == "backend" else "local",
    }


EVERYTHING_REMOTE = {
    "tcp": "pod",
    "udp": "pod",
    "hosts_name": "remote",
    "dns_name": "remote",
    "backend": "pod",
}


@pytest.mark.parametrize(
    ("flag", "expected"),
    [
        ("--no-outgoing", {"tcp": "local", "udp": "local", "backend": "local"}),
        ("--no-tcp-outgoing", {"tcp": "local", "backend": "local"}),
        ("--no-udp-outgoing", {"udp": "local"}),
        ("--no-remote-dns", {"hosts_name": "local", "dns_name": "local"}),
    ],
)
def test_each_flag_keeps_its_traffic_local(world: World, flag: str, expected: dict[str, str]) -> None:
    assert sides(world, flags=[flag]) == {**EVERYTHING_REMOTE, **expected}


def network(**sections: Any) -> dict[str, Any]:
    return {"feature": {"network": sections}}


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        pytest.param(
            network(outgoing={"ignore_localhost": True}),
            {"tcp": "local", "udp": "local"},
            id="ignore_localhost",
        ),
        pytest.param(
            network(outgoing={"filter": {"local": ["127.0.0.1"]}}),
            {"tcp": "local", "udp": "local"},
            id="local-ip",
        ),
        pytest.param(
            network(outgoing={"filter": {"remote": ["tcp://127.0.0.0/8"]}}),
            {"udp": "local", "backend": "local"},
            id="remote-tcp-subnet",
        ),
        pytest.param(
            network(outgoing={"filter": {"remote": ["hosts-only.test"]}}),
            {"tcp": "local", "udp": "local"},
            id="remote-name",
        ),
        pytest.param(
            network(outgoing={"filter": {"local": ["hosts-only.test"]}}),
            {"hosts_name": "local"},
            id="local-name",
        ),
        pytest.param(
            network(dns={"filter": {"local": ["db.example.test"]}}),
            {"dns_name": "local"},
            id="dns-local",
        ),
        pytest.param(
            network(dns={"filter": {"remote": ["db.example.test"]}}),
            {"hosts_name": "local"},
            id="dns-remote",
        ),
    ],
)
def test_filters_choose_the_side(world: World, config: dict[str, Any], expected: dict[str, str]) -> None:
    assert sides(world, config=config) == {**EVERYTHING_REMOTE, **expected}


class FakeAdapter:
    """Where VS Code's debug adapter listens: a loopback port on this machine.

    Once debugpy connects, it gets the three requests after which it runs the program (``initialize``,
    ``attach``, ``configurationDone``); whatever debugpy sends is read and dropped.
    """

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(30)
        self.port = self.listener.getsockname()[1]
        self.connected = threading.Event()
        self._connection: socket.socket | None = None
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        try:
            connection, _ = self.listener.accept()
        except OSError:
            return
        self._connection = connection
        self.connected.set()
        for seq, command in enumerate(("initialize", "attach", "configurationDone"), 1):
            body = json.dumps({"seq": seq, "type": "request", "command": command, "arguments": {}}).encode()
            connection.sendall(b"Content-Length: %d\r\n\r\n" % len(body) + body)
        with contextlib.suppress(OSError):
            while connection.recv(65536):
                pass

    def close(self) -> None:
        self.listener.close()
        if self._connection is not None:
            with contextlib.suppress(OSError):
                self._connection.shutdown(socket.SHUT_RDWR)
            self._connection.close()


def test_debugpy_reaches_its_adapter_locally_while_the_app_reaches_the_pod(world: World) -> None:
    adapter = FakeAdapter()
    try:
        debugpy_dir = str(Path(debugpy.__file__).parent)
        plan = json.dumps([["loopback", "requests", f"http://127.0.0.1:{world.port}/"]])
        # The command line VS Code's launcher gives the debuggee.
        app = [sys.executable, debugpy_dir, "--connect", f"127.0.0.1:{adapter.port}", PROBE, plan]
        with pymirrord_exec(world.pod, app) as run:
            assert adapter.connected.wait(30), "debugpy never reached its adapter on this machine"
            line = run.wait_for("RESULT ", timeout=60)
        assert json.loads(line.split("RESULT ", 1)[1]) == {"loopback": "pod"}
    finally:
        adapter.close()
