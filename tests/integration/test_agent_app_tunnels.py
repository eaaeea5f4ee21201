"""Matching requests the agent writes into tunnels a session gave it (``HttpAppTunnel``), as a session that
reaches its agent over the network does.

The test plays the session on the websocket and, at the far end of each tunnel it opens, the session's local
app: it reads the request the agent wrote there and answers it. The pod's own app answers ``pod``.
"""

from __future__ import annotations

import asyncio
import json
import socket
import sys
from collections.abc import Iterator

import pytest
from exec_helpers import APPS, start_http_client
from netns_helpers import DEFAULT_TIMEOUT, Topology
from test_agent_incoming import Agent, Session, running_agent, session

from pymirrord.protocol import agent_to_session as to_session
from pymirrord.protocol import session_to_agent as from_session
from pymirrord.protocol.http_types import HttpFilterSpec
from pymirrord.protocol.types import Mode
from pymirrord.transport.connection import open_raw
from pymirrord.tunnel import ID_HEADER, KEY_HEADER, PATH, USE_HEADER

MINE = [["X-User", "me"]]


@pytest.fixture
def agent(topology: Topology) -> Iterator[Agent]:
    topology.pod.start(sys.executable, str(APPS / "http_named.py"), "80", "pod")
    with running_agent(topology.pod) as running:
        yield running


def open_tunnel(agent: Agent, s: Session, tunnel_id: int, use: str = "outgoing") -> socket.socket:
    """One of the session's tunnels to the agent (``use``: ``outgoing`` or ``incoming``), handshake done
    (a blocking socket)."""
    host, port = agent.address.rsplit(":", 1)
    headers = {
        "Authorization": f"Bearer {agent.token}",
        KEY_HEADER: s.hello.tunnel_key,
        USE_HEADER: use,
        ID_HEADER: str(tunnel_id),
    }
    stream = asyncio.run(open_raw(host, int(port), path=PATH, headers=headers, timeout=DEFAULT_TIMEOUT))
    assert stream.rest == b""
    stream.sock.setblocking(True)
    stream.sock.settimeout(DEFAULT_TIMEOUT)
    return stream.sock


def subscribe(s: Session) -> None:
    s.send(from_session.PortSubscribe(80, Mode.STEAL, False, HttpFilterSpec(header="^x-user: me$")))
    result = s.expect(lambda m: isinstance(m, to_session.PortSubscribeResult))
    assert isinstance(result, to_session.PortSubscribeResult) and result.error is None, result


def read_head(sock: socket.socket) -> bytes:
    head = b""
    while not head.endswith(b"\r\n\r\n"):
        chunk = sock.recv(1)
        assert chunk, f"the tunnel ended after {head!r}"
        head += chunk
    return head


def answer(sock: socket.socket, name: str) -> None:
    body = json.dumps({"server": name}).encode()
    sock.sendall(
        f"HTTP/1.1 200 OK\r\nX-Served-By: {name}\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body
    )


def test_requests_go_down_the_tunnel_and_the_session_hears_of_each(topology: Topology, agent: Agent) -> None:
    """After ``HttpAppTunnel`` the agent writes matching requests into that tunnel and relays the answers,
    and tells the session of them (``HttpRequestsServed``) when it asked; the others still reach the pod."""
    with session(agent) as s:
        subscribe(s)
        app = open_tunnel(agent, s, 2)
        with app:
            s.send(from_session.HttpAppTunnel(80, 2, notify=True))
            s.sync()
            specs = [
                {"target": "/one", "headers": MINE},
                {"target": "/theirs", "headers": []},
                {"target": "/two", "headers": MINE},
            ]
            client = start_http_client(topology, specs)
            for target in ("/one", "/two"):
                head = read_head(app)
                assert head.startswith(f"GET {target} HTTP/1.1\r\n".encode()), head
                answer(app, "tunnel")
            served: list[to_session.ServedRequest] = []
            count = 0
            while count < 2:
                note = s.expect(lambda m: isinstance(m, to_session.HttpRequestsServed))
                assert isinstance(note, to_session.HttpRequestsServed)
                count += note.count
                served += note.last
            assert count == 2
            assert [(each.port, each.method, each.target) for each in served] == [
                (80, "GET", "/one"),
                (80, "GET", "/two"),
            ]
            for each in served:
                assert each.matched == "header_filter" and each.client.host == topology.client_ip
            lines = [json.loads(client.read_line()) for _ in specs]
            assert [line["served_by"] for line in lines] == ["tunnel", "pod", "tunnel"]
            client.wait()
        assert not any(isinstance(m, to_session.HttpRequestStart) for m in s.pending), "none came as messages"


def test_a_tunnel_for_a_port_the_session_does_not_filter_is_closed(agent: Agent) -> None:
    with session(agent) as s, open_tunnel(agent, s, 2) as app:
        s.send(from_session.HttpAppTunnel(80, 2))
        s.sync()
        assert app.recv(1) == b"", "the agent closed the tunnel"
