"""Bench app: a TCP server that sends each client the number of bytes it asks for, then closes.

usage: source.py HOST PORT    (port 0: any; prints ``ready PORT`` once listening)
A client sends an 8-byte big-endian count; a client that sends nothing just connects and leaves.
"""

from __future__ import annotations

import socket
import struct
import sys
import threading
from collections.abc import Callable

CHUNK = b"\0" * (1 << 20)


def serve(connection: socket.socket) -> None:
    with connection:
        header = b""
        while len(header) < 8:
            data = connection.recv(8 - len(header))
            if not data:
                return
            header += data
        (remaining,) = struct.unpack("!Q", header)
        view = memoryview(CHUNK)
        while remaining > 0:
            remaining -= connection.send(view[: min(remaining, len(CHUNK))])


def serve_threads(handle: Callable[[socket.socket], None]) -> None:
    """Listens on HOST PORT (the command line's), prints ``ready PORT`` and serves each connection with
    ``handle`` on a thread of its own, forever."""
    listener = socket.create_server((sys.argv[1], int(sys.argv[2])), backlog=1024)
    print("ready", listener.getsockname()[1], flush=True)
    while True:
        connection, _ = listener.accept()
        threading.Thread(target=handle, args=(connection,), daemon=True).start()


def main() -> None:
    serve_threads(serve)


if __name__ == "__main__":
    main()
