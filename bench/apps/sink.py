"""Bench app: counts the bytes of each connection until EOF and answers the count.  usage: sink.py PORT"""

from __future__ import annotations

import asyncio
import sys


async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    total = 0
    while chunk := await reader.read(1 << 18):
        total += len(chunk)
    writer.write(str(total).encode())
    await writer.drain()
    writer.close()


async def main() -> None:
    server = await asyncio.start_server(handle, "0.0.0.0", int(sys.argv[1]), limit=1 << 18)
    print("sink ready", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main())
