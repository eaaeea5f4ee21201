"""Test service: answers every HTTP request, and every UDP datagram, with its NAME.

usage: named_service.py HOST TCP_PORT UDP_PORT NAME
Port 0 picks a free one. Prints one line once both sockets are bound: ``TCP_PORT UDP_PORT``.
HTTP answers carry ``NAME`` as the body; a datagram ``X`` is answered with ``NAME:X``.
"""

from __future__ import annotations

import http.server
import socket
import sys
import threading


def main() -> None:
    host, tcp_port, udp_port, name = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    body = name.encode()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    http.server.ThreadingHTTPServer.allow_reuse_address = True
    server = http.server.ThreadingHTTPServer((host, tcp_port), Handler)
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind((host, udp_port))

    def echo() -> None:
        while True:
            data, peer = udp.recvfrom(65535)
            udp.sendto(name.encode() + b":" + data, peer)

    threading.Thread(target=echo, daemon=True).start()
    print(server.server_address[1], udp.getsockname()[1], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
