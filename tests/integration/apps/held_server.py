"""Test app: a server whose ``hold`` connections go unread until another connection says ``release``.

usage: held_server.py PORT
Each connection's first line says what it wants:
- ``hold``: nothing more is read until a ``release`` comes; then the rest is read to its end, and the byte
  count and sha256 go back (and to stdout).
- ``release``: held connections go on; answers ``released``.
- ``ping``: logs ``got ping`` and answers ``pong``.
- ``fetch PORT``: connects to 127.0.0.1:PORT (the pod's, through pymirrord), sends ``hello`` and answers
  with the line that came back.
- ``pull PORT``: connects to 127.0.0.1:PORT and reads nothing until a ``release`` comes; then reads to the
  end and answers with the byte count and sha256.
"""

from __future__ import annotations

import hashlib
import socket
import sys
import threading
from typing import Any

released = threading.Event()


def read_all(stream: Any) -> tuple[int, str]:
    digest = hashlib.sha256()
    size = 0
    while chunk := stream.read1(1 << 20):
        digest.update(chunk)
        size += len(chunk)
    return size, digest.hexdigest()


def serve(connection: socket.socket) -> None:
    with connection, connection.makefile("rb") as stream:
        command = stream.readline().decode().split()
        if command == ["hold"]:
            print("holding", flush=True)
            released.wait()
            size, digest = read_all(stream)
            print(f"held connection read {size} bytes: {digest}", flush=True)
            connection.sendall(f"{size} {digest}".encode())
        elif command == ["release"]:
            released.set()
            connection.sendall(b"released\n")
        elif command == ["ping"]:
            print("got ping", flush=True)
            connection.sendall(b"pong\n")
        elif len(command) == 2 and command[0] == "fetch":
            with socket.create_connection(("127.0.0.1", int(command[1])), timeout=20) as upstream:
                upstream.sendall(b"hello\n")
                answer = upstream.makefile("rb").readline()
            connection.sendall(answer)
        elif len(command) == 2 and command[0] == "pull":
            with socket.create_connection(("127.0.0.1", int(command[1])), timeout=20) as upstream:
                print("pulling", flush=True)
                released.wait()
                size, digest = read_all(upstream.makefile("rb"))
            print(f"pulled {size} bytes: {digest}", flush=True)
            connection.sendall(f"{size} {digest}\n".encode())


def main() -> None:
    listener = socket.create_server(("0.0.0.0", int(sys.argv[1])))
    print("held server listening", flush=True)
    while True:
        connection, _ = listener.accept()
        threading.Thread(target=serve, args=(connection,), daemon=True).start()


if __name__ == "__main__":
    main()
