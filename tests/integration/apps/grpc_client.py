"""Test client: gRPC calls (grpcio, one channel: one HTTP/2 connection), all in flight at once.

usage: grpc_client.py HOST PORT CALLS_JSON
Each call: {"user": str, "size": N}: ``/pmd.Named/Who`` with ``x-user`` metadata and an N-byte request.
Prints one JSON line per call, in order: {"code", "answer" (the JSON reply), "trailing" (metadata)}.
"""

from __future__ import annotations

import json
import sys

import grpc


def main() -> None:
    host, port, calls = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
    with grpc.insecure_channel(f"{host}:{port}") as channel:
        who = channel.unary_unary("/pmd.Named/Who")
        pending = [
            who.future(b"x" * call.get("size", 0), metadata=(("x-user", call["user"]),), timeout=30)
            for call in calls
        ]
        for future in pending:
            try:
                answer = json.loads(future.result())
                code = future.code().name
            except grpc.RpcError as error:
                answer, code = None, error.code().name
            trailing = {key: value for key, value in (future.trailing_metadata() or ())}
            print(json.dumps({"code": code, "answer": answer, "trailing": trailing}), flush=True)


if __name__ == "__main__":
    main()
