"""Matching requests sent by the agent itself on connections to the local app a session handed over.

The test process plays a session with a handover channel (as a session on the agent's machine opens) and its
local app: a threaded HTTP server on loopback that answers ``direct``. Requests that reach the session over
the websocket instead are answered ``relay`` by the test, so every answer says which way it went.
"""

from __future__ import annotations

import http.server
import json
import os
import socket
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from exec_helpers import APPS, start_http_client
from netns_helpers import DEFAULT_TIMEOUT, Process, Topology
from test_agent_incoming import Agent, Session, running_agent, session

from pymirrord.protocol import agent_to_session as to_session
from pymirrord.protocol import handover_channel, rights
from pymirrord.protocol import session_to_agent as from_session
from pymirrord.protocol.handover_channel import Kind
from pymirrord.protocol.http_types import HttpFilterSpec
from pymirrord.protocol.types import Mode


@pytest.fixture
def agent(topology: Topology) -> Iterator[Agent]:
    topology.pod.start(sys.executable, str(APPS / "http_named.py"), "80", "pod")
    with running_agent(topology.pod) as running:
        yield running


class LocalApp:
    """A keep-alive HTTP/1.1 app on 127.0.0.1:0; ``hang_up`` makes it close each connection silently after
    answering (as an app whose keep-alive timeout ran out between requests does)."""

    def __init__(self, *, hang_up: bool = False) -> None:
        app = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                body = json.dumps({"server": "direct"}).encode()
                self.send_response(200)
                self.send_header("X-Served-By", "direct")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                with app.lock:
                    app.paths.append(self.path)
                if hang_up:
                    self.close_connection = True

            def finish(self) -> None:
                super().finish()
                with app.lock:
                    app.closed += 1
                    app.changed.notify_all()

            def log_message(self, *args: object) -> None:
                pass

        self.lock = threading.Lock()
        self.changed = threading.Condition(self.lock)
        self.paths: list[str] = []
        self.closed = 0
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def address(self) -> tuple[str, int]:
        host, port = self.server.server_address[:2]
        return str(host), int(port)

    def wait_closed(self, count: int) -> bool:
        with self.changed:
            return self.changed.wait_for(lambda: self.closed >= count, DEFAULT_TIMEOUT)

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class HandingSession:
    """Plays the session: hands over a new app connection per ``HttpConnectionWanted`` and answers the
    requests that come over the websocket with ``relay``, on a thread of its own, until ``stop``."""

    def __init__(self, s: Session, app: LocalApp) -> None:
        assert s.hello.handover_path is not None
        self.session = s
        self.app = app
        self.channel = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.channel.connect(s.hello.handover_path)
        self.channel.sendall(s.hello.handover_key.encode())
        self.asked = 0
        self.relayed: list[str] = []
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        # The agent reads the key asynchronously: a ping answered means it had its turn to register it.
        self.session.sync()
        self.thread.start()

    def _run(self) -> None:
        while not self.stopping.is_set():
            try:
                message = self.session.next(timeout=0.1)
            except TimeoutError:
                continue
            if isinstance(message, to_session.HttpConnectionWanted):
                self.asked += 1
                with socket.create_connection(self.app.address) as app_connection:
                    self.channel.sendmsg(
                        [handover_channel.encode(Kind.APP, message.port)],
                        rights.carrying(app_connection.fileno()),
                    )
            elif isinstance(message, to_session.HttpRequestStart):
                self.relayed.append(message.target)
                body = json.dumps({"server": "relay"}).encode()
                head = f"HTTP/1.1 200 OK\r\nX-Served-By: relay\r\nContent-Length: {len(body)}\r\n\r\n"
                self.session.send(from_session.HttpResponseData(message.request_id, head.encode() + body))
                self.session.send(from_session.HttpResponseEnd(message.request_id))

    def stop(self) -> None:
        self.stopping.set()
        self.thread.join(DEFAULT_TIMEOUT)
        self.channel.close()


@contextmanager
def handing(agent: Agent, app: LocalApp) -> Iterator[HandingSession]:
    with session(agent) as s:
        s.send(from_session.PortSubscribe(80, Mode.STEAL, True, HttpFilterSpec(header="^x-user: me$")))
        result = s.expect(lambda m: isinstance(m, to_session.PortSubscribeResult))
        assert isinstance(result, to_session.PortSubscribeResult) and result.error is None, result
        played = HandingSession(s, app)
        played.start()
        try:
            yield played
        finally:
            played.stop()


def run_client(topology: Topology, specs: list[dict[str, object]]) -> list[dict[str, object]]:
    client: Process = start_http_client(topology, specs)
    lines = [json.loads(client.read_line()) for _ in specs]
    assert client.wait() == 0
    return lines


def mine(n: int) -> dict[str, object]:
    return {"target": f"/mine/{n}", "headers": [["X-User", "me"]]}


def theirs(n: int) -> dict[str, object]:
    return {"target": f"/theirs/{n}", "headers": [["X-User", "them"]]}


def test_matching_requests_move_to_handed_over_app_connections(topology: Topology, agent: Agent) -> None:
    app = LocalApp()
    try:
        with handing(agent, app) as played:
            specs = [spec(n) for n in range(20) for spec in (mine, theirs)]
            lines = run_client(topology, specs)
            served = [line["served_by"] for line in lines]
            assert served[1::2] == ["pod"] * 20, "requests that match nothing stay with the pod"
            assert set(served[0::2]) <= {"relay", "direct"}
            assert served[-2] == "direct", "once a connection is here, the agent uses it"
            assert 1 <= played.asked <= 4
            relayed = set(played.relayed)
            with app.lock:
                direct = set(app.paths)
            assert relayed | direct == {f"/mine/{n}" for n in range(20)}
            assert not relayed & direct, "each request was served once"
    finally:
        app.stop()


def test_a_connection_the_app_closed_sends_the_request_the_websocket_way(
    topology: Topology, agent: Agent
) -> None:
    app = LocalApp(hang_up=True)
    try:
        with handing(agent, app) as played:
            lines = run_client(topology, [mine(n) for n in range(12)])
            assert all(line["status"] == 200 for line in lines), "no request was lost"
            relayed = set(played.relayed)
            with app.lock:
                direct = app.paths.copy()
            assert relayed | set(direct) == {f"/mine/{n}" for n in range(12)}
            assert len(direct) == len(set(direct)) and not relayed & set(direct)
            assert direct, "handed-over connections served some requests"
    finally:
        app.stop()


@pytest.mark.parametrize("ending", ["unsubscribe", "leave"])
def test_app_connections_close_with_the_port_or_the_session(
    topology: Topology, agent: Agent, ending: str
) -> None:
    app = LocalApp()
    try:
        with handing(agent, app) as played:
            lines = run_client(topology, [mine(n) for n in range(6)])
            assert lines[-1]["served_by"] == "direct"
            handed = played.asked
            if ending == "unsubscribe":
                played.session.send(from_session.PortUnsubscribe(80))
                assert app.wait_closed(handed), "the agent closed the app connections of the port"
        if ending == "leave":
            assert app.wait_closed(handed), "the agent closed the app connections of the session"
    finally:
        app.stop()


def test_junk_on_the_handover_channel_is_dropped(topology: Topology, agent: Agent) -> None:
    app = LocalApp()
    try:
        with handing(agent, app) as played:
            readable, writable = os.pipe()
            try:
                # Not a socket, then a message that is no handover header: both closed and forgotten.
                played.channel.sendmsg([handover_channel.encode(Kind.APP, 80)], rights.carrying(readable))
                played.channel.sendmsg([b"junk"], rights.carrying(writable))
            finally:
                os.close(readable)
                os.close(writable)
            lines = run_client(topology, [mine(n) for n in range(6)])
            assert [line["status"] for line in lines] == [200] * 6
            assert lines[-1]["served_by"] == "direct", "the channel still carries app connections"
    finally:
        app.stop()
