"""The agent for real: a `pymirrord agent` process in a "pod" namespace, clients in a "client" namespace.

The test process plays the session over the websocket (a synchronous websockets client). The pod runs a small
HTTP server on port 80; clients are short Python processes inside the namespaces.
"""

from __future__ import annotations

import collections
import hashlib
import json
import os
import secrets
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import pytest
from netns_helpers import DEFAULT_TIMEOUT, Netns, Process, Topology, child_env, wait_until
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from pymirrord.agent.main import MIRROR_CAPTURE_ENV
from pymirrord.protocol import PROTOCOL_VERSION
from pymirrord.protocol import agent_to_session as to_session
from pymirrord.protocol import session_to_agent as from_session
from pymirrord.protocol.types import Mode

POD_APP = r"""
import http.server

class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = f"pod says {self.path}".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass

http.server.ThreadingHTTPServer.request_queue_size = 256  # the default of 5 drops bursts of connections
server = http.server.ThreadingHTTPServer(("0.0.0.0", 80), Handler)
print("ready", flush=True)
server.serve_forever()
"""

# GET over a raw socket (no proxy settings can interfere); prints the body on one line, or the error.
HTTP_GET = r"""
import socket, sys
host, port, path = sys.argv[1], int(sys.argv[2]), sys.argv[3]
try:
    with socket.create_connection((host, port), timeout=10) as s:
        s.sendall(f"GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n".encode())
        answer = b""
        while chunk := s.recv(65536):
            answer += chunk
    print(answer.partition(b"\r\n\r\n")[2].decode() or "EMPTY")
except OSError as exc:
    print(f"ERROR {exc!r}")
"""

UPLOAD = r"""
import hashlib, os, socket, sys
data = os.urandom(int(sys.argv[3]))
with socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=60) as s:
    s.sendall(data)
    s.shutdown(socket.SHUT_WR)
    reply = b""
    while chunk := s.recv(65536):
        reply += chunk
print(hashlib.sha256(data).hexdigest(), reply.decode())
"""

# Port 81 of the pod: reads everything, answers with the byte count.
COUNTING_APP = r"""
import socketserver

class Handler(socketserver.BaseRequestHandler):
    def handle(self):
        total = 0
        while chunk := self.request.recv(1 << 20):
            total += len(chunk)
        self.request.sendall(str(total).encode())

socketserver.ThreadingTCPServer.allow_reuse_address = True
server = socketserver.ThreadingTCPServer(("0.0.0.0", 81), Handler)
print("ready", flush=True)
server.serve_forever()
"""

# COUNT concurrent GETs; prints how many got the expected body.
CONCURRENT_GETS = r"""
import socket, sys, threading
host, port, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
ok = []
def get(i):
    with socket.create_connection((host, port), timeout=20) as s:
        s.sendall(f"GET /c{i} HTTP/1.0\r\n\r\n".encode())
        answer = b""
        while chunk := s.recv(65536):
            answer += chunk
    return answer.endswith(f"pod says /c{i}".encode())
def one(i):
    try:
        ok.append(get(i))
    except OSError as exc:
        print(f"request {i}: {exc!r}", file=sys.stderr)
threads = [threading.Thread(target=one, args=(i,)) for i in range(count)]
for t in threads: t.start()
for t in threads: t.join()
print(sum(ok))
"""

TOKEN_ENV = "PYMIRRORD_AGENT_TOKEN"


@dataclass
class Agent:
    process: Process
    address: str
    agent_id: str
    token: str
    captures_mirrors: bool = True


@contextmanager
def running_agent(pod: Netns, *extra: str, env: dict[str, str] | None = None) -> Iterator[Agent]:
    with running_agent_for(pod.target, *extra, env=env) as agent:
        yield agent


@contextmanager
def running_agent_for(target: str, *extra: str, env: dict[str, str] | None = None) -> Iterator[Agent]:
    """`pymirrord agent --target TARGET EXTRA...`, once it printed its ready line; stopped with SIGTERM."""
    token = secrets.token_hex(16)
    process = Process(
        [sys.executable, "-m", "pymirrord", "agent", "--target", target, *extra],
        env=child_env({TOKEN_ENV: token, **(env or {})}),
    )
    try:
        ready = json.loads(process.wait_ready(DEFAULT_TIMEOUT))
        assert ready["event"] == "ready"
        yield Agent(process, ready["address"], ready["agent_id"], token)
    finally:
        process.stop()


class Session:
    """The session's side of the websocket, synchronous; messages not yet asked for wait in ``pending``."""

    def __init__(self, agent: Agent, *, max_queue: int | None = None, report_traffic: bool = False) -> None:
        # Unbounded by default: a test that reads only some messages must still close at once (with a bound,
        # the client stops reading, and the agent's close frame waits behind unread data until a timeout).
        self._stack = ExitStack()
        self.ws: ClientConnection = self._stack.enter_context(
            connect(
                f"ws://{agent.address}",
                additional_headers={"Authorization": f"Bearer {agent.token}"},
                proxy=None,
                max_size=None,
                max_queue=max_queue,
            )
        )
        self.pending: collections.deque[to_session.AgentToSession] = collections.deque()
        self._nonce = 0
        self.send(from_session.ClientHello(PROTOCOL_VERSION, "test", "integration", report_traffic))
        hello = self.next()
        assert isinstance(hello, to_session.AgentHello)
        self.hello = hello

    def send(self, message: from_session.SessionToAgent) -> None:
        self.ws.send(from_session.CODEC.encode(message))

    def next(self, timeout: float = DEFAULT_TIMEOUT) -> to_session.AgentToSession:
        if self.pending:
            return self.pending.popleft()
        frame = self.ws.recv(timeout=timeout)
        assert isinstance(frame, bytes)
        return to_session.CODEC.decode(frame)

    def expect(
        self, match: Callable[[to_session.AgentToSession], bool], timeout: float = DEFAULT_TIMEOUT
    ) -> to_session.AgentToSession:
        """The first message (queued or new) that ``match``es; the others stay queued in order."""
        for index, message in enumerate(self.pending):
            if match(message):
                del self.pending[index]
                return message
        while True:
            frame = self.ws.recv(timeout=timeout)
            assert isinstance(frame, bytes)
            message = to_session.CODEC.decode(frame)
            if match(message):
                return message
            self.pending.append(message)

    def subscribe(self, port: int, mode: Mode) -> to_session.PortSubscribeResult:
        self.send(from_session.PortSubscribe(port, mode, handover=False))
        result = self.expect(lambda m: isinstance(m, to_session.PortSubscribeResult) and m.port == port)
        assert isinstance(result, to_session.PortSubscribeResult)
        return result

    def sync(self) -> None:
        """Ping and wait for the pong: everything sent before has been handled by the agent."""
        self._nonce += 1
        nonce = self._nonce
        self.send(from_session.Ping(nonce))
        self.expect(lambda m: m == to_session.Pong(nonce))

    def new_connection(self) -> to_session.NewConnection:
        message = self.expect(lambda m: isinstance(m, to_session.NewConnection))
        assert isinstance(message, to_session.NewConnection)
        return message

    def read_until(self, connection_id: int, end: Callable[[bytes], bool]) -> bytes:
        """Concatenate the connection's ``ConnectionRead`` data until ``end(data)`` holds."""
        data = b""
        while not end(data):
            message = self.expect(lambda m: _about(m, connection_id))
            if isinstance(message, to_session.ConnectionRead):
                if not message.data:
                    break
                data += message.data
            else:
                raise AssertionError(f"connection {connection_id} ended early: {message}")
        return data

    def close(self) -> None:
        with suppress(Exception):
            self._stack.close()


def _about(message: to_session.AgentToSession, connection_id: int) -> bool:
    return getattr(message, "connection_id", None) == connection_id


@contextmanager
def session(agent: Agent, *, max_queue: int | None = None, report_traffic: bool = False) -> Iterator[Session]:
    s = Session(agent, max_queue=max_queue, report_traffic=report_traffic)
    try:
        yield s
    finally:
        s.close()


@pytest.fixture
def pod_app(topology: Topology) -> Process:
    """The pod's HTTP app serving on port 80."""
    return topology.pod.start_python(POD_APP)


@pytest.fixture
def pod(topology: Topology, pod_app: Process) -> Topology:
    """The topology with the pod's HTTP app serving on port 80."""
    return topology


@pytest.fixture
def agent(pod: Topology) -> Iterator[Agent]:
    with running_agent(pod.pod) as running:
        yield running


@pytest.fixture(params=["captured", "redirected"])
def mirroring_agent(request: pytest.FixtureRequest, pod: Topology) -> Iterator[Agent]:
    """An agent that captures the ports sessions only mirror (its default), or one that redirects them
    through itself as it does where it cannot capture (``PYMIRRORD_MIRROR_CAPTURE=0``)."""
    env = {MIRROR_CAPTURE_ENV: "0"} if request.param == "redirected" else {}
    with running_agent(pod.pod, env=env) as running:
        running.captures_mirrors = request.param == "captured"
        yield running


def get(ns: Netns, host: str, path: str, port: int = 80) -> str:
    return ns.python(HTTP_GET, host, str(port), path).stdout.strip()


def start_get(ns: Netns, host: str, path: str, port: int = 80) -> Process:
    return ns.start_python(HTTP_GET, host, str(port), path, ready=False)


def ended_unanswered(line: str) -> bool:
    """Whether an ``HTTP_GET`` client saw its connection end with no answer.

    A socket closed with received bytes still unread sends a reset, not a FIN, just as an app's would: which
    one the client sees depends on whether the agent had read the request yet.
    """
    return line == "EMPTY" or line.startswith("ERROR ConnectionResetError")


def redirect_rules(ns: Netns) -> list[str]:
    return [line for line in ns.nat_rules().splitlines() if "PMD-" in line]


def redirects_port(ns: Netns, port: int) -> bool:
    return any(f"--dport {port} " in line for line in redirect_rules(ns))


# --- mirror ------------------------------------------------------------------------------------------------


def test_mirror_the_pod_answers_and_every_mirroring_session_gets_the_request(
    pod: Topology, mirroring_agent: Agent
) -> None:
    agent = mirroring_agent
    with session(agent) as first, session(agent) as second:
        assert first.subscribe(80, Mode.MIRROR).error is None
        assert second.subscribe(80, Mode.MIRROR).error is None
        # A captured port's clients reach the pod's app with nothing in between.
        assert redirects_port(pod.pod, 80) is not agent.captures_mirrors

        assert get(pod.client, pod.pod_ip, "/mirrored") == "pod says /mirrored"

        for s in (first, second):
            new = s.new_connection()
            assert new.mode is Mode.MIRROR
            assert new.port == 80
            assert new.client.host == pod.client_ip
            assert new.local.port == 80
            request = s.read_until(new.connection_id, lambda data: b"\r\n\r\n" in data)
            assert request.startswith(b"GET /mirrored HTTP/1.0\r\n")
            closed = s.expect(lambda m: isinstance(m, to_session.ConnectionClosed))
            assert _about(closed, new.connection_id)
            # Replies of mirroring sessions go nowhere, and must not break anything.
            s.send(from_session.ConnectionWrite(new.connection_id, b"ignored"))
            s.sync()


def test_mirror_100_concurrent_connections(pod: Topology, mirroring_agent: Agent) -> None:
    count = 100
    with session(mirroring_agent) as s:
        assert s.subscribe(80, Mode.MIRROR).error is None
        result = pod.client.python(CONCURRENT_GETS, pod.pod_ip, "80", str(count), timeout=60)
        assert result.stdout.strip() == str(count), result.stderr
        paths = set()
        for _ in range(count):
            new = s.new_connection()
            request = s.read_until(new.connection_id, lambda data: b"\r\n\r\n" in data)
            paths.add(request.split()[1])
        assert paths == {f"/c{i}".encode() for i in range(count)}


def test_a_stuck_mirroring_session_never_stalls_the_pod_traffic(
    pod: Topology, mirroring_agent: Agent
) -> None:
    pod.pod.start_python(COUNTING_APP)
    size = 100 * 1024 * 1024  # more than the agent queues for one session
    # A bounded receive queue: the client stops reading from the socket while the test does not read.
    with session(mirroring_agent, max_queue=16) as s:
        assert s.subscribe(81, Mode.MIRROR).error is None
        # The session reads nothing while the client uploads: its websocket and queue fill up.
        client = pod.client.start_python(UPLOAD, pod.pod_ip, "81", str(size), ready=False)
        _, count = client.read_line(timeout=60).split()
        assert int(count) == size
        # The session then hears that its copy was dropped, instead of silently missing bytes.
        new = s.new_connection()
        warning = s.expect(lambda m: isinstance(m, to_session.Log), timeout=60)
        assert isinstance(warning, to_session.Log)
        assert f"connection {new.connection_id} dropped" in warning.message
        closed = s.expect(lambda m: isinstance(m, to_session.ConnectionClosed), timeout=60)
        assert _about(closed, new.connection_id)
        # It got a prefix of the upload, never all of it.
        copied = sum(
            len(m.data)
            for m in s.pending
            if isinstance(m, to_session.ConnectionRead) and _about(m, new.connection_id)
        )
        assert copied < size


def test_a_connection_the_pods_app_refuses_is_not_announced(pod: Topology, mirroring_agent: Agent) -> None:
    """Nothing listens on port 82: the client's attempt fails there, and no session hears of it; the next
    connection, to port 80, is the first one a session sees."""
    with session(mirroring_agent) as s:
        assert s.subscribe(82, Mode.MIRROR).error is None
        assert s.subscribe(80, Mode.MIRROR).error is None
        assert get(pod.client, pod.pod_ip, "/refused", port=82).startswith(("ERROR", "EMPTY"))
        assert get(pod.client, pod.pod_ip, "/accepted") == "pod says /accepted"
        new = s.new_connection()
        assert new.port == 80


# Connects, sends "hello", says so and holds the connection open until its stdin closes.
HELD_CONNECTION = r"""
import socket, sys
with socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=60) as s:
    s.sendall(b"hello")
    print("sent", flush=True)
    sys.stdin.readline()
"""


def test_unsubscribing_a_captured_port_ends_the_copies_of_its_open_connections(
    pod: Topology, agent: Agent
) -> None:
    pod.pod.start_python(COUNTING_APP)
    with session(agent) as s:
        assert s.subscribe(81, Mode.MIRROR).error is None
        client = pod.client.start_python(HELD_CONNECTION, pod.pod_ip, "81", ready=False)
        try:
            assert client.read_line() == "sent"
            new = s.new_connection()
            assert s.read_until(new.connection_id, lambda data: b"hello" in data) == b"hello"
            s.send(from_session.PortUnsubscribe(81))
            closed = s.expect(lambda m: isinstance(m, to_session.ConnectionClosed))
            assert isinstance(closed, to_session.ConnectionClosed)
            assert closed.connection_id == new.connection_id
            assert "no longer mirrored" in closed.reason
        finally:
            client.close_stdin()
            client.stop()


# --- steal -------------------------------------------------------------------------------------------------


def answer(s: Session, body: bytes) -> tuple[to_session.NewConnection, bytes]:
    """Serve one stolen HTTP/1.0 request with ``body``; returns the announcement and the request."""
    new = s.new_connection()
    request = s.read_until(new.connection_id, lambda data: b"\r\n\r\n" in data)
    response = b"HTTP/1.0 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
    s.send(from_session.ConnectionWrite(new.connection_id, response))
    s.send(from_session.ConnectionWrite(new.connection_id, b""))
    return new, request


def test_steal_the_session_answers_remote_and_in_pod_clients(pod: Topology, agent: Agent) -> None:
    with session(agent) as s:
        assert s.subscribe(80, Mode.STEAL).error is None

        client = start_get(pod.client, pod.pod_ip, "/stolen")
        new, request = answer(s, b"session says hi")
        assert new.mode is Mode.STEAL
        assert new.client.host == pod.client_ip
        assert request.startswith(b"GET /stolen HTTP/1.0")
        assert client.read_line() == "session says hi"
        # The client closes after reading: both sides are done.
        closing = s.expect(lambda m: isinstance(m, to_session.ConnectionClosed))
        assert _about(closing, new.connection_id)

        # A client inside the pod itself goes through the OUTPUT rule.
        in_pod = start_get(pod.pod, "127.0.0.1", "/local")
        new, request = answer(s, b"also stolen")
        assert request.startswith(b"GET /local HTTP/1.0")
        assert in_pod.read_line() == "also stolen"


def test_a_second_stealer_is_refused_naming_the_port(pod: Topology, agent: Agent) -> None:
    with session(agent) as first, session(agent) as second:
        assert first.subscribe(80, Mode.STEAL).error is None
        refused = second.subscribe(80, Mode.STEAL)
        assert refused.error is not None
        assert "80" in refused.error


def test_unsubscribe_gives_the_port_back_to_the_pod(pod: Topology, agent: Agent) -> None:
    with session(agent) as s:
        assert s.subscribe(80, Mode.STEAL).error is None
        s.send(from_session.PortUnsubscribe(80))
        s.sync()
        assert not redirects_port(pod.pod, 80)
        assert get(pod.client, pod.pod_ip, "/back") == "pod says /back"


def test_session_close_of_a_stolen_connection_closes_the_client(pod: Topology, agent: Agent) -> None:
    with session(agent) as s:
        assert s.subscribe(80, Mode.STEAL).error is None
        client = start_get(pod.client, pod.pod_ip, "/closed")
        new = s.new_connection()
        s.send(from_session.ConnectionClose(new.connection_id))
        assert ended_unanswered(client.read_line())


def test_session_disconnect_drops_its_subscriptions_and_connections(pod: Topology, agent: Agent) -> None:
    s = Session(agent)
    assert s.subscribe(80, Mode.STEAL).error is None
    client = start_get(pod.client, pod.pod_ip, "/pending")
    s.new_connection()
    s.close()
    # The stolen connection in flight is closed, the rule goes, and the pod serves again.
    assert ended_unanswered(client.read_line())
    assert wait_until(lambda: not redirects_port(pod.pod, 80))
    assert get(pod.client, pod.pod_ip, "/again") == "pod says /again"


def test_a_50_mb_stolen_upload_arrives_intact(pod: Topology, agent: Agent) -> None:
    size = 50 * 1024 * 1024
    with session(agent) as s:
        assert s.subscribe(80, Mode.STEAL).error is None
        client = pod.client.start_python(UPLOAD, pod.pod_ip, "80", str(size), ready=False)
        new = s.new_connection()
        digest = hashlib.sha256()
        received = 0
        while True:
            message = s.expect(lambda m: _about(m, new.connection_id), timeout=60)
            assert isinstance(message, to_session.ConnectionRead), message
            if not message.data:
                break
            digest.update(message.data)
            received += len(message.data)
        assert received == size
        s.send(from_session.ConnectionWrite(new.connection_id, digest.hexdigest().encode()))
        s.send(from_session.ConnectionWrite(new.connection_id, b""))
        sent_digest, echoed = client.read_line(timeout=60).split()
        assert sent_digest == echoed == digest.hexdigest()


# A stolen client that asks for a download, then reads nothing until a line comes on its stdin.
HELD_DOWNLOAD = r"""
import hashlib, socket, sys
with socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=60) as s:
    s.sendall(b"download\n")
    print("asked", flush=True)
    sys.stdin.readline()
    digest = hashlib.sha256()
    size = 0
    while chunk := s.recv(1 << 20):
        digest.update(chunk)
        size += len(chunk)
print(size, digest.hexdigest(), flush=True)
"""


def test_a_slow_client_holds_back_only_its_own_connection(pod: Topology, agent: Agent) -> None:
    chunk, chunks = os.urandom(1 << 20), 24
    with session(agent) as s:
        assert s.subscribe(80, Mode.STEAL).error is None
        slow = pod.client.start_python(HELD_DOWNLOAD, pod.pod_ip, "80")
        held = s.new_connection().connection_id
        assert s.read_until(held, lambda data: data.endswith(b"\n")) == b"download\n"
        for _ in range(chunks):
            s.send(from_session.ConnectionWrite(held, chunk))
        s.send(from_session.ConnectionWrite(held, b""))
        paused = s.expect(lambda m: isinstance(m, to_session.ConnectionWriteFlow))
        assert paused == to_session.ConnectionWriteFlow(held, True)
        # The agent's loop for this session does not wait for the slow client: another one is served.
        client = start_get(pod.client, pod.pod_ip, "/other")
        new, request = answer(s, b"not held up")
        assert new.connection_id != held
        assert request.startswith(b"GET /other ")
        assert client.read_line() == "not held up"
        slow.write_line("read now")
        resumed = s.expect(lambda m: isinstance(m, to_session.ConnectionWriteFlow))
        assert resumed == to_session.ConnectionWriteFlow(held, False)
        assert slow.read_line(timeout=60).split() == [
            str(chunks << 20),
            hashlib.sha256(chunk * chunks).hexdigest(),
        ]


# --- exit paths --------------------------------------------------------------------------------------------


def test_sigterm_removes_every_rule_and_exits_0(pod: Topology) -> None:
    with running_agent(pod.pod) as agent, session(agent) as s:
        assert s.subscribe(80, Mode.STEAL).error is None
        assert redirect_rules(pod.pod)
        status = agent.process.stop()
    assert status == 0
    assert redirect_rules(pod.pod) == []
    assert get(pod.client, pod.pod_ip, "/after") == "pod says /after"


def test_agent_sigkill_leaves_no_rules_and_the_pod_answers_again(pod: Topology) -> None:
    with running_agent(pod.pod) as agent:
        s = Session(agent)
        assert s.subscribe(80, Mode.STEAL).error is None
        assert redirects_port(pod.pod, 80)
        agent.process.kill()
        # The guard notices the death and removes the chains.
        assert wait_until(lambda: redirect_rules(pod.pod) == [])
        assert get(pod.client, pod.pod_ip, "/alive") == "pod says /alive"
        with pytest.raises(ConnectionClosed):
            s.next(timeout=DEFAULT_TIMEOUT)
        s.close()


def test_a_pid_target_works_like_its_namespace(pod: Topology, pod_app: Process) -> None:
    pid = f"pid/{pod_app.pid}"
    with running_agent_for(pid) as agent, session(agent) as s:
        assert s.subscribe(80, Mode.STEAL).error is None
        client = start_get(pod.client, pod.pod_ip, "/by-pid")
        answer(s, b"stolen by pid")
        assert client.read_line() == "stolen by pid"


def children_of(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdecimal():
            with suppress(OSError):
                stat = (entry / "stat").read_text()
                if int(stat[stat.rindex(")") + 2 :].split()[1]) == pid:
                    found.append(int(entry.name))
    return found


def test_rules_of_a_dead_agent_and_guard_are_removed_by_the_next_agent(pod: Topology) -> None:
    with running_agent(pod.pod) as dead:
        s = Session(dead)
        assert s.subscribe(80, Mode.STEAL).error is None
        # Kill the guard first, then the agent: nothing is left to clean up after them.
        guards = children_of(dead.process.pid)
        assert guards
        for pid in guards:
            os.kill(pid, signal.SIGKILL)
        dead.process.kill()
        s.close()
    assert redirects_port(pod.pod, 80)
    with running_agent(pod.pod) as agent:
        # Stale rules go before the new agent reports ready.
        assert not any(dead.agent_id in line for line in redirect_rules(pod.pod))
        assert any(agent.agent_id in line for line in redirect_rules(pod.pod))
    assert get(pod.client, pod.pod_ip, "/clean") == "pod says /clean"


def test_idle_timeout_exits_once_the_last_session_left(pod: Topology) -> None:
    with running_agent(pod.pod, "--idle-timeout", "0.5") as agent:
        with session(agent) as s:
            assert s.subscribe(80, Mode.MIRROR).error is None
        assert agent.process.wait(timeout=DEFAULT_TIMEOUT) == 0
    assert redirect_rules(pod.pod) == []


@pytest.mark.parametrize(
    ("target", "token", "expected"),
    [
        ("netns/pmd-test-does-not-exist", "t", "not found"),
        ("pid/notapid", "t", "invalid pid"),
        (None, "", "PYMIRRORD_AGENT_TOKEN is not set"),
    ],
)
def test_start_up_errors_are_clear_messages(
    pod_netns: Netns, target: str | None, token: str, expected: str
) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "pymirrord", "agent", "--target", target or pod_netns.target],
        env=child_env({TOKEN_ENV: token}),
        capture_output=True,
        text=True,
        timeout=DEFAULT_TIMEOUT,
        check=False,
    )
    assert result.returncode == 1
    assert result.stdout == ""
    assert expected in result.stderr
    assert "hint:" in result.stderr
    assert "Traceback" not in result.stderr
