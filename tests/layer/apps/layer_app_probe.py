"""Binds and listens on the port given as the first argument (0: any), serves one HTTP/1.0 request,
and reports what it saw: its address, whether the layer's hooks are in place, which layer modules
are loaded, and where ``server``, ``agent`` and ``config`` were imported from (when importable)."""

from __future__ import annotations

import _socket
import importlib
import json
import socket
import sys


def main() -> None:
    port = int(sys.argv[1])
    origins = {}
    for name in ("server", "agent", "config"):
        try:
            origins[name] = importlib.import_module(name).__file__
        except ImportError:
            origins[name] = None
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", port))
    listener.listen()
    report = {
        "address": list(listener.getsockname()),
        "hooked": socket.socket.bind is not _socket.socket.bind,
        "layer_modules": sorted(name for name in sys.modules if name.startswith("pymirrord")),
        "origins": origins,
    }
    print(json.dumps(report), flush=True)
    conn, _peer = listener.accept()
    with conn:
        conn.recv(65536)
        conn.sendall(b"HTTP/1.0 200 OK\r\nContent-Length: 5\r\n\r\nhello")
    listener.close()


if __name__ == "__main__":
    main()
