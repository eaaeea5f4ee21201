"""Test app: downloads from one port and uploads to another on 127.0.0.1, then prints ``RESULT {json}``.

usage: transfer_probe.py SOURCE_PORT SINK_PORT MIB
The source sends bytes until it closes; the sink reads ``MIB`` MiB of random bytes to their end (the app
half-closes) and answers ``SIZE SHA256``. For each connection the result holds the size and sha256 of what
the app read (``download``) or sent (``upload``, with the sink's ``answer``), the addresses ``getsockname``
and ``getpeername`` report (``local``, ``peer``: the layer's view) and the kernel's own peer
(``kernel_peer``). It then stays until interrupted.
"""

from __future__ import annotations

import _socket
import contextlib
import hashlib
import json
import os
import socket
import sys
import threading

TIMEOUT = 30


def names(connection: socket.socket) -> dict[str, object]:
    return {
        "local": list(connection.getsockname()),
        "peer": list(connection.getpeername()),
        "kernel_peer": list(_socket.socket.getpeername(connection)),
    }


def download(port: int) -> dict[str, object]:
    digest = hashlib.sha256()
    size = 0
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as connection:
        result = names(connection)
        while chunk := connection.recv(1 << 20):
            digest.update(chunk)
            size += len(chunk)
    return {**result, "size": size, "sha256": digest.hexdigest()}


def upload(port: int, mib: int) -> dict[str, object]:
    payload = os.urandom(mib << 20)
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as connection:
        result = names(connection)
        view = memoryview(payload)
        for start in range(0, len(payload), 1 << 20):
            connection.sendall(view[start : start + (1 << 20)])
        connection.shutdown(socket.SHUT_WR)
        answer = b""
        while chunk := connection.recv(65536):
            answer += chunk
    return {
        **result,
        "size": len(payload),
        "sha256": hashlib.sha256(payload).hexdigest(),
        "answer": answer.decode(),
    }


def main() -> None:
    source_port, sink_port, mib = (int(arg) for arg in sys.argv[1:4])
    results = {"download": download(source_port), "upload": upload(sink_port, mib)}
    print("RESULT " + json.dumps(results), flush=True)
    # Stays until interrupted: the test looks at the connections' far ends while the session still runs.
    with contextlib.suppress(KeyboardInterrupt):
        threading.Event().wait()


if __name__ == "__main__":
    main()
