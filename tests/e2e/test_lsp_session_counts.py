"""An editor session's view counts every byte and request its app is sent, whichever relayed path they take.

The helper prepares a launch for a namespace target; two apps run with the environment it returned (no
debugger: the path of the bytes is the same): ``tunnel_probe.py`` takes a raw upload on one stolen port and
``http_named.py`` answers HTTP on another. With tunnels, each stolen connection's tunnel goes to the app
itself, and the agent counts its bytes and finds its requests (its sniffer reads the client's bytes until it
gives up on a connection that is not HTTP; the upload then moves by splice), which it reports to the
session. With ``PYMIRRORD_TUNNELS=0`` in the helper's environment, every byte crosses the websocket as
messages. On both paths the view's byte count is exact and every request is listed.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from exec_helpers import APPS
from netns_helpers import Topology, child_env, wait_until

from e2e.conftest import helper_argv
from pymirrord.lab import WatchedProcess
from pymirrord.server.rpc_client import HelperClient

UPLOAD_PORT = "9200"
HTTP_PORT = "80"
UPLOAD_MIB = 4
REQUESTS = [f"GET /counted/{index} HTTP/1.1\r\nHost: pod\r\n\r\n".encode() for index in range(3)]
KEEP_ALIVE_CLIENT = """
import json, socket, sys
requests = [bytes.fromhex(item) for item in json.loads(sys.argv[3])]
answers = []
with socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=15) as connection:
    stream = connection.makefile("rb")
    for request in requests:
        connection.sendall(request)
        status = stream.readline().decode().strip()
        length = 0
        while (line := stream.readline()) not in (b"\\r\\n", b""):
            name, _, value = line.decode().partition(":")
            if name.lower() == "content-length":
                length = int(value)
        answers.append([status, json.loads(stream.read(length))])
print(json.dumps(answers))
"""


def _prepared_env(helper: HelperClient, topology: Topology, tmp_path: Path, incoming: Any) -> dict[str, str]:
    """The environment the helper prepares for a launch with ``feature.network.incoming`` = ``incoming``
    (the apps then run with it; which program the launch names changes nothing here)."""
    config = tmp_path / ".mirrord" / "mirrord.json"
    config.parent.mkdir()
    config.write_text(json.dumps({"feature": {"network": {"incoming": incoming}}}))
    helper.initialize(tmp_path.as_uri(), progress=False)
    launch = {"type": "debugpy", "program": str(APPS / "http_named.py"), "cwd": str(tmp_path)}
    prepared = helper.request(
        "pymirrord/prepareLaunch",
        {"configUri": config.as_uri(), "target": topology.pod.target, "launch": launch},
        timeout=60,
    )
    return child_env(prepared["env"])


def _session(helper: HelperClient) -> dict[str, Any]:
    (session,) = helper.request("pymirrord/sessions")["sessions"]
    return dict(session)


@pytest.mark.parametrize("tunnels", [True, False], ids=["tunnels", "messages"])
def test_the_sessions_view_counts_every_byte_and_request(
    topology: Topology, tmp_path: Path, tunnels: bool
) -> None:
    helper = HelperClient(
        helper_argv(), cwd=str(tmp_path), env=child_env({} if tunnels else {"PYMIRRORD_TUNNELS": "0"})
    )
    try:
        env = _prepared_env(helper, topology, tmp_path, "steal")
        probe = WatchedProcess([sys.executable, str(APPS / "tunnel_probe.py"), UPLOAD_PORT, "local"], env=env)
        named = WatchedProcess([sys.executable, str(APPS / "http_named.py"), HTTP_PORT, "local"], env=env)
        with probe, named:
            served: set[int] = set()

            def port_served(event: dict[str, Any]) -> bool:
                if event["kind"] == "port":
                    served.add(int(event["port"]))
                return served >= {int(UPLOAD_PORT), int(HTTP_PORT)}

            helper.wait_notification("pymirrord/sessionEvent", port_served, timeout=60)
            upload = [sys.executable, str(APPS / "upload_client.py"), topology.pod_ip, UPLOAD_PORT]
            sent = json.loads(
                topology.client.run(*upload, str(UPLOAD_MIB), "digest", "up", timeout=60).stdout
            )
            assert sent["answer"] == f"{sent['size']} {sent['sha256']}", "the upload reached the app whole"
            accepted = json.loads(probe.wait_for("local up accepted").split(" accepted ", 1)[1])
            assert accepted["tunneled"] is tunnels, "the tunnel itself reached the app, past the session"
            hexed = json.dumps([request.hex() for request in REQUESTS])
            answered = topology.client.python(KEEP_ALIVE_CLIENT, topology.pod_ip, HTTP_PORT, hexed).stdout
            assert [status for status, _ in json.loads(answered)] == ["HTTP/1.1 200"] * 3
            command = len(b"digest up\n")
            expected = command + sent["size"] + sum(map(len, REQUESTS))
            # The agent reports a tunnel's traffic as it ends: the report may trail the client's answer.
            wait_until(lambda: _session(helper)["bytes"]["in"] >= expected, timeout=10)
            session = _session(helper)
            assert session["bytes"]["in"] == expected
            paths = [request["path"] for request in session["lastRequests"]]
            assert paths[-3:] == ["/counted/0", "/counted/1", "/counted/2"]
            assert session["connections"]["steal"] == 2
    finally:
        helper.close()


def test_filtered_requests_are_counted_also_when_the_agent_writes_them_to_the_app(
    topology: Topology, tmp_path: Path
) -> None:
    """With an HTTP filter, after the first requests the agent writes matching ones to a tunnel the app
    accepted (its peer is then not the session's 127.0.0.2), and tells the session of each: the view
    counts every request either way."""
    helper = HelperClient(helper_argv(), cwd=str(tmp_path), env=child_env())
    try:
        incoming = {"mode": "steal", "http_filter": {"header_filter": "^x-user: me$"}}
        env = _prepared_env(helper, topology, tmp_path, incoming)
        with WatchedProcess([sys.executable, str(APPS / "http_named.py"), HTTP_PORT, "local"], env=env):
            helper.wait_notification(
                "pymirrord/sessionEvent", lambda event: event["kind"] == "port", timeout=60
            )
            mine = b"GET /mine HTTP/1.1\r\nHost: pod\r\nX-User: me\r\n\r\n".hex()
            sent = 0
            peers: list[str] = []
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and all(peer == "127.0.0.2" for peer in peers):
                answered = topology.client.python(
                    KEEP_ALIVE_CLIENT, topology.pod_ip, HTTP_PORT, json.dumps([mine] * 5)
                ).stdout
                sent += 5
                for status, body in json.loads(answered):
                    assert status == "HTTP/1.1 200" and body["server"] == "local"
                    peers.append(body["peer"][0])
            assert peers[-1] != "127.0.0.2", "no request came down a tunnel the app accepted"
            # The editor hears of each of them: one by one, or batched while they come fast (the agent's
            # notes of a busy spell wait a moment to travel together, so the count may trail the answers).
            helper.wait_notification(
                "pymirrord/sessionEvent", lambda _: helper.requests_told("steal") >= sent, timeout=10
            )
            assert helper.requests_told("steal") == sent
            assert _session(helper)["requests"]["steal"] == sent
    finally:
        helper.close()
