"""Test app: each connection's bytes are hashed until EOF; the hex sha256 goes back and to stdout.

usage: hash_server.py PORT NAME
"""

from __future__ import annotations

import hashlib
import socket
import sys
import threading


def serve(connection: socket.socket, name: str) -> None:
    digest = hashlib.sha256()
    size = 0
    with connection:
        while chunk := connection.recv(1 << 18):
            digest.update(chunk)
            size += len(chunk)
        print(
            f"{name} hashed {size} bytes from {connection.getpeername()[0]}: {digest.hexdigest()}", flush=True
        )
        connection.sendall(digest.hexdigest().encode())


def main() -> None:
    port, name = int(sys.argv[1]), sys.argv[2]
    listener = socket.create_server(("0.0.0.0", port))
    print(f"{name} listening on {listener.getsockname()[1]}", flush=True)
    while True:
        connection, _ = listener.accept()
        threading.Thread(target=serve, args=(connection, name), daemon=True).start()


if __name__ == "__main__":
    main()
