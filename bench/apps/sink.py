"""Bench app: counts the bytes of each connection until EOF, answers the count and prints ``received N``.

usage: sink.py PORT    (port 0: any; prints ``sink ready PORT`` once listening)
The printed count tells a benchmark what a mirrored copy received, since a copy's answers are dropped.
"""

from __future__ import annotations

import asyncio
import sys

LIMIT = 1 << 18


async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    total = 0
    try:
        while chunk := await reader.read(LIMIT):
            total += len(chunk)
        writer.write(str(total).encode())
        await writer.drain()
    except ConnectionError:
        pass
    finally:
        print(f"received {total}", flush=True)
        writer.close()


async def serve(port: int) -> asyncio.Server:
    """The sink listening on ``port``; its ``ready`` line printed."""
    server = await asyncio.start_server(handle, "0.0.0.0", port, limit=LIMIT)
    print("sink ready", server.sockets[0].getsockname()[1], flush=True)
    return server


async def main() -> None:
    async with await serve(int(sys.argv[1])) as server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main())
