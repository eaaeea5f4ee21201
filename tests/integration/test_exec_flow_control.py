"""``pymirrord exec`` on the relayed path: an app connection that stops reading holds up nothing else.

A client uploads many megabytes on a stolen connection the app deliberately leaves unread, and a server in
the pod sends many megabytes on an outgoing connection the app leaves unread too. While both are stuck, the
session must still serve everything else: another connection to the same port, another outgoing connection
through the pod, and the pod's own traffic on a port nobody subscribed. Once the app reads again, both
transfers arrive whole. The same holds for a filtered HTTP request's body; a mirrored copy the app does not
read is dropped instead, and the pod's traffic never notices.
"""

from __future__ import annotations

import hashlib
import json
import sys
from typing import Any

from exec_helpers import APPS, pymirrord_exec
from netns_helpers import Process, Topology

HELD_SERVER = str(APPS / "held_server.py")
STOLEN_PORT = "9100"
POD_PORT = "7010"
SOURCE_PORT = "7011"
UPLOAD_MIB = 48
MIRRORED_UPLOAD_MIB = 96
"""Past the 64 MiB a mirrored copy may lag behind (``pymirrord.flow.COPY_LAG_LIMIT``), with room to spare."""
STUCK_MIB = 12
"""The client has sent this much once the held connection's bytes pile up: far past the session's
high-water mark and the kernel's buffers on the app's side."""
PULL_STUCK_MIB = 2
"""The pod's source has sent this much of the download the app leaves unread. Through a tunnel the
source is held back as soon as the kernel's buffers on the way are full (a few MiB), so less than
``STUCK_MIB`` is all it gets to send."""

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
everything = hashlib.sha256(b"hold\\n" + payload).hexdigest()
print("done", size, hashlib.sha256(payload).hexdigest(), everything, answer.decode(), flush=True)
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


def read_to_stuck(process: Process, mib: int = STUCK_MIB) -> None:
    """Reads a sender's progress until it has sent ``mib`` MiB."""
    while (line := process.read_line(timeout=60)) != f"sent {mib}":
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
        read_to_stuck(source, PULL_STUCK_MIB)

        assert ask(topology, STOLEN_PORT, "ping") == "pong", "the same port, another connection"
        assert ask(topology, STOLEN_PORT, f"fetch {POD_PORT}") == "pod:hello", "the app's outgoing traffic"
        assert ask(topology, POD_PORT, "hello") == "pod:hello", "the pod's own port"

        assert ask(topology, STOLEN_PORT, "release") == "released"
        size, sent_digest, _, read_size, read_digest = read_to_done(upload)
        assert size == read_size == str(UPLOAD_MIB << 20)
        assert read_digest == sent_digest
        run.wait_for(f"held connection read {size} bytes: {sent_digest}")
        pulled = pull.read_line(timeout=120)
        assert pulled.split() == read_to_done(source), "the outgoing download arrived whole"


SEND_ALL = """
import socket, sys
with socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=60) as connection:
    connection.sendall(sys.argv[3].encode() + b"\\n")
    connection.shutdown(socket.SHUT_WR)
    answer = b""
    while chunk := connection.recv(65536):
        answer += chunk
print(answer.decode())
"""


def test_a_mirrored_copy_the_app_does_not_read_is_dropped_and_slows_nothing(topology: Topology) -> None:
    topology.pod.start(sys.executable, str(APPS / "hash_server.py"), STOLEN_PORT, "pod")
    app = [sys.executable, HELD_SERVER, STOLEN_PORT]
    with pymirrord_exec(topology.pod, app, handover=False) as run:
        run.wait_for(f"pymirrord: port {STOLEN_PORT} mirrored")
        upload = topology.client.start_python(UPLOAD, topology.pod_ip, STOLEN_PORT, str(MIRRORED_UPLOAD_MIB))
        # Not waiting for the app to say "holding": the upload may outrun the copy by 64 MiB before the
        # app has even accepted its connection, and the copy is then dropped before the app sees it.
        dropped = run.wait_for("mirrored connection", timeout=60)
        assert "dropped: the app fell more than 64 MiB behind" in dropped
        _, _, everything, answer = read_to_done(upload)
        assert answer == everything, "the pod's app got every byte of the upload"
        # Copies of other connections still reach the app.
        ping = topology.client.python(SEND_ALL, topology.pod_ip, STOLEN_PORT, "ping", timeout=30).stdout
        assert ping.strip() == hashlib.sha256(b"ping\n").hexdigest()
        run.wait_for("got ping")
        assert sum("mirrored connection" in line and "dropped" in line for line in run.seen) == 1


HTTP_PORT = "8080"
HTTP_UPLOAD = """
import hashlib, os, socket, sys
size = int(sys.argv[3]) << 20
payload = os.urandom(size)
print("connecting", flush=True)
with socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=120) as connection:
    head = "POST /hold HTTP/1.1\\r\\nHost: pod\\r\\nX-Flow: yes\\r\\nConnection: close\\r\\n"
    connection.sendall(f"{head}Content-Length: {size}\\r\\n\\r\\n".encode())
    view = memoryview(payload)
    for mib in range(size >> 20):
        connection.sendall(view[mib << 20:(mib + 1) << 20])
        print("sent", mib + 1, flush=True)
    answer = b""
    while chunk := connection.recv(65536):
        answer += chunk
body = answer.partition(b"\\r\\n\\r\\n")[2].decode()
print("done", size, hashlib.sha256(payload).hexdigest(), body, flush=True)
"""


def http_requests(topology: Topology, *specs: dict[str, Any]) -> list[dict[str, Any]]:
    """Sends the requests on one keep-alive connection; one answer (``http_client.py``'s JSON) each."""
    argv = [str(APPS / "http_client.py"), topology.pod_ip, HTTP_PORT, json.dumps(list(specs))]
    lines = topology.client.run(sys.executable, *argv, timeout=30).stdout.splitlines()
    return [json.loads(line) for line in lines]


def test_a_request_body_the_app_does_not_read_stalls_no_other_request(topology: Topology) -> None:
    topology.pod.start(sys.executable, str(APPS / "http_named.py"), HTTP_PORT, "pod")
    http_filter = {"header_filter": "^x-flow: yes$", "ports": [int(HTTP_PORT)]}
    config = {"feature": {"network": {"incoming": {"mode": "steal", "http_filter": http_filter}}}}
    app = [sys.executable, str(APPS / "held_http_server.py"), HTTP_PORT]
    with pymirrord_exec(topology.pod, app, config=config, handover=False) as run:
        run.wait_for(f"pymirrord: port {HTTP_PORT} stolen")
        upload = topology.client.start_python(HTTP_UPLOAD, topology.pod_ip, HTTP_PORT, str(UPLOAD_MIB))
        run.wait_for("holding")
        read_to_stuck(upload)

        mine, theirs = http_requests(
            topology, {"target": "/ping", "headers": [["X-Flow", "yes"]]}, {"target": "/other"}
        )
        assert (mine["status"], mine["served_by"]) == (200, "local"), "a matching request"
        assert (theirs["status"], theirs["served_by"]) == (200, "pod"), "the pod's own requests"

        (released,) = http_requests(topology, {"target": "/release", "headers": [["X-Flow", "yes"]]})
        assert released["served_by"] == "local"
        size, sent_digest, read_size, read_digest = read_to_done(upload)
        assert size == read_size == str(UPLOAD_MIB << 20)
        assert read_digest == sent_digest
        run.wait_for(f"held request read {size} bytes: {sent_digest}")
