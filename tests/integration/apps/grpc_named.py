"""Test app: a gRPC server (grpcio) whose one method says who answered, as a pod's gRPC service would.

usage: grpc_named.py PORT NAME   (prints "ready" once listening)
``/pmd.Named/Who`` takes any bytes and answers JSON: NAME, the protocol (``h2c``), the method, the path,
the ``x-user`` metadata and the request's length; the trailing metadata carries ``x-served-by: NAME``.
No protobuf: messages are raw bytes.
"""

from __future__ import annotations

import json
import sys
import threading
from concurrent import futures
from typing import Any

import grpc


def main() -> None:
    port, name = int(sys.argv[1]), sys.argv[2]

    def who(request: bytes, context: Any) -> bytes:
        metadata = dict(context.invocation_metadata())
        context.set_trailing_metadata((("x-served-by", name),))
        fields = {"server": name, "protocol": "h2c", "method": "POST", "path": "/pmd.Named/Who"}
        return json.dumps({**fields, "user": metadata.get("x-user", ""), "length": len(request)}).encode()

    handler = grpc.method_handlers_generic_handler(
        "pmd.Named", {"Who": grpc.unary_unary_rpc_method_handler(who)}
    )
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
    server.add_generic_rpc_handlers((handler,))
    server.add_insecure_port(f"0.0.0.0:{port}")
    server.start()
    print("ready", flush=True)
    threading.Event().wait()


if __name__ == "__main__":
    main()
