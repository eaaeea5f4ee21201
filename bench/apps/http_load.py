"""Bench client: N keep-alive HTTP/1.1 requests over C connections, paced or as fast as answers come.

usage: http_load.py HOST PORT TOTAL CONNECTIONS [--rate R] [--warmup W]

Request n (0-based) carries ``X-Bench: mine`` when n is even and ``X-Bench: other`` otherwise (what
the HTTP filter benchmark's filter matches). With ``--rate`` the requests are sent at R requests/s in
all, each connection on its own fixed schedule, and a request's latency counts from when it was due,
so a late answer also charges the requests it held up; without it each connection sends its next
request when the last answer came. ``--warmup`` sends W untimed requests on each connection first.
Prints one JSON line: ``{"seconds": S, "results": [[mine, body or null, ms], ...]}``; a request
without an answer has a null body.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time

Result = tuple[bool, str | None, float]


def request(n: int) -> bytes:
    mine = b"mine" if n % 2 == 0 else b"other"
    return b"GET /r/%d HTTP/1.1\r\nHost: b\r\nX-Bench: %s\r\n\r\n" % (n, mine)


async def answer(reader: asyncio.StreamReader) -> str:
    head = await reader.readuntil(b"\r\n\r\n")
    length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
    return (await reader.readexactly(length)).decode()


async def worker(
    args: argparse.Namespace,
    index: int,
    stream: tuple[asyncio.StreamReader, asyncio.StreamWriter],
    start_at: float,
    results: list[Result],
) -> None:
    reader, writer = stream
    for k, n in enumerate(range(index, args.total, args.connections)):
        if args.rate:
            due = start_at + k * args.connections / args.rate
            now = time.perf_counter()
            if due > now:
                await asyncio.sleep(due - now)  # pacing an open-loop load, not synchronisation
                start = time.perf_counter()  # the timer's own lateness is not the server's
            else:
                start = due  # the previous answer came late: this request waited for it
        else:
            start = time.perf_counter()
        writer.write(request(n))
        try:
            body: str | None = await answer(reader)
        except (asyncio.IncompleteReadError, ConnectionError):
            body = None
        results.append((n % 2 == 0, body, (time.perf_counter() - start) * 1000))
    writer.close()


async def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("host")
    parser.add_argument("port", type=int)
    parser.add_argument("total", type=int)
    parser.add_argument("connections", type=int)
    parser.add_argument("--rate", type=float, default=0, help="requests/s in all; 0: as fast as answers come")
    parser.add_argument("--warmup", type=int, default=0, help="untimed requests per connection first")
    args = parser.parse_args()
    streams = [await asyncio.open_connection(args.host, args.port) for _ in range(args.connections)]
    for reader, writer in streams:
        for n in range(args.warmup):
            writer.write(request(n))
            await answer(reader)
    results: list[Result] = []
    start = time.perf_counter()
    # Paced connections start spread over one interval, so the load is even rather than in bursts.
    await asyncio.gather(
        *(
            worker(args, i, stream, start + (i / args.rate if args.rate else 0), results)
            for i, stream in enumerate(streams)
        )
    )
    print(json.dumps({"seconds": time.perf_counter() - start, "results": results}))


if __name__ == "__main__":
    asyncio.run(main())
