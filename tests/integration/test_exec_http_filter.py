"""HTTP filters end to end: real namespaces, the agent's redirect, ``pymirrord exec`` with a filter.

The pod and the local app run ``apps/http_named.py``; every answer says who served it (``pod`` or
``local``), so a test can see where each request went."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from exec_helpers import APPS, pymirrord_exec
from netns_helpers import Netns, Topology, python_argv

from pymirrord.lab import WatchedProcess

SERVER = str(APPS / "http_named.py")
CLIENT = str(APPS / "http_client.py")


def _filter_config(http_filter: dict[str, Any], mode: str = "steal") -> dict[str, Any]:
    return {"feature": {"network": {"incoming": {"mode": mode, "http_filter": http_filter}}}}


@contextmanager
def filtered(
    topology: Topology,
    http_filter: dict[str, Any],
    *,
    mode: str = "steal",
    name: str = "local",
    port: int = 80,
    handover: bool = True,
    env: dict[str, str] | None = None,
    app_options: tuple[str, ...] = (),
) -> Iterator[WatchedProcess]:
    with pymirrord_exec(
        topology.pod,
        [sys.executable, SERVER, str(port), name, *app_options],
        config=_filter_config(http_filter, mode),
        handover=handover,
        env=env,
    ) as run:
        run.wait_for(f"pymirrord: port {port} {'stolen' if mode == 'steal' else 'mirrored'}")
        yield run


def requests(topology: Topology, specs: list[dict[str, Any]], port: int = 80) -> list[dict[str, Any]]:
    result = topology.client.run(
        sys.executable, CLIENT, topology.pod_ip, str(port), json.dumps(specs), timeout=120
    )
    return [json.loads(line) for line in result.stdout.splitlines()]


def served(topology: Topology, specs: list[dict[str, Any]], port: int = 80) -> list[str]:
    return [answer["served_by"] for answer in requests(topology, specs, port)]


def get(target: str = "/", headers: list[list[str]] | None = None, method: str = "GET") -> dict[str, Any]:
    return {"method": method, "target": target, "headers": headers or []}


@pytest.fixture
def pod(topology: Topology) -> Topology:
    topology.pod.start(sys.executable, SERVER, "80", "pod")
    return topology


def test_mission_header_examples(pod: Topology) -> None:
    # "the filter MyHeader would match requests with MyHeader in any of their header names or header values"
    with filtered(pod, {"header_filter": "MyHeader"}):
        assert served(
            pod,
            [
                get(headers=[["MyHeader", "1"]]),
                get(headers=[["X-Other", "has MyHeader inside"]]),
                get(headers=[["X-Other", "nothing"]]),
            ],
        ) == ["local", "local", "pod"]
    # "The filter ^X-MyFilter: would match only requests that have a header with the header name X-MyFilter
    # (or x-myfilter or with any other capitalization)"
    with filtered(pod, {"header_filter": "^X-MyFilter:"}):
        assert served(
            pod,
            [
                get(headers=[["X-MyFilter", "a"]]),
                get(headers=[["x-myfilter", "b"]]),
                get(headers=[["X-MYFILTER", "c"]]),
                get(headers=[["X-Other", "X-MyFilter: d"]]),
            ],
        ) == ["local", "local", "local", "pod"]


def test_environment_overrides_set_the_filter(pod: Topology) -> None:
    env = {"MIRRORD_HTTP_HEADER_FILTER": "^x-user: me$", "MIRRORD_HTTP_FILTER_PORTS": "80"}
    with pymirrord_exec(pod.pod, [sys.executable, SERVER, "80", "local"], steal=True, env=env) as run:
        run.wait_for("pymirrord: port 80 stolen")
        mine = [["X-User", "me"]]
        assert served(pod, [get("/a", mine), get("/b"), get("/c", [["X-User", "you"]])]) == [
            "local",
            "pod",
            "pod",
        ]


def test_path_method_all_of_any_of(pod: Topology) -> None:
    with filtered(pod, {"path_filter": r"^/api/v\d+/users"}):
        # The path alone first, then the path with its query.
        assert served(pod, [get("/api/v2/users?x=1"), get("/api/users"), get("/other")]) == [
            "local",
            "pod",
            "pod",
        ]
    with filtered(pod, {"path_filter": r"debug=me"}):
        assert served(pod, [get("/a?debug=me"), get("/a?debug=you")]) == ["local", "pod"]
    with filtered(pod, {"method_filter": "post"}):
        assert served(pod, [get(method="POST"), get(method="GET")]) == ["local", "pod"]
    with filtered(pod, {"all_of": [{"header": "^x-user: alice$"}, {"path": "^/api"}]}):
        assert served(
            pod,
            [
                get("/api", [["X-User", "alice"]]),
                get("/web", [["X-User", "alice"]]),
                get("/api", [["X-User", "bob"]]),
            ],
        ) == ["local", "pod", "pod"]
    with filtered(pod, {"any_of": [{"header": "^x-user: alice$"}, {"method": "DELETE"}]}):
        assert served(
            pod, [get("/", [["X-User", "alice"]]), get(method="DELETE"), get("/", [["X-User", "bob"]])]
        ) == ["local", "local", "pod"]


@pytest.mark.parametrize("handover", [True, False], ids=["app-connections", "relayed"])
def test_keep_alive_alternates_and_bodies_stream(pod: Topology, handover: bool) -> None:
    """With handover the agent writes matching requests to the app itself; without, the session relays."""
    mine = [["X-User", "me"]]
    with filtered(pod, {"header_filter": "^x-user: me$"}, handover=handover):
        alternating = [get("/", mine if i % 2 == 0 else []) for i in range(10)]
        assert served(pod, alternating) == ["local", "pod"] * 5
        answers = requests(
            pod,
            [
                {
                    "method": "POST",
                    "target": "/up",
                    "headers": mine,
                    "size": 20 * 1024 * 1024,
                    "chunked": True,
                },
                {"method": "POST", "target": "/up", "size": 20 * 1024 * 1024},
                {
                    "method": "POST",
                    "target": "/t",
                    "headers": mine,
                    "size": 10,
                    "chunked": True,
                    "trailers": [["X-Checksum", "abc"]],
                },
                {
                    "method": "POST",
                    "target": "/t",
                    "size": 10,
                    "chunked": True,
                    "trailers": [["X-Checksum", "d"]],
                },
                {"method": "POST", "target": "/e", "headers": mine, "size": 1000, "expect": True},
                {"method": "POST", "target": "/e", "size": 1000, "expect": True},
                get("/bytes/20000000", mine),
                get("/bytes/20000000"),
            ],
        )
        assert [a["served_by"] for a in answers] == ["local", "pod"] * 4
        for answer in answers[:6]:
            assert answer["json"]["sha256"] == answer["sent_sha256"], "the body arrived intact"
        assert answers[0]["json"]["length"] == 20 * 1024 * 1024
        assert answers[2]["json"]["trailers"] == {"x-checksum": "abc"}
        assert answers[3]["json"]["trailers"] == {"x-checksum": "d"}
        assert answers[6]["length"] == answers[7]["length"] == 20_000_000


SESSION_SOURCE = "127.0.0.2"
"""Where the session's own connections to the app come from (``pymirrord.protocol.types.SHARED_SOURCE``)."""


def _peers_until_one_differs(topology: Topology, headers: list[list[str]]) -> list[tuple[str, int]]:
    """The app's peer for matching requests sent one after the other, in batches of 5, until one comes from
    somewhere other than the session, or for 15 s."""
    peers: list[tuple[str, int]] = []
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and all(peer[0] == SESSION_SOURCE for peer in peers):
        for answer in requests(topology, [get(f"/{len(peers) + i}", headers) for i in range(5)]):
            assert answer["served_by"] == "local"
            peers.append((answer["json"]["peer"][0], answer["json"]["peer"][1]))
    return peers


@pytest.mark.parametrize("path", ["app-connections", "app-tunnels", "messages"])
def test_matching_requests_skip_the_session_where_they_can(pod: Topology, path: str) -> None:
    """With handover the agent writes matching requests on connections to the app the session opened and
    handed it; relayed with tunnels, on a tunnel to the agent that the app accepted (its peer is the agent),
    so that after the first few no request crosses the websocket or the session; with tunnels off the
    session writes every one."""
    env = {"PYMIRRORD_TUNNELS": "0"} if path == "messages" else None
    mine = [["X-User", "me"]]
    with filtered(pod, {"header_filter": "^x-user: me$"}, handover=path == "app-connections", env=env):
        if path == "app-tunnels":
            assert _peers_until_one_differs(pod, mine)[-1][0] != SESSION_SOURCE
        else:
            answers = requests(pod, [get(f"/{i}", mine) for i in range(20)])
            assert {answer["json"]["peer"][0] for answer in answers} == {SESSION_SOURCE}


def test_an_app_tunnel_the_app_does_not_take_is_relayed_by_the_session(pod: Topology) -> None:
    """An app that accepts where the layer cannot see it never takes the tunnel offered: the session then
    relays between the tunnel and the connection the app accepted, and every request is still served whole."""
    mine = [["X-User", "me"]]
    with filtered(pod, {"header_filter": "^x-user: me$"}, handover=False, app_options=("--unseen-accept",)):
        # The session relays from the connection it opened to offer the tunnel (from 127.0.0.1); until the
        # offer times out, requests travel as messages.
        peers = _peers_until_one_differs(pod, mine)
        assert peers[-1][0] == "127.0.0.1"
        answers = requests(pod, [{"method": "POST", "target": "/up", "headers": mine, "size": 3 << 20}] * 3)
    assert [answer["served_by"] for answer in answers] == ["local"] * 3
    assert all(answer["json"]["sha256"] == answer["sent_sha256"] for answer in answers)


UPGRADE = """
import socket, sys
host, port, user = sys.argv[1], int(sys.argv[2]), sys.argv[3]
sock = socket.create_connection((host, port), timeout=20)
sock.sendall(
    b"GET /echo HTTP/1.1\\r\\nHost: x\\r\\nConnection: Upgrade\\r\\nUpgrade: echo\\r\\nX-User: "
    + user.encode() + b"\\r\\n\\r\\n"
)
stream = sock.makefile("rb")
status = stream.readline()
while stream.readline() not in (b"\\r\\n", b""):
    pass
sock.sendall(b"one\\ntwo\\n")
print(status.decode().strip(), stream.readline().decode().strip(), stream.readline().decode().strip())
"""


def test_websocket_style_upgrade_follows_the_match(pod: Topology) -> None:
    with filtered(pod, {"header_filter": "^x-user: me$"}):
        matched = pod.client.python(UPGRADE, pod.pod_ip, "80", "me").stdout.split()
        assert matched[-2:] == ["local:one", "local:two"]
        assert matched[1] == "101"
        unmatched = pod.client.python(UPGRADE, pod.pod_ip, "80", "you").stdout.split()
        assert unmatched[-2:] == ["pod:one", "pod:two"]


RAW = """
import socket, sys
sock = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=20)
sock.sendall(bytes.fromhex(sys.stdin.read().strip()))
sock.shutdown(socket.SHUT_WR)
data = b""
while chunk := sock.recv(65536):
    data += chunk
print(data.hex())
"""

RAW_ECHO_POD = """
import socket
listener = socket.create_server(("0.0.0.0", 80))
print("ready", flush=True)
while True:
    connection, _ = listener.accept()
    with connection:
        data = b""
        while chunk := connection.recv(65536):
            data += chunk
        connection.sendall(b"pod-saw:" + data)
"""


def raw_exchange(client: Netns, host: str, data: bytes, *, check: bool = True) -> bytes:
    """Send ``data``, half-close, and return everything the server sends back until it closes."""
    result = client.run(*python_argv(RAW, host, "80"), input=data.hex(), check=check)
    return bytes.fromhex(result.stdout.strip())


def test_non_http_passes_through_byte_for_byte(topology: Topology) -> None:
    topology.pod.start_python(RAW_ECHO_POD)
    payload = bytes(range(256)) * 40 + b"\r\n\r\nGET / HTTP/1.1\r\n"
    with filtered(topology, {"header_filter": "x"}):
        answer = raw_exchange(topology.client, topology.pod_ip, payload)
        assert answer == b"pod-saw:" + payload
        # Text that looks almost like HTTP but is not: still untouched.
        almost = b"HELLO there\r\nnot http at all\r\n"
        answer = raw_exchange(topology.client, topology.pod_ip, almost)
        assert answer == b"pod-saw:" + almost


def test_malformed_http_does_not_disturb_others(pod: Topology) -> None:
    with filtered(pod, {"header_filter": "^x-user: me$"}):
        bad_line = b"GET /x HTTP/1.1\r\nBad Header Line\r\n\r\n"
        oversized = b"GET / HTTP/1.1\r\nX-Big: " + b"a" * 100_000 + b"\r\n\r\n"
        half = b"POST / HTTP/1.1\r\nX-User: me\r\nContent-Length: 1000\r\n\r\nonly a little"
        for raw in (bad_line, oversized, half):
            # The pod's app answers what it can (or closes): the agent only must not break.
            raw_exchange(pod.client, pod.pod_ip, raw, check=False)
        assert served(pod, [get("/", [["X-User", "me"]]), get("/")]) == ["local", "pod"]


def test_non_ascii_header_does_not_break_matching(pod: Topology) -> None:
    with filtered(pod, {"header_filter": "^x-name: j.rgen$"}):
        raw = (
            b"GET / HTTP/1.1\r\nHost: x\r\nX-Name: j\xfcrgen\r\nX-Bin: \xff\xfe\x80\r\n"
            b"Connection: close\r\n\r\n"
        )
        answer = raw_exchange(pod.client, pod.pod_ip, raw)
        assert b"X-Served-By: local" in answer
        utf8 = "GET / HTTP/1.1\r\nHost: x\r\nX-Name: j\u00fcrgen\r\nConnection: close\r\n\r\n".encode()
        answer = raw_exchange(pod.client, pod.pod_ip, utf8)
        assert b"X-Served-By: local" in answer
        other = b"GET / HTTP/1.1\r\nHost: x\r\nX-Name: \xe9t\xe9\r\nConnection: close\r\n\r\n"
        answer = raw_exchange(pod.client, pod.pod_ip, other)
        assert b"X-Served-By: pod" in answer


def test_mirror_with_filter_copies_only_matching(pod: Topology) -> None:
    with filtered(pod, {"header_filter": "^x-user: me$"}, mode="mirror") as run:
        assert served(pod, [get("/not-mine"), get("/mine", [["X-User", "me"]])]) == ["pod", "pod"]
        run.wait_for("local got GET /mine")
        assert not [line for line in run.seen if "/not-mine" in line], "a non-matching request was copied"


def test_gone_app_sends_requests_back_to_the_pod(pod: Topology) -> None:
    with filtered(pod, {"header_filter": "^x-user: me$"}) as run:
        assert served(pod, [get("/", [["X-User", "me"]])]) == ["local"]
        run.interrupt()
    assert served(pod, [get("/", [["X-User", "me"]])]) == ["pod"]


def test_ports_outside_http_filter_ports_are_not_stolen(topology: Topology) -> None:
    topology.pod.start(sys.executable, SERVER, "8081", "pod")
    config = _filter_config({"header_filter": "x", "ports": [80]})
    with pymirrord_exec(topology.pod, [sys.executable, SERVER, "8081", "local"], config=config) as run:
        run.wait_for("8081")
        assert served(topology, [get("/", [["X-User", "x"]])], port=8081) == ["pod"]
