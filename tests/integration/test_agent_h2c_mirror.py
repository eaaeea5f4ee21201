"""The agent's copies of h2c streams for a mirroring session, with the session played by the test.

Everything a session receives comes over one websocket in the order the agent sent it, so the test sees
exactly which streams were copied, and each copy's HTTP/1.1 bytes as the session's local app would get them.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import h11
from exec_helpers import APPS
from netns_helpers import Topology
from test_agent_incoming import Session, running_agent, session

from pymirrord.protocol import agent_to_session as to_session
from pymirrord.protocol import session_to_agent as from_session
from pymirrord.protocol.http_types import HttpFilterSpec
from pymirrord.protocol.types import Mode

CLIENT = str(APPS / "h2c_client.py")


def streams(topology: Topology, specs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    result = topology.client.run(sys.executable, CLIENT, topology.pod_ip, "80", json.dumps(specs), timeout=60)
    return [json.loads(line) for line in result.stdout.splitlines()]


def copies_until(s: Session, last_target: str) -> dict[str, bytes]:
    """Each copy's whole HTTP/1.1 request by target, up to and including the one for ``last_target``."""
    started: dict[int, str] = {}
    data: dict[int, bytearray] = {}
    done: dict[str, bytes] = {}
    while last_target not in done:
        message = s.next()
        if isinstance(message, to_session.HttpRequestStart):
            assert message.mode is Mode.MIRROR, message
            started[message.request_id] = message.target
            data[message.request_id] = bytearray(message.head)
        elif isinstance(message, to_session.HttpRequestBody):
            data[message.request_id] += message.data
        elif isinstance(message, to_session.HttpRequestEnd):
            done[started[message.request_id]] = bytes(data.pop(message.request_id))
        else:
            assert not isinstance(message, to_session.HttpRequestAbort), message
    assert not data, "every copy that started also ended"
    return done


def read_http1(raw: bytes) -> tuple[h11.Request, bytes]:
    server = h11.Connection(h11.SERVER)
    server.receive_data(raw)
    request = server.next_event()
    assert isinstance(request, h11.Request), request
    body = b""
    while not isinstance(event := server.next_event(), h11.EndOfMessage):
        assert isinstance(event, h11.Data), event
        body += event.data
    return request, body


def test_a_mirroring_session_gets_exactly_the_matching_streams(topology: Topology) -> None:
    topology.pod.start(sys.executable, str(APPS / "h2c_named.py"), "80", "pod")
    specs: list[dict[str, Any]] = [
        {"method": "GET", "path": f"/get/{index}", "user": "me" if index % 3 == 0 else "other"}
        for index in range(9)
    ] + [
        {"method": "POST", "path": "/post/mine", "user": "me", "size": 300_000},
        {"method": "POST", "path": "/post/theirs", "user": "other", "size": 300_000},
    ]
    with running_agent(topology.pod) as agent, session(agent) as mirror:
        mirror.send(from_session.PortSubscribe(80, Mode.MIRROR, False, HttpFilterSpec(header="^x-user: me$")))
        result = mirror.expect(lambda m: isinstance(m, to_session.PortSubscribeResult))
        assert isinstance(result, to_session.PortSubscribeResult) and result.error is None, result
        answers = streams(topology, specs)
        assert [(a["status"], a["server"], a["path"]) for a in answers] == [
            ("200", "pod", spec["path"]) for spec in specs
        ]
        assert [a["length"] for a in answers[-2:]] == [300_000, 300_000]
        # A last matching stream on a new connection: its copy comes after every earlier one.
        assert streams(topology, [{"method": "GET", "path": "/last", "user": "me"}])[0]["server"] == "pod"
        copies = copies_until(mirror, "/last")
    assert sorted(copies) == sorted(["/get/0", "/get/3", "/get/6", "/post/mine", "/last"])
    for target, raw in copies.items():
        request, body = read_http1(raw)
        assert raw.startswith(f"{request.method.decode()} {target} HTTP/1.1\r\n".encode())
        assert (b"x-user", b"me") in request.headers and (b"host", b"h2c.test") in request.headers
        assert body == (b"x" * 300_000 if target == "/post/mine" else b"")
