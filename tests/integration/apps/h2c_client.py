"""Test client: sends several requests as interleaved streams on one h2c (prior knowledge) connection.

usage: h2c_client.py HOST PORT SPECS_JSON
SPECS_JSON is a list of {"method", "path", "user", "size"}. Every stream's headers go out first, then the
bodies in small pieces, round robin, so the streams are interleaved on the wire. Prints one JSON line per
stream, in the order of SPECS: the answer's JSON, plus its status.
"""

from __future__ import annotations

import json
import socket
import sys

import h2.config
import h2.connection
import h2.events


def main() -> None:
    host, port, specs = sys.argv[1], int(sys.argv[2]), json.loads(sys.argv[3])
    sock = socket.create_connection((host, port), timeout=30)
    connection = h2.connection.H2Connection(
        h2.config.H2Configuration(client_side=True, header_encoding="utf-8")
    )
    connection.initiate_connection()
    streams: list[int] = []
    for spec in specs:
        stream = connection.get_next_available_stream_id()
        streams.append(stream)
        headers = [
            (":method", spec["method"]),
            (":path", spec["path"]),
            (":scheme", "http"),
            (":authority", "h2c.test"),
        ]
        if spec.get("user"):
            headers.append(("x-user", spec["user"]))
        connection.send_headers(stream, headers, end_stream=not spec.get("size"))
    sock.sendall(connection.data_to_send())
    remaining = {stream: spec.get("size", 0) for stream, spec in zip(streams, specs, strict=True)}
    bodies: dict[int, bytes] = {stream: b"" for stream in streams}
    statuses: dict[int, str] = {}
    done: set[int] = set()
    while len(done) < len(streams):
        for stream in streams:
            left = remaining[stream]
            if left:
                piece = min(left, 1000, connection.local_flow_control_window(stream))
                if piece > 0:
                    remaining[stream] -= piece
                    connection.send_data(stream, b"x" * piece, end_stream=remaining[stream] == 0)
        sock.sendall(connection.data_to_send())
        if any(remaining.values()) and all(
            connection.local_flow_control_window(s) > 0 for s, left in remaining.items() if left
        ):
            continue
        data = sock.recv(65536)
        if not data:
            break
        for event in connection.receive_data(data):
            if isinstance(event, h2.events.ResponseReceived):
                status = next((v for k, v in event.headers or () if k in (b":status", ":status")), b"")
                statuses[event.stream_id] = status.decode() if isinstance(status, bytes) else str(status)
            elif isinstance(event, h2.events.DataReceived):
                bodies[event.stream_id] += event.data
                connection.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
            elif isinstance(event, h2.events.StreamEnded):
                done.add(event.stream_id)
            elif isinstance(event, h2.events.StreamReset):
                done.add(event.stream_id)
                statuses[event.stream_id] = f"reset {event.error_code}"
        sock.sendall(connection.data_to_send())
    for stream in streams:
        answer = json.loads(bodies[stream]) if bodies[stream] else {}
        print(json.dumps({"status": statuses.get(stream), **answer}), flush=True)


if __name__ == "__main__":
    main()
