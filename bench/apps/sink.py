"""Bench app: counts the bytes of each connection until EOF, answers the count and prints ``received N``.

usage: sink.py PORT    (port 0: any; prints ``sink ready PORT`` once listening)
At each connection's end it prints ``received N at T``: the printed count tells a benchmark what a mirrored
copy received, since a copy's answers are dropped, and ``T`` (``time.monotonic()`` when the last byte came,
one clock for every network namespace) how far the copy trailed its client.

It reads into one buffer of its own (``asyncio.BufferedProtocol``) and allocates nothing per read. Built on
``asyncio.StreamReader`` it spent 0.15-0.19 s of CPU per GB in some runs and 0.25-0.30 in others, by how
its reads and glibc's heap happened to line up: the paths a benchmark compares were then measured
against apps of different speeds.
"""

from __future__ import annotations

import asyncio
import sys
import time

BUFFER = 1 << 18


class Sink(asyncio.BufferedProtocol):
    def __init__(self) -> None:
        self.buffer = memoryview(bytearray(BUFFER))
        self.total = 0
        self.ended: float | None = None
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def get_buffer(self, sizehint: int) -> memoryview:
        return self.buffer

    def buffer_updated(self, nbytes: int) -> None:
        self.total += nbytes

    def eof_received(self) -> bool:
        self.ended = time.monotonic()
        assert self.transport is not None
        self.transport.write(str(self.total).encode())
        self.transport.close()
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        ended = time.monotonic() if self.ended is None else self.ended  # a reset: no end of stream came
        print(f"received {self.total} at {ended:.6f}", flush=True)


async def serve(port: int) -> asyncio.Server:
    """The sink listening on ``port``; its ``ready`` line printed."""
    server = await asyncio.get_running_loop().create_server(Sink, "0.0.0.0", port)
    print("sink ready", server.sockets[0].getsockname()[1], flush=True)
    return server


async def main() -> None:
    async with await serve(int(sys.argv[1])) as server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main())
