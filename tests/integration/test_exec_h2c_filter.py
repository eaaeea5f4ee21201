"""h2c with prior knowledge on a filtered port: each stream of one connection is routed on its own.

The pod's app and the local app (``apps/h2c_named.py``) speak both h2c and HTTP/1.1 and say who served a
request and over which protocol: the pod's app gets its streams over h2c; the local app gets the matching
streams over h2c too (the session speaks HTTP/2 to it), or as HTTP/1.1 requests when it speaks nothing else;
and the client gets every answer on the right stream. gRPC calls (a real ``grpcio`` client and pod server)
are routed by their metadata the same way.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from exec_helpers import APPS, pymirrord_exec
from netns_helpers import Topology

SERVER = str(APPS / "h2c_named.py")
CLIENT = str(APPS / "h2c_client.py")
HTTP1_SERVER = str(APPS / "http_named.py")
GRPC_SERVER = str(APPS / "grpc_named.py")
GRPC_CLIENT = str(APPS / "grpc_client.py")
CONFIG = {
    "feature": {"network": {"incoming": {"mode": "steal", "http_filter": {"header_filter": "^x-user: me$"}}}}
}


def streams(topology: Topology, specs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    result = topology.client.run(sys.executable, CLIENT, topology.pod_ip, "80", json.dumps(specs), timeout=60)
    return [json.loads(line) for line in result.stdout.splitlines()]


def interleaved() -> list[dict[str, Any]]:
    """Streams for one h2c connection: six GETs alternating ``x-user: me`` and another user, two 200 kB
    POSTs (mine, then theirs), and one GET without the header."""
    return [
        {"method": "GET", "path": f"/get/{index}", "user": "me" if index % 2 == 0 else "other"}
        for index in range(6)
    ] + [
        {"method": "POST", "path": "/post/mine", "user": "me", "size": 200_000},
        {"method": "POST", "path": "/post/theirs", "user": "other", "size": 200_000},
        {"method": "GET", "path": "/path/only", "user": ""},
    ]


def test_interleaved_streams_go_to_the_side_their_headers_choose(topology: Topology) -> None:
    topology.pod.start(sys.executable, SERVER, "80", "pod")
    specs = interleaved()
    with pymirrord_exec(topology.pod, [sys.executable, SERVER, "80", "local"], config=CONFIG) as run:
        run.wait_for("pymirrord: port 80 stolen")
        answers = streams(topology, specs)
    assert [a["status"] for a in answers] == ["200"] * len(specs), answers
    assert [a["path"] for a in answers] == [spec["path"] for spec in specs]
    assert [a["server"] for a in answers] == ["local", "pod"] * 3 + ["local", "pod", "pod"]
    assert {a["protocol"] for a in answers if a["server"] == "pod"} == {"h2c"}
    assert {a["protocol"] for a in answers if a["server"] == "local"} == {"h2c"}
    assert [a["length"] for a in answers[6:8]] == [200_000, 200_000]
    assert [a["method"] for a in answers[6:8]] == ["POST", "POST"]


def test_a_local_app_that_speaks_only_http1_gets_the_streams_as_http1(topology: Topology) -> None:
    topology.pod.start(sys.executable, SERVER, "80", "pod")
    specs: list[dict[str, Any]] = [
        {"method": "POST", "path": f"/p/{index}", "user": "me" if index % 2 == 0 else "x", "size": 1000}
        for index in range(6)
    ]
    with pymirrord_exec(topology.pod, [sys.executable, HTTP1_SERVER, "80", "local"], config=CONFIG) as run:
        run.wait_for("pymirrord: port 80 stolen")
        answers = streams(topology, specs)
        run.wait_for("does not speak HTTP/2")
    assert [a["status"] for a in answers] == ["200"] * len(specs), answers
    assert [a["server"] for a in answers] == ["local", "pod"] * 3


def test_grpc_calls_are_routed_by_metadata(topology: Topology) -> None:
    topology.pod.start(sys.executable, GRPC_SERVER, "80", "pod")
    calls = [{"user": "me" if index % 2 == 0 else "other", "size": 100 * index} for index in range(8)]
    with pymirrord_exec(topology.pod, [sys.executable, SERVER, "80", "local"], config=CONFIG) as run:
        run.wait_for("pymirrord: port 80 stolen")
        result = topology.client.run(
            sys.executable, GRPC_CLIENT, topology.pod_ip, "80", json.dumps(calls), timeout=60
        )
    answers = [json.loads(line) for line in result.stdout.splitlines()]
    assert [a["code"] for a in answers] == ["OK"] * len(calls), answers
    assert [a["answer"]["server"] for a in answers] == ["local", "pod"] * 4
    assert [a["trailing"].get("x-served-by") for a in answers] == ["local", "pod"] * 4, "trailers came back"
    assert {a["answer"]["protocol"] for a in answers} == {"h2c"}
    assert [a["answer"]["length"] for a in answers] == [call["size"] for call in calls]
    assert [a["answer"]["user"] for a in answers] == [call["user"] for call in calls]
