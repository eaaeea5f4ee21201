"""The HTTP bench clients, C and Python, give the same account of the same load: one result per request,
the same requests marked as matching, every answer's body, and no answer for a server that stops."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"
sys.path.insert(0, str(BENCH))

import bench_runs  # noqa: E402 (bench/ is not a package: its modules import each other by name)


@contextmanager
def _server(answers: int) -> Iterator[int]:
    """A keep-alive HTTP server on a loopback port (yielded) that answers each request with its path and
    closes a connection after ``answers`` answers on it."""
    ready = threading.Event()
    port: list[int] = []
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            for _ in range(answers):
                head = await reader.readuntil(b"\r\n\r\n")
                path = head.split(b" ")[1]
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(path), path))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def main() -> None:
        server = await asyncio.start_server(serve, "127.0.0.1", 0)
        port.append(server.sockets[0].getsockname()[1])
        ready.set()
        async with server:
            await stop.wait()

    thread = threading.Thread(target=loop.run_until_complete, args=(main(),), daemon=True)
    thread.start()
    assert ready.wait(10)
    try:
        yield port[0]
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(10)
        loop.close()


def _run(client: list[str], port: int, *args: str) -> dict[str, object]:
    result = subprocess.run(
        [*client, "127.0.0.1", str(port), *args], capture_output=True, text=True, timeout=60, check=True
    )
    data: dict[str, object] = json.loads(result.stdout)
    return data


def _clients() -> dict[str, list[str]]:
    python = bench_runs.app("http_load.py")
    compiled = bench_runs.http_load_client()
    if compiled[-1].endswith(".py"):
        pytest.skip(f"no C compiler, or {bench_runs.HTTP_CLIENT_SWITCH}=python")
    return {"c": compiled, "python": python}


@pytest.mark.parametrize("extra", [[], ["--rate", "2000"], ["--warmup", "3"]], ids=["flat", "paced", "warm"])
def test_both_clients_report_the_same_requests_and_answers(extra: list[str]) -> None:
    clients = _clients()
    with _server(answers=1000) as port:
        runs = {name: _run(argv, port, "200", "7", *extra) for name, argv in clients.items()}
    for name, run in runs.items():
        results = run["results"]
        assert isinstance(results, list)
        seen = sorted((body, mine) for mine, body, _ms in results)
        assert seen == sorted((f"/r/{n}", n % 2 == 0) for n in range(200)), name
        assert all(ms >= 0 for _mine, _body, ms in results), name


def test_requests_a_closed_connection_cannot_carry_get_no_answer() -> None:
    """Each connection is closed after five answers: of 40 requests over 2 connections, 10 are answered."""
    for name, argv in _clients().items():
        with _server(answers=5) as port:
            results = _run(argv, port, "40", "2")["results"]
        assert isinstance(results, list)
        assert len(results) == 40, name
        assert sum(1 for _mine, body, _ms in results if body is not None) == 10, name


def test_the_switch_chooses_the_python_client(monkeypatch: pytest.MonkeyPatch) -> None:
    bench_runs.http_load_client.cache_clear()
    monkeypatch.setenv(bench_runs.HTTP_CLIENT_SWITCH, "python")
    try:
        assert bench_runs.http_load_client()[-1].endswith("http_load.py")
        assert bench_runs.http_load_client_name() == "apps/http_load.py"
    finally:
        bench_runs.http_load_client.cache_clear()
