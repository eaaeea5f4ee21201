"""Bench app: a minimal keep-alive HTTP/1.1 responder that counts requests.

usage: http_counter.py PORT [COUNT_FILE [EXPECTED]]
The count is written to COUNT_FILE on SIGINT/SIGTERM; "reached EXPECTED" is printed when it gets there.
Parsing is the bare minimum (GET without a body), so what the benchmark measures is the path, not the app.
"""

from __future__ import annotations

import asyncio
import signal
import sys

RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: text/plain\r\n\r\nok"
requests = [0]  # one cell shared by every connection's handler


EXPECTED = int(sys.argv[3]) if len(sys.argv) > 3 else 0


async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while await reader.readuntil(b"\r\n\r\n"):
            requests[0] += 1
            if requests[0] == EXPECTED:
                print(f"reached {EXPECTED}", flush=True)
            writer.write(RESPONSE)
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


async def main() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    server = await asyncio.start_server(handle, "0.0.0.0", int(sys.argv[1]))
    print("http ready", flush=True)
    async with server:
        await stop.wait()
    if len(sys.argv) > 2:
        with open(sys.argv[2], "w") as out:
            out.write(str(requests[0]))


if __name__ == "__main__":
    asyncio.run(main())
