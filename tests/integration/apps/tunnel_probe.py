"""Test app: a server that says, for each connection, what it reads and how the connection reached it.

usage: tunnel_probe.py PORT NAME
Prints ``NAME listening pid=PID`` once it listens. Each connection's first line is a command, and a TAG
that the app's lines repeat (to tell concurrent connections apart):

- ``digest TAG``: the rest is read to its end; answers ``SIZE SHA256`` (of the bytes after the command);
- ``sized TAG SIZE``: reads exactly ``SIZE`` more bytes and answers the same, with no end of stream needed;
- ``hold TAG``: reads nothing until a ``release`` comes, then goes on as ``digest``;
- ``release TAG``: held connections go on; answers ``released``;
- ``ping TAG``: answers ``pong``.

Once the command is read it prints ``NAME TAG accepted {json}``: the connection's ``peer`` and ``local``
addresses (``getpeername``/``getsockname``, what the layer reports), the kernel's own (``kernel_peer``,
``kernel_local``), and ``tunneled``: whether the socket is a tunnel the layer put in place of the accepted
connection (the kernel's local port is then not the listener's). A digest is printed as
``NAME TAG read SIZE bytes: SHA256``.
"""

from __future__ import annotations

import _socket
import hashlib
import io
import json
import os
import socket
import sys
import threading

released = threading.Event()
_printing = threading.Lock()


def say(text: str) -> None:
    """One line in one write: the lines of concurrent connections never mix."""
    with _printing:
        sys.stdout.write(text + "\n")
        sys.stdout.flush()


def read_all(stream: io.BufferedReader, size: int | None) -> tuple[int, str]:
    digest = hashlib.sha256()
    count = 0
    while size is None or count < size:
        want = 1 << 20 if size is None else min(1 << 20, size - count)
        chunk = stream.read1(want)
        if not chunk:
            break
        digest.update(chunk)
        count += len(chunk)
    return count, digest.hexdigest()


def describe(connection: socket.socket, listener_port: int) -> dict[str, object]:
    kernel_local = _socket.socket.getsockname(connection)
    return {
        "peer": list(connection.getpeername()),
        "local": list(connection.getsockname()),
        "kernel_peer": list(_socket.socket.getpeername(connection)),
        "kernel_local": list(kernel_local),
        "tunneled": kernel_local[1] != listener_port,
    }


def serve(connection: socket.socket, name: str, listener_port: int) -> None:
    with connection, connection.makefile("rb") as stream:
        command, tag, *args = stream.readline().decode().split()
        say(f"{name} {tag} accepted {json.dumps(describe(connection, listener_port))}")
        if command == "release":
            released.set()
            connection.sendall(b"released\n")
            return
        if command == "ping":
            connection.sendall(b"pong\n")
            return
        if command == "hold":
            say(f"{name} {tag} holding")
            released.wait()
        size, digest = read_all(stream, int(args[0]) if command == "sized" else None)
        say(f"{name} {tag} read {size} bytes: {digest}")
        connection.sendall(f"{size} {digest}\n".encode())


def main() -> None:
    port, name = int(sys.argv[1]), sys.argv[2]
    listener = socket.create_server(("0.0.0.0", port))
    # Where the listener really is: the layer binds a served port to another one on loopback.
    listener_port = _socket.socket.getsockname(listener)[1]
    say(f"{name} listening pid={os.getpid()}")
    try:
        while True:
            connection, _ = listener.accept()
            threading.Thread(target=serve, args=(connection, name, listener_port), daemon=True).start()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
