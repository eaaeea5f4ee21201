"""The agent's HTTP filtering with sessions played by the test (several sessions share one agent here)."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator

import pytest
from exec_helpers import APPS
from netns_helpers import Topology
from test_agent_incoming import Agent, Session, running_agent, session

from pymirrord.protocol import agent_to_session as to_session
from pymirrord.protocol import session_to_agent as from_session
from pymirrord.protocol.http_types import HttpFilterSpec
from pymirrord.protocol.types import Mode


@pytest.fixture
def agent(topology: Topology) -> Iterator[Agent]:
    topology.pod.start(sys.executable, str(APPS / "http_named.py"), "80", "pod")
    with running_agent(topology.pod) as running:
        yield running


def subscribe(s: Session, header: str) -> None:
    s.send(from_session.PortSubscribe(80, Mode.STEAL, False, HttpFilterSpec(header=header)))
    result = s.expect(lambda m: isinstance(m, to_session.PortSubscribeResult))
    assert isinstance(result, to_session.PortSubscribeResult) and result.error is None, result


def answer_one(s: Session, name: str) -> to_session.HttpRequestStart:
    start = s.expect(lambda m: isinstance(m, to_session.HttpRequestStart))
    assert isinstance(start, to_session.HttpRequestStart)
    s.expect(lambda m: m == to_session.HttpRequestEnd(start.request_id))
    body = json.dumps({"server": name}).encode()
    head = f"HTTP/1.1 200 OK\r\nX-Served-By: {name}\r\nContent-Length: {len(body)}\r\n\r\n".encode()
    s.send(from_session.HttpResponseData(start.request_id, head + body))
    s.send(from_session.HttpResponseEnd(start.request_id))
    return start


def test_two_sessions_with_different_header_filters(topology: Topology, agent: Agent) -> None:
    with session(agent) as alice, session(agent) as bob:
        subscribe(alice, "^x-user: alice$")
        subscribe(bob, "^x-user: bob$")
        specs = [
            {"target": "/a", "headers": [["X-User", "alice"]]},
            {"target": "/b", "headers": [["X-User", "bob"]]},
            {"target": "/c", "headers": [["X-User", "carol"]]},
            {"target": "/a2", "headers": [["X-User", "alice"]]},
        ]
        client = topology.client.start(
            sys.executable,
            str(APPS / "http_client.py"),
            topology.pod_ip,
            "80",
            json.dumps(specs),
            ready=False,
        )
        assert answer_one(alice, "alice").target == "/a"
        assert answer_one(bob, "bob").target == "/b"
        start = answer_one(alice, "alice")
        assert start.target == "/a2"
        assert start.matched == "header_filter"
        assert start.client.host == topology.client_ip
        lines = [json.loads(client.read_line()) for _ in specs]
        assert [line["served_by"] for line in lines] == ["alice", "bob", "pod", "alice"]
        client.wait()


def test_a_session_that_fails_a_request_sends_it_to_the_pod(topology: Topology, agent: Agent) -> None:
    with session(agent) as gone:
        subscribe(gone, "^x-user: me$")
        specs = [{"method": "POST", "target": "/x", "headers": [["X-User", "me"]], "body": "hello"}]
        client = topology.client.start(
            sys.executable,
            str(APPS / "http_client.py"),
            topology.pod_ip,
            "80",
            json.dumps(specs),
            ready=False,
        )
        start = gone.expect(lambda m: isinstance(m, to_session.HttpRequestStart))
        assert isinstance(start, to_session.HttpRequestStart)
        gone.expect(lambda m: m == to_session.HttpRequestEnd(start.request_id))
        gone.send(from_session.HttpResponseFailed(start.request_id, "the app is gone"))
        line = json.loads(client.read_line())
        assert line["served_by"] == "pod"
        assert line["json"]["length"] == 5, "the pod got the whole request, body included"
        client.wait()
