"""Test app: echoes each line back prefixed with NAME; optionally starts a child echo server too.

usage: echo_server.py PORT NAME [CHILD_PORT CHILD_NAME]
The child is a separate process (it shares the parent's session through the inherited environment).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading


def serve(connection: socket.socket, name: str) -> None:
    with connection, connection.makefile("rwb") as stream:
        for line in stream:
            stream.write(name.encode() + b":" + line)
            stream.flush()


def main() -> None:
    port, name = int(sys.argv[1]), sys.argv[2]
    listener = socket.create_server(("0.0.0.0", port))
    print(f"{name} listening pid={os.getpid()}", flush=True)
    if len(sys.argv) == 5:
        subprocess.Popen([sys.executable, __file__, sys.argv[3], sys.argv[4]])
    while True:
        connection, peer = listener.accept()
        print(f"{name} accepted {peer[0]}", flush=True)
        threading.Thread(target=serve, args=(connection, name), daemon=True).start()


if __name__ == "__main__":
    main()
