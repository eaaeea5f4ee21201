"""Test app: a server that speaks h2c with prior knowledge and HTTP/1.1 on one port, and says who it is.

usage: h2c_named.py PORT NAME   (prints "ready" once listening)
Every answer is JSON: NAME, the protocol (``h2c`` or ``http/1.1``), the method, the path, the ``x-user``
header, and the request body's length. An h2c request with ``content-type: application/grpc`` is answered
the way a gRPC server does: the JSON as one length-prefixed message, then trailers ``grpc-status: 0`` and
``x-served-by: NAME``.
"""

from __future__ import annotations

import json
import socket
import struct
import sys
import threading

import h2.config
import h2.connection
import h2.events
import h11

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


def answer(name: str, protocol: str, method: str, path: str, user: str, length: int) -> bytes:
    fields = {"server": name, "protocol": protocol, "method": method, "path": path, "user": user}
    return json.dumps({**fields, "length": length}).encode()


def serve_h2(sock: socket.socket, name: str) -> None:
    connection = h2.connection.H2Connection(
        h2.config.H2Configuration(client_side=False, header_encoding="utf-8")
    )
    connection.initiate_connection()
    sock.sendall(connection.data_to_send())
    requests: dict[int, dict[str, str]] = {}
    lengths: dict[int, int] = {}
    while data := sock.recv(65536):
        for event in connection.receive_data(data):
            if isinstance(event, h2.events.RequestReceived):
                requests[event.stream_id] = dict(event.headers)  # type: ignore[arg-type]
                lengths[event.stream_id] = 0
            elif isinstance(event, h2.events.DataReceived):
                lengths[event.stream_id] += len(event.data)
                connection.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
            elif isinstance(event, h2.events.StreamEnded):
                headers = requests.pop(event.stream_id)
                grpc = headers.get("content-type", "").startswith("application/grpc")
                length = lengths.pop(event.stream_id) - (5 if grpc else 0)  # gRPC's message prefix
                body = answer(
                    name, "h2c", headers[":method"], headers[":path"], headers.get("x-user", ""), length
                )
                if grpc:
                    message = struct.pack(">BI", 0, len(body)) + body
                    connection.send_headers(
                        event.stream_id, [(":status", "200"), ("content-type", "application/grpc")]
                    )
                    connection.send_data(event.stream_id, message)
                    trailers = [("grpc-status", "0"), ("x-served-by", name)]
                    connection.send_headers(event.stream_id, trailers, end_stream=True)
                else:
                    connection.send_headers(
                        event.stream_id,
                        [(":status", "200"), ("content-length", str(len(body))), ("x-served-by", name)],
                    )
                    connection.send_data(event.stream_id, body, end_stream=True)
        sock.sendall(connection.data_to_send())


def serve_h1(sock: socket.socket, name: str) -> None:
    connection = h11.Connection(h11.SERVER)
    while True:
        event = connection.next_event()
        if event is h11.NEED_DATA:
            data = sock.recv(65536)
            connection.receive_data(data)
            if not data:
                return
            continue
        if isinstance(event, h11.Request):
            request, length = event, 0
        elif isinstance(event, h11.Data):
            length += len(event.data)
        elif isinstance(event, h11.EndOfMessage):
            user = dict(request.headers).get(b"x-user", b"").decode()
            body = answer(name, "http/1.1", request.method.decode(), request.target.decode(), user, length)
            headers = [("content-length", str(len(body))), ("x-served-by", name)]
            sock.sendall(connection.send(h11.Response(status_code=200, headers=headers)) or b"")
            sock.sendall(connection.send(h11.Data(data=body)) or b"")
            sock.sendall(connection.send(h11.EndOfMessage()) or b"")
            connection.start_next_cycle()
        elif isinstance(event, h11.ConnectionClosed):
            return


def serve(sock: socket.socket, name: str) -> None:
    with sock:
        try:
            start = b""
            while len(start) < len(PREFACE) and PREFACE.startswith(start):
                more = sock.recv(len(PREFACE) - len(start), socket.MSG_PEEK | socket.MSG_WAITALL)
                if not more or more == start:
                    break
                start = more
            (serve_h2 if start == PREFACE else serve_h1)(sock, name)
        except (OSError, h11.ProtocolError):
            pass


def main() -> None:
    port, name = int(sys.argv[1]), sys.argv[2]
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("0.0.0.0", port))
    listener.listen(64)
    print("ready", flush=True)
    while True:
        sock, _ = listener.accept()
        threading.Thread(target=serve, args=(sock, name), daemon=True).start()


if __name__ == "__main__":
    main()
