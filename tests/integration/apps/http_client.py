"""Test client: sends HTTP/1.1 requests on one keep-alive connection and prints one JSON line per answer.

usage: http_client.py HOST PORT REQUESTS_JSON
Each request: {"method", "target", "headers": [[k, v]...], "body": str, "size": N (random body of N bytes,
sent chunked when "chunked"), "trailers": [[k, v]...], "expect": true (waits for 100 Continue)}.
Each answer line: {"status", "served_by", "json" (the body parsed when JSON), "length", "sent_sha256"}.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import sys

import h11


def receive(sock: socket.socket, connection: h11.Connection) -> h11.Event:
    while True:
        event = connection.next_event()
        if isinstance(event, h11.Event):
            return event
        connection.receive_data(sock.recv(1 << 20))


def main() -> None:
    host, port, requests = sys.argv[1], int(sys.argv[2]), json.loads(sys.argv[3])
    sock = socket.create_connection((host, port), timeout=60)
    connection = h11.Connection(h11.CLIENT)
    for spec in requests:
        headers = [("Host", host), *[tuple(h) for h in spec.get("headers", [])]]
        size = spec.get("size")
        body = os.urandom(size) if size is not None else spec.get("body", "").encode()
        chunked = spec.get("chunked", False)
        if chunked:
            headers.append(("Transfer-Encoding", "chunked"))
        elif body or spec.get("method", "GET") in ("POST", "PUT"):
            headers.append(("Content-Length", str(len(body))))
        if spec.get("expect"):
            headers.append(("Expect", "100-continue"))
        sock.sendall(
            connection.send(
                h11.Request(method=spec.get("method", "GET"), target=spec["target"], headers=headers)
            )
        )
        if spec.get("expect"):
            interim = receive(sock, connection)
            assert isinstance(interim, h11.InformationalResponse) and interim.status_code == 100, interim
        view = memoryview(body)
        for start in range(0, len(body), 1 << 20):
            sock.sendall(connection.send(h11.Data(data=bytes(view[start : start + (1 << 20)]))))
        trailers = [tuple(h) for h in spec.get("trailers", [])]
        sock.sendall(connection.send(h11.EndOfMessage(headers=trailers)))
        response = receive(sock, connection)
        while isinstance(response, h11.InformationalResponse):
            response = receive(sock, connection)
        assert isinstance(response, h11.Response), response
        data = b""
        while True:
            event = receive(sock, connection)
            if isinstance(event, h11.Data):
                data += event.data
            elif isinstance(event, h11.EndOfMessage):
                break
        served_by = dict((k.decode().lower(), v.decode()) for k, v in response.headers).get("x-served-by")
        try:
            parsed = json.loads(data)
        except ValueError:
            parsed = None
        print(
            json.dumps(
                {
                    "status": response.status_code,
                    "served_by": served_by,
                    "json": parsed,
                    "length": len(data),
                    "sent_sha256": hashlib.sha256(body).hexdigest(),
                }
            ),
            flush=True,
        )
        if connection.our_state is h11.MUST_CLOSE:
            break  # the server or the request ended the connection: requests after it are not sent
        connection.start_next_cycle()
    sock.close()


if __name__ == "__main__":
    main()
