"""``pymirrord exec`` on the relayed path: an app connection that stops reading holds up nothing else.

A client uploads many megabytes on a stolen connection the app deliberately leaves unread, and a server in
the pod sends many megabytes on an outgoing connection the app leaves unread too. While both are stuck, the
session must still serve everything else: another connection to the same port, another outgoing connection
through the pod, and the pod's own traffic on a port nobody subscribed. Once the app reads again, both
transfers arrive whole.
"""

from __future__ import annotations

import sys

from exec_helpers import APPS, pymirrord_exec
from netns_helpers import Process, Topology

HELD_SERVER = str(APPS / "held_server.py")
STOLEN_PORT = "9100"
POD_PORT = "7010"
SOURCE_PORT = "7011"
UPLOAD_MIB = 48
STUCK_MIB = 12
"""The client has sent this much once the held connection's bytes pile up: far past the session's
high-water mark and the kernel's buffers on the app's side."""

UPLOAD = """
import hashlib, os, socket, sys
size = int(sys.argv[3]) << 20
payload = os.urandom(size)
print("connecting", flush=True)
with socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=120) as connection:
    connection.sendall(b"hold\\n")
    view = memoryview(payload)
    for mib in range(size >> 20):
        connection.sendall(view[mib << 20:(mib + 1) << 20])
        print("sent", mib + 1, flush=True)
    connection.shutdown(socket.SHUT_WR)
    answer = b""
    while chunk := connection.recv(65536):
        answer += chunk
print("done", size, hashlib.sha256(payload).hexdigest(), answer.decode(), flush=True)
"""

SOURCE = """
import hashlib, os, socket, sys
listener = socket.create_server(("127.0.0.1", int(sys.argv[1])))
print("source listening", flush=True)
connection, _ = listener.accept()
size = int(sys.argv[2]) << 20
payload = os.urandom(size)
view = memoryview(payload)
with connection:
    for mib in range(size >> 20):
        connection.sendall(view[mib << 20:(mib + 1) << 20])
        print("sent", mib + 1, flush=True)
print("done", size, hashlib.sha256(payload).hexdigest(), flush=True)
"""

ASK = """
import socket, sys
with socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=60) as connection:
    connection.sendall(sys.argv[3].encode() + b"\\n")
    print(connection.makefile().readline().strip())
"""


def ask(topology: Topology, port: str, line: str) -> str:
    return topology.client.python(ASK, topology.pod_ip, port, line, timeout=30).stdout.strip()


def read_to_stuck(process: Process) -> None:
    """Reads a sender's progress until it has sent ``STUCK_MIB``."""
    while (line := process.read_line(timeout=60)) != f"sent {STUCK_MIB}":
        assert line.startswith("sent "), line


def read_to_done(process: Process) -> list[str]:
    while (line := process.read_line(timeout=120)).startswith("sent "):
        pass
    assert line.startswith("done "), line
    return line.split()[1:]


def test_connections_the_app_does_not_read_stall_nothing_else(topology: Topology) -> None:
    topology.pod.start(sys.executable, str(APPS / "echo_server.py"), POD_PORT, "pod")
    source = topology.pod.start_python(SOURCE, SOURCE_PORT, str(UPLOAD_MIB))
    app = [sys.executable, HELD_SERVER, STOLEN_PORT]
    with pymirrord_exec(topology.pod, app, steal=True, handover=False) as run:
        run.wait_for(f"pymirrord: port {STOLEN_PORT} stolen")
        upload = topology.client.start_python(UPLOAD, topology.pod_ip, STOLEN_PORT, str(UPLOAD_MIB))
        run.wait_for("holding")
        read_to_stuck(upload)
        pull = topology.client.start_python(
            ASK, topology.pod_ip, STOLEN_PORT, f"pull {SOURCE_PORT}", ready=False
        )
        run.wait_for("pulling")
        read_to_stuck(source)

        assert ask(topology, STOLEN_PORT, "ping") == "pong", "the same port, another connection"
        assert ask(topology, STOLEN_PORT, f"fetch {POD_PORT}") == "pod:hello", "the app's outgoing traffic"
        assert ask(topology, POD_PORT, "hello") == "pod:hello", "the pod's own port"

        assert ask(topology, STOLEN_PORT, "release") == "released"
        size, sent_digest, read_size, read_digest = read_to_done(upload)
        assert size == read_size == str(UPLOAD_MIB << 20)
        assert read_digest == sent_digest
        run.wait_for(f"held connection read {size} bytes: {sent_digest}")
        pulled = pull.read_line(timeout=120)
        assert pulled.split() == read_to_done(source), "the outgoing download arrived whole"
