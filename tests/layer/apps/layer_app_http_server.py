"""http.server on port 80: answers with the peer, server and local addresses it sees, as JSON."""

from __future__ import annotations

import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Handler(BaseHTTPRequestHandler):
    server: ThreadingHTTPServer

    def do_GET(self) -> None:
        body = json.dumps(
            {
                "peer": list(self.client_address[:2]),
                "server": list(self.server.server_address[:2]),
                "local": list(self.connection.getsockname()[:2]),
                "python": list(sys.version_info[:2]),
                "sys_path": sys.path,
            }
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        print(f"request from {self.client_address[0]}:{self.client_address[1]}", flush=True)


def main() -> None:
    server = ThreadingHTTPServer(("", 80), Handler)
    host, port = server.server_address[:2]
    print(f"serving on {host!s}:{port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
