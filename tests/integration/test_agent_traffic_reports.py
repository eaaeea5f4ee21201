"""The traffic of a stolen connection the agent relays through a tunnel, reported to a session that shows it
(``ClientHello.report_traffic``): what an editor session's view counts while the tunnel goes to the app.

The test plays the session on the websocket and, at the far end of its incoming tunnel, the session's app.
"""

from __future__ import annotations

import socket
import sys

from exec_helpers import APPS
from netns_helpers import Topology
from test_agent_app_tunnels import open_tunnel, read_head
from test_agent_incoming import Session, running_agent, session

from pymirrord.protocol import agent_to_session as to_session
from pymirrord.protocol.types import Mode

REQUESTS = [
    b"GET /first HTTP/1.1\r\nHost: pod\r\n\r\n",
    b"POST /second HTTP/1.1\r\nHost: pod\r\nContent-Length: 5\r\n\r\nhello",
]
ANSWER = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
CLIENT = """
import socket, sys
answer_size = int(sys.argv[2])
requests = [bytes.fromhex(item) for item in sys.argv[3:]]
with socket.create_connection((sys.argv[1], 80), timeout=30) as connection:
    for request in requests:
        connection.sendall(request)
        got = b""
        while len(got) < answer_size:
            chunk = connection.recv(answer_size - len(got))
            assert chunk, "the connection ended inside an answer"
            got += chunk
    connection.shutdown(socket.SHUT_WR)
    assert connection.recv(1) == b""
print("done", flush=True)
"""


def traffic_until_closed(s: Session, connection_id: int) -> tuple[list[to_session.TrafficReport], bool]:
    """The reports that came before the connection's ``ConnectionClosed``, and whether any came after it."""
    reports: list[to_session.TrafficReport] = []
    while True:
        message = s.next()
        if isinstance(message, to_session.TrafficReport):
            reports.append(message)
        elif isinstance(message, to_session.ConnectionClosed) and message.connection_id == connection_id:
            s.sync()  # whatever the agent sent after the end is queued by now
            return reports, any(isinstance(m, to_session.TrafficReport) for m in s.pending)


def test_the_agent_counts_a_tunneled_connections_bytes_and_finds_its_requests(topology: Topology) -> None:
    topology.pod.start(sys.executable, str(APPS / "http_named.py"), "80", "pod")
    with running_agent(topology.pod) as agent, session(agent, report_traffic=True) as s:
        assert s.subscribe(80, Mode.STEAL).error is None
        with open_tunnel(agent, s, 1, use="incoming") as app:
            s.sync()  # the agent holds the tunnel before the client connects
            hexed = [request.hex() for request in REQUESTS]
            client = topology.client.start_python(
                CLIENT, topology.pod_ip, str(len(ANSWER)), *hexed, ready=False
            )
            new = s.new_connection()
            assert new.tunnel == 1, "the stolen connection took the tunnel"
            for request in REQUESTS:
                head = read_head(app)
                body = request[len(head) :]
                assert head + (app.recv(len(body), socket.MSG_WAITALL) if body else b"") == request
                app.sendall(ANSWER)
            assert app.recv(1) == b"", "the client's end of stream reached the app"
            app.close()
            assert client.read_line() == "done"
            reports, late = traffic_until_closed(s, new.connection_id)
        assert not late, "the connection's last report came before its end"
        counts = [t for r in reports for t in r.connections]
        assert {t.connection_id for t in counts} == {new.connection_id}
        to_app, from_app = sum(t.to_app for t in counts), sum(t.from_app for t in counts)
        assert (to_app, from_app) == (sum(map(len, REQUESTS)), 2 * len(ANSWER))
        assert sum(r.requests for r in reports) == 2
        seen = [(request.method, request.target) for r in reports for request in r.last]
        assert seen == [("GET", "/first"), ("POST", "/second")]
        assert all(request.connection_id == new.connection_id for r in reports for request in r.last)


def test_a_session_that_did_not_ask_hears_nothing_of_it(topology: Topology) -> None:
    topology.pod.start(sys.executable, str(APPS / "http_named.py"), "80", "pod")
    with running_agent(topology.pod) as agent, session(agent) as s:
        assert s.subscribe(80, Mode.STEAL).error is None
        with open_tunnel(agent, s, 1, use="incoming") as app:
            s.sync()
            client = topology.client.start_python(
                CLIENT, topology.pod_ip, str(len(ANSWER)), REQUESTS[0].hex(), ready=False
            )
            new = s.new_connection()
            assert new.tunnel == 1
            read_head(app)
            app.sendall(ANSWER)
            assert app.recv(1) == b""
            app.close()
            assert client.read_line() == "done"
            reports, late = traffic_until_closed(s, new.connection_id)
        assert reports == [] and not late
