"""Test client for ``tunnel_probe.py``: uploads random bytes on one connection and prints what came back.

usage: upload_client.py HOST PORT MIB MODE TAG
Sends the command line, then ``MIB`` MiB of random bytes. MODE ``digest``: then half-closes and reads the
answer to its end; ``sized``: says the size in the command and reads one answer line, never half-closing
(a Kubernetes port-forward cannot carry a half-close). Prints ``{"client": [ip, port], "size": N,
"sha256": HEX, "answer": TEXT}``.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import sys


def main() -> None:
    host, port, mib, mode, tag = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5]
    payload = os.urandom(mib << 20)
    command = f"digest {tag}\n" if mode == "digest" else f"sized {tag} {len(payload)}\n"
    with socket.create_connection((host, port), timeout=30) as connection:
        connection.sendall(command.encode())
        view = memoryview(payload)
        for start in range(0, len(payload), 1 << 20):
            connection.sendall(view[start : start + (1 << 20)])
        if mode == "digest":
            connection.shutdown(socket.SHUT_WR)
        answer = b""
        while not answer.endswith(b"\n") and (chunk := connection.recv(65536)):
            answer += chunk
        client = list(connection.getsockname())
    report = {"client": client, "size": len(payload), "sha256": hashlib.sha256(payload).hexdigest()}
    print(json.dumps({**report, "answer": answer.decode().strip()}), flush=True)


if __name__ == "__main__":
    main()
