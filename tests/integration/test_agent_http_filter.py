"""The agent's HTTP filtering with sessions played by the test (several sessions share one agent here)."""

from __future__ import annotations

import hashlib
import json
import os
import sys
from collections.abc import Iterator

import pytest
from exec_helpers import APPS, start_http_client
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
        client = start_http_client(topology, specs)
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
        client = start_http_client(topology, specs)
        start = gone.expect(lambda m: isinstance(m, to_session.HttpRequestStart))
        assert isinstance(start, to_session.HttpRequestStart)
        gone.expect(lambda m: m == to_session.HttpRequestEnd(start.request_id))
        gone.send(from_session.HttpResponseFailed(start.request_id, "the app is gone"))
        line = json.loads(client.read_line())
        assert line["served_by"] == "pod"
        assert line["json"]["length"] == 5, "the pod got the whole request, body included"
        client.wait()


# Asks for a response, then reads none of it until a line comes on its stdin; prints the body's size and hash.
HELD_RESPONSE = r"""
import hashlib, socket, sys
with socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=60) as s:
    s.sendall(b"GET /big HTTP/1.1\r\nHost: pod\r\nX-User: alice\r\nConnection: close\r\n\r\n")
    print("asked", flush=True)
    sys.stdin.readline()
    answer = b""
    while chunk := s.recv(1 << 20):
        answer += chunk
body = answer.partition(b"\r\n\r\n")[2]
print(len(body), hashlib.sha256(body).hexdigest(), flush=True)
"""


def test_a_slow_client_holds_back_only_its_own_response(topology: Topology, agent: Agent) -> None:
    chunk, chunks = os.urandom(1 << 20), 24
    with session(agent) as s:
        subscribe(s, "^x-user: alice$")
        slow = topology.client.start_python(HELD_RESPONSE, topology.pod_ip, "80")
        start = s.expect(lambda m: isinstance(m, to_session.HttpRequestStart))
        assert isinstance(start, to_session.HttpRequestStart) and start.target == "/big"
        held = start.request_id
        s.send(
            from_session.HttpResponseData(
                held, b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % (chunks << 20)
            )
        )
        for _ in range(chunks):
            s.send(from_session.HttpResponseData(held, chunk))
        paused = s.expect(lambda m: isinstance(m, to_session.HttpResponseFlow))
        assert paused == to_session.HttpResponseFlow(held, True)
        # The agent's loop for this session does not wait for the slow client: another request is served.
        other = [{"target": "/a", "headers": [["X-User", "alice"]]}]
        client = start_http_client(topology, other)
        assert answer_one(s, "alice").target == "/a"
        assert json.loads(client.read_line())["served_by"] == "alice"
        slow.write_line("read now")
        resumed = s.expect(lambda m: isinstance(m, to_session.HttpResponseFlow))
        assert resumed == to_session.HttpResponseFlow(held, False)
        s.send(from_session.HttpResponseEnd(held))
        assert slow.read_line(timeout=60).split() == [
            str(chunks << 20),
            hashlib.sha256(chunk * chunks).hexdigest(),
        ]
