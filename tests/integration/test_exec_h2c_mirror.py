"""Mirroring h2c with prior knowledge on a filtered port: each matching stream is copied to the local app.

The pod's app (``apps/h2c_named.py``) serves every stream over h2c; the local app (``apps/http_named.py``)
speaks only HTTP/1.1 and logs each request it reads whole, so its log shows which streams the agent copied
and that they arrived as HTTP/1.1 requests with their bodies.
"""

from __future__ import annotations

import re
import sys

from exec_helpers import APPS, pymirrord_exec
from netns_helpers import Topology
from test_exec_h2c_filter import interleaved, streams

POD_SERVER = str(APPS / "h2c_named.py")
LOCAL_SERVER = str(APPS / "http_named.py")
LOGGED = re.compile(r"local got \S+ /\S* \(\d+ bytes\)")


def test_matching_streams_reach_the_local_app_as_http1_while_the_pod_serves_all(topology: Topology) -> None:
    topology.pod.start(sys.executable, POD_SERVER, "80", "pod")
    config = {
        "feature": {
            "network": {"incoming": {"mode": "mirror", "http_filter": {"header_filter": "^x-user: me$"}}}
        }
    }
    specs = interleaved()
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
