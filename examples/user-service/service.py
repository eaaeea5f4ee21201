"""user-service: a small service that stores registered users, as in the mission document's story.

    GET  /users         the users as JSON
    POST /user          add a user from a JSON body {"Name": ..., "Last": ...}
    GET  /index.html    the users as a small HTML page

Standard library only, so it runs anywhere a Python runs (the demo starts one copy inside a network
namespace standing in for the pod, and one on this machine under ``pymirrord exec``).
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

_users: list[dict[str, Any]] = []
_lock = threading.Lock()


class UserHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, like the Flask service it stands in for

    def do_GET(self) -> None:
        with _lock:
            users = list(_users)
        if self.path == "/users":
            self._send(200, "application/json", json.dumps(users))
        elif self.path == "/index.html":
            listing = json.dumps(users)
            body = f"<html> <head>USERS</head><body><h1> MetalBear Users</h1><p>{listing}</p></body></html>"
            self._send(200, "text/html", body)
        else:
            self._send(404, "text/plain", "not found\n")

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        try:
            user = json.loads(self.rfile.read(length) or b"null")
        except ValueError:
            user = None
        if self.path != "/user" or not isinstance(user, dict):
            self._send(400, "text/plain", "expected POST /user with a JSON object\n")
            return
        with _lock:
            _users.append(user)
        self._send(200, "application/json", json.dumps(user))

    def _send(self, status: int, content_type: str, body: str) -> None:
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        sys.stderr.write(f"{self.client_address[0]} - - [{self.log_date_time_string()}] {format % args}\n")
        sys.stderr.flush()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=80)
    parser.add_argument("--host", default="0.0.0.0")
    parser.add_argument(
        "--seed", action="append", default=[], metavar="NAME:LAST", help="a user to start with"
    )
    args = parser.parse_args()
    for seed in args.seed:
        name, _, last = seed.partition(":")
        _users.append({"Last": last, "Name": name})
    server = ThreadingHTTPServer((args.host, args.port), UserHandler)
    print(f" * Running on http://{args.host}:{server.server_port}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
