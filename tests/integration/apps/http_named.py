"""Test app: an HTTP/1.1 server (h11, one thread per connection) that says who it is.

usage: http_named.py PORT NAME [--unseen-accept]
Every answer is JSON: the server's NAME, the request's method, target, body length and sha256, trailers,
``X-User`` header and the connection's peer (as the app sees it); ``Expect: 100-continue`` gets a ``100``.
Each request is also logged on stdout, once read whole: ``NAME got METHOD TARGET (LENGTH bytes)``.
``GET /bytes/N`` answers N bytes (chunked). A request with ``Upgrade: echo`` gets ``101``; after it, each
line the client sends comes back prefixed with NAME. ``--unseen-accept`` accepts below ``socket.accept``,
where pymirrord's layer does not see it (as an app whose server is written in C would).
"""

from __future__ import annotations

import hashlib
import json
import socket
import sys
import threading

import h11


def serve(sock: socket.socket, name: str) -> None:
    connection = h11.Connection(h11.SERVER)
    with sock:
        while True:
            request = None
            digest = hashlib.sha256()
            length = 0
            trailers: dict[str, str] = {}
            while True:
                event = connection.next_event()
                if event is h11.NEED_DATA:
                    if connection.they_are_waiting_for_100_continue:
                        sock.sendall(connection.send(h11.InformationalResponse(status_code=100, headers=[])))
                    data = sock.recv(1 << 20)
                    connection.receive_data(data)
                    if not data and connection.their_state is not h11.DONE:
                        return
                    continue
                if isinstance(event, h11.Request):
                    request = event
                elif isinstance(event, h11.Data):
                    digest.update(event.data)
                    length += len(event.data)
                elif isinstance(event, h11.EndOfMessage):
                    trailers = {k.decode(): v.decode() for k, v in event.headers}
                    break
                elif isinstance(event, (h11.ConnectionClosed, h11.PAUSED)):
                    return
            assert request is not None
            headers = {k.decode().lower(): v.decode("latin-1") for k, v in request.headers}
            target = request.target.decode()
            # One write per line: print's separate newline lets another thread's line land in between.
            sys.stdout.write(f"{name} got {request.method.decode()} {target} ({length} bytes)\n")
            sys.stdout.flush()
            if headers.get("upgrade") == "echo":
                sock.sendall(
                    connection.send(
                        h11.InformationalResponse(
                            status_code=101, headers=[("Upgrade", "echo"), ("Connection", "Upgrade")]
                        )
                    )
                )
                rest = connection.trailing_data[0]
                with sock.makefile("rwb") as stream:
                    pending = rest
                    while True:
                        if b"\n" not in pending:
                            more = stream.read1(65536)
                            if not more:
                                return
                            pending += more
                            continue
                        line, _, pending = pending.partition(b"\n")
                        stream.write(name.encode() + b":" + line + b"\n")
                        stream.flush()
            if target.startswith("/bytes/"):
                size = int(target.rsplit("/", 1)[1])
                sock.sendall(connection.send(h11.Response(status_code=200, headers=[("X-Served-By", name)])))
                block = b"x" * 65536
                sent = 0
                while sent < size:
                    piece = block[: min(len(block), size - sent)]
                    sock.sendall(connection.send(h11.Data(data=piece)))
                    sent += len(piece)
                sock.sendall(connection.send(h11.EndOfMessage()))
            else:
                body = json.dumps(
                    {
                        "server": name,
                        "method": request.method.decode(),
                        "target": target,
                        "length": length,
                        "sha256": digest.hexdigest(),
                        "trailers": trailers,
                        "user": headers.get("x-user"),
                        "peer": list(sock.getpeername()[:2]),
                    }
                ).encode()
                response = h11.Response(
                    status_code=200,
                    headers=[
                        ("Content-Type", "application/json"),
                        ("Content-Length", str(len(body))),
                        ("X-Served-By", name),
                    ],
                )
                sock.sendall(connection.send(response) + connection.send(h11.Data(data=body)))
                sock.sendall(connection.send(h11.EndOfMessage()))
            if connection.our_state is h11.MUST_CLOSE or connection.their_state is h11.MUST_CLOSE:
                return
            connection.start_next_cycle()


def main() -> None:
    port, name = int(sys.argv[1]), sys.argv[2]
    unseen = "--unseen-accept" in sys.argv[3:]
    listener = socket.create_server(("0.0.0.0", port))
    print(f"{name} listening", flush=True)
    while True:
        if unseen:
            descriptor, _ = listener._accept()  # type: ignore[attr-defined]
            sock = socket.socket(listener.family, listener.type, fileno=descriptor)
        else:
            sock, _ = listener.accept()
        threading.Thread(target=serve, args=(sock, name), daemon=True).start()


if __name__ == "__main__":
    main()
