"""Test app: an HTTP/1.1 server whose ``POST /hold`` bodies go unread until a ``GET /release`` comes.

usage: held_http_server.py PORT
- ``POST /hold``: logs ``holding``, reads nothing more until released, then reads the body and answers with
  its byte count and sha256 (and logs them).
- ``GET /release``: held requests go on; answers ``released``.
- anything else: answers ``pong``.
Every answer carries ``X-Served-By: local``.
"""

from __future__ import annotations

import hashlib
import http.server
import sys
import threading

released = threading.Event()


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        if self.path != "/hold":
            self.answer(b"pong")
            return
        print("holding", flush=True)
        released.wait()
        left = int(self.headers["Content-Length"])
        digest = hashlib.sha256()
        while left:
            chunk = self.rfile.read(min(left, 1 << 20))
            if not chunk:
                break
            digest.update(chunk)
            left -= len(chunk)
        size = int(self.headers["Content-Length"]) - left
        print(f"held request read {size} bytes: {digest.hexdigest()}", flush=True)
        self.answer(f"{size} {digest.hexdigest()}".encode())

    def do_GET(self) -> None:
        if self.path == "/release":
            released.set()
            self.answer(b"released")
        else:
            self.answer(b"pong")

    def answer(self, body: bytes) -> None:
        self.send_response(200)
        self.send_header("X-Served-By", "local")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


def main() -> None:
    server = http.server.ThreadingHTTPServer(("0.0.0.0", int(sys.argv[1])), Handler)
    print("held http server listening", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
