"""Mirroring h2c with prior knowledge on a filtered port: each matching stream is copied to the local app.

The pod's app (``apps/h2c_named.py``) serves every stream over h2c; the local app (``apps/http_named.py``)
speaks only HTTP/1.1 and logs each request it reads whole, so its log shows which streams the agent copied
and that they arrived as HTTP/1.1 requests with their bodies.
"""

from __future__ import annotations

import json
import re
import sys
from typing import Any

from exec_helpers import APPS, pymirrord_exec
from netns_helpers import Topology

POD_SERVER = str(APPS / "h2c_named.py")
LOCAL_SERVER = str(APPS / "http_named.py")
CLIENT = str(APPS / "h2c_client.py")
LOGGED = re.compile(r"local got \S+ /\S* \(\d+ bytes\)")


def streams(topology: Topology, specs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    result = topology.client.run(sys.executable, CLIENT, topology.pod_ip, "80", json.dumps(specs), timeout=60)
    return [json.loads(line) for line in result.stdout.splitlines()]


def test_matching_streams_reach_the_local_app_as_http1_while_the_pod_serves_all(topology: Topology) -> None:
    topology.pod.start(sys.executable, POD_SERVER, "80", "pod")
    config = {
        "feature": {
            "network": {"incoming": {"mode": "mirror", "http_filter": {"header_filter": "^x-user: me$"}}}
        }
    }
    specs: list[dict[str, Any]] = [
        {"method": "GET", "path": f"/get/{index}", "user": "me" if index % 2 == 0 else "other"}
        for index in range(6)
    ] + [
        {"method": "POST", "path": "/post/mine", "user": "me", "size": 200_000},
        {"method": "POST", "path": "/post/theirs", "user": "other", "size": 200_000},
        {"method": "GET", "path": "/path/only", "user": ""},
    ]
    mine = [spec for spec in specs if spec["user"] == "me"]
    with pymirrord_exec(topology.pod, [sys.executable, LOCAL_SERVER, "80", "local"], config=config) as run:
        run.wait_for("pymirrord: port 80 mirrored")
        answers = streams(topology, specs)
        assert [a["status"] for a in answers] == ["200"] * len(specs), answers
        assert [a["path"] for a in answers] == [spec["path"] for spec in specs]
        assert {(a["server"], a["protocol"]) for a in answers} == {("pod", "h2c")}, (
            "the pod serves every stream"
        )
        assert [a["length"] for a in answers[6:8]] == [200_000, 200_000], "the pod got whole bodies"
        expected = [f"local got {s['method']} {s['path']} ({s.get('size', 0)} bytes)" for s in mine]
        run.wait_for_each(*expected)
        # Copies travel to the session in the order the agent made them: once a later stream's copy has
        # reached the local app, a copy of any earlier non-matching stream would have been sent before it.
        assert streams(topology, [{"method": "GET", "path": "/last", "user": "me"}])[0]["server"] == "pod"
        run.wait_for("local got GET /last (0 bytes)")
        # Requests for a path only: a session may first try HTTP/2 with the app, whose preface an HTTP/1.1
        # server reads as a request for ``*``. Searched within lines: the app's threads share one pipe.
        copied = sorted(match for line in run.seen for match in LOGGED.findall(line))
        assert copied == sorted([*expected, "local got GET /last (0 bytes)"]), run.seen
