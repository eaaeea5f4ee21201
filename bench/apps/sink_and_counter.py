"""Bench app: ``sink.py`` and ``http_counter.py`` in one process, so one ``pymirrord exec`` (one agent
start) serves a benchmark's throughput, latency, loss and recovery phases.

usage: sink_and_counter.py SINK_PORT HTTP_PORT [COUNT_FILE [EXPECTED]]   (prints "all ready" once both listen)
"""

from __future__ import annotations

import asyncio
import sys

from http_counter import Counter, until_stopped, write_count
from sink import serve


async def main() -> None:
    counter = Counter(int(sys.argv[4]) if len(sys.argv) > 4 else 0)
    async with await serve(int(sys.argv[1])), await counter.serve(int(sys.argv[2])):
        print("all ready", flush=True)
        await until_stopped()
    write_count(counter, sys.argv[3:])


if __name__ == "__main__":
    asyncio.run(main())
