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


class Counter:
    """Answers every request on every connection; counts them, and says when ``expected`` is reached."""

    def __init__(self, expected: int = 0) -> None:
        self.expected = expected
        self.requests = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while await reader.readuntil(b"\r\n\r\n"):
                self.requests += 1
                if self.requests == self.expected:
                    print(f"reached {self.expected}", flush=True)
                writer.write(RESPONSE)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def serve(self, port: int) -> asyncio.Server:
        server = await asyncio.start_server(self.handle, "0.0.0.0", port)
        print("http ready", flush=True)
        return server


async def until_stopped() -> None:
    """Returns on SIGINT or SIGTERM."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()


def write_count(counter: Counter, argv: list[str]) -> None:
    """The count into ``argv[0]`` (COUNT_FILE), if given."""
    if argv:
        with open(argv[0], "w") as out:
            out.write(str(counter.requests))


async def main() -> None:
    counter = Counter(int(sys.argv[3]) if len(sys.argv) > 3 else 0)
    async with await counter.serve(int(sys.argv[1])):
        await until_stopped()
    write_count(counter, sys.argv[2:])


if __name__ == "__main__":
    asyncio.run(main())
