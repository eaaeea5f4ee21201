"""asyncio.start_server on port 80: a minimal HTTP answer with the peer and local addresses it sees."""

from __future__ import annotations

import asyncio
import json


async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.readuntil(b"\r\n\r\n")
    peer = writer.get_extra_info("peername")
    local = writer.get_extra_info("sockname")
    print(f"request from {peer[0]}:{peer[1]}", flush=True)
    body = json.dumps({"peer": list(peer[:2]), "local": list(local[:2])}).encode()
    writer.write(b"HTTP/1.0 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
    await writer.drain()
    writer.close()
    await writer.wait_closed()


async def main() -> None:
    server = await asyncio.start_server(handle, host="0.0.0.0", port=80)
    address = server.sockets[0].getsockname()
    print(f"serving on {address[0]}:{address[1]}", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main())
