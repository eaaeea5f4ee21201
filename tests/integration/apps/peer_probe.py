"""Test app: for each connection, prints the peer the kernel reports (not the layer's view), then echoes.

usage: peer_probe.py PORT
"""

from __future__ import annotations

import _socket
import socket
import sys
import threading


def serve(connection: socket.socket) -> None:
    with connection:
        kernel_peer = _socket.socket.getpeername(connection)[0]
        print(f"accepted peer={connection.getpeername()[0]} kernel_peer={kernel_peer}", flush=True)
        while data := connection.recv(65536):
            connection.sendall(data)


def main() -> None:
    listener = socket.create_server(("0.0.0.0", int(sys.argv[1])))
    print("probe listening", flush=True)
    while True:
        connection, _ = listener.accept()
        threading.Thread(target=serve, args=(connection,), daemon=True).start()


if __name__ == "__main__":
    main()
