"""Bench app: an asyncio keep-alive HTTP/1.1 server that answers ``NAME`` in ``X-Served-By`` and the body.

usage: http_named_fast.py PORT NAME   (prints "ready" once listening)
"""

from __future__ import annotations

import asyncio
import sys


async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, name: bytes) -> None:
    response = (
        b"HTTP/1.1 200 OK\r\nX-Served-By: " + name + b"\r\nContent-Length: %d\r\n\r\n" % len(name) + name
    )
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            if b"content-length:" in head.lower():
                length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
                await reader.readexactly(length)
            writer.write(response)
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


async def main() -> None:
    port, name = int(sys.argv[1]), sys.argv[2].encode()
    server = await asyncio.start_server(lambda r, w: serve(r, w, name), "0.0.0.0", port)
    print("ready", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main())
