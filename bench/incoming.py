"""Incoming traffic benchmark: one run, one table (run as root).

    .venv/bin/python bench/incoming.py [--megabytes 200] [--requests 2000] [--rate 1000] [--seconds 30]

- steal bulk throughput: a client in the "client" namespace uploads to a sink app, once served by the
  pod's namespace directly and once stolen by the same app running under ``pymirrord exec --steal``;
- added latency: 2,000 requests on one keep-alive HTTP connection, steal vs direct (p50, p99);
- mirror loss: requests/s for N seconds against the pod while a local copy mirrors them; requests
  the pod answered that never reached the local copy are lost;
- recovery: after the agent is SIGKILLed, how long until the pod's app answers again.
Goals from the issue: ratio >= 0.5, added p50 <= 1 ms, 0 lost.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from pymirrord.lab import Lab, WatchedProcess, in_namespace

APPS = Path(__file__).resolve().parent / "apps"
PYTHON = sys.executable

THROUGHPUT_CLIENT = """
import json, socket, sys, time
host, port, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
chunk = b"x" * (1 << 20)
with socket.create_connection((host, port), timeout=120) as connection:
    start = time.perf_counter()
    sent = 0
    while sent < size:
        connection.sendall(chunk)
        sent += len(chunk)
    connection.shutdown(socket.SHUT_WR)
    answer = b""
    while data := connection.recv(64):
        answer += data
    seconds = time.perf_counter() - start
print(json.dumps({"seconds": seconds, "sent": sent, "received": int(answer or 0)}))
"""

LATENCY_CLIENT = """
import json, socket, sys, time
host, port, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
request = b"GET / HTTP/1.1\\r\\nHost: bench\\r\\n\\r\\n"
expected = b"HTTP/1.1 200 OK\\r\\nContent-Length: 2\\r\\nContent-Type: text/plain\\r\\n\\r\\nok"
with socket.create_connection((host, port), timeout=30) as connection:
    connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    samples = []
    for index in range(count + 100):
        start = time.perf_counter()
        connection.sendall(request)
        answer = b""
        while len(answer) < len(expected):
            answer += connection.recv(4096)
        if index >= 100:  # the first requests warm up caches and the relay
            samples.append((time.perf_counter() - start) * 1000)
print(json.dumps(samples))
"""

LOAD_CLIENT = """
import asyncio, json, sys, time
host, port, rate, seconds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
CONNECTIONS = 20
request = b"GET / HTTP/1.1\\r\\nHost: bench\\r\\n\\r\\n"
async def worker(index, counts):
    reader, writer = await asyncio.open_connection(host, port)
    interval = CONNECTIONS / rate
    start = time.perf_counter() + index * interval / CONNECTIONS
    total = int(seconds * rate / CONNECTIONS)
    for n in range(total):
        delay = start + n * interval - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)  # pacing the open-loop load, not synchronisation
        writer.write(request)
        counts["sent"] += 1
        await reader.readuntil(b"ok")
        counts["answered"] += 1
    writer.close()
async def main():
    counts = {"sent": 0, "answered": 0}
    began = time.perf_counter()
    await asyncio.gather(*(worker(i, counts) for i in range(CONNECTIONS)))
    counts["seconds"] = time.perf_counter() - began
    print(json.dumps(counts))
asyncio.run(main())
"""

RECOVERY_CLIENT = """
import socket, sys, time
host, port = sys.argv[1], int(sys.argv[2])
start = time.perf_counter()
while True:
    try:
        with socket.create_connection((host, port), timeout=1) as connection:
            connection.sendall(b"GET / HTTP/1.1\\r\\nHost: bench\\r\\n\\r\\n")
            if connection.recv(100).startswith(b"HTTP/1.1 200"):
                break
    except OSError:
        pass
    if time.perf_counter() - start > 30:
        break
print((time.perf_counter() - start) * 1000)
"""


def client(lab: Lab, script: str, *args: str, timeout: float = 300) -> Any:
    argv = in_namespace(lab.client, [PYTHON, "-c", script, *args])
    result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=True)
    return json.loads(result.stdout)


def in_pod(lab: Lab, app: str, *args: str) -> WatchedProcess:
    process = WatchedProcess(in_namespace(lab.pod, [PYTHON, str(APPS / app), *args]))
    process.wait_for("ready")
    return process


def under_pymirrord(
    lab: Lab, app: str, *args: str, steal: bool, port: int, handover: bool = True
) -> WatchedProcess:
    flags = ["--steal"] if steal else []
    argv = [PYTHON, "-m", "pymirrord", "exec", *flags, "--target", lab.target, "--", PYTHON, str(APPS / app)]
    env = dict(os.environ, PYMIRRORD_HANDOVER="1" if handover else "0")
    process = WatchedProcess([*argv, *args], env=env)
    process.wait_for(f"pymirrord: port {port} {'stolen' if steal else 'mirrored'}")
    return process


def percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def agent_pid(lab: Lab) -> int:
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                argv = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if b"agent" in argv and lab.target.encode() in argv:
                return int(entry.name)
    raise RuntimeError("no agent process found")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--megabytes", type=int, default=200)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--rate", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=30)
    args = parser.parse_args()
    size = str(args.megabytes * 1024 * 1024)
    rows: list[tuple[str, str, str, str]] = []

    with Lab.create("pmd-bench") as lab:
        ip = lab.pod_ip
        # Throughput.
        with in_pod(lab, "sink.py", "5001"):
            direct = client(lab, THROUGHPUT_CLIENT, ip, "5001", size)
        with under_pymirrord(lab, "sink.py", "5002", steal=True, port=5002):
            stolen = client(lab, THROUGHPUT_CLIENT, ip, "5002", size)
        with under_pymirrord(lab, "sink.py", "5006", steal=True, port=5006, handover=False):
            relayed = client(lab, THROUGHPUT_CLIENT, ip, "5006", size)
        direct_rate = direct["sent"] / direct["seconds"] / 1e6
        for label, run, goal in (
            ("steal throughput / direct", stolen, ">= 0.5"),
            ("  relayed (PYMIRRORD_HANDOVER=0) / direct", relayed, ""),
        ):
            assert direct["received"] == run["received"] == int(size), (direct, run)
            rate = run["sent"] / run["seconds"] / 1e6
            rows.append((label, f"{rate:.0f} / {direct_rate:.0f} MB/s", f"{rate / direct_rate:.2f}", goal))

        # Latency.
        with in_pod(lab, "http_counter.py", "8001"):
            direct_ms = client(lab, LATENCY_CLIENT, ip, "8001", str(args.requests))
        with under_pymirrord(lab, "http_counter.py", "8002", steal=True, port=8002):
            steal_ms = client(lab, LATENCY_CLIENT, ip, "8002", str(args.requests))
        for label, fraction in (("p50", 0.5), ("p99", 0.99)):
            d, s = percentile(direct_ms, fraction), percentile(steal_ms, fraction)
            goal = "<= 1 ms" if label == "p50" else "-"
            rows.append(
                (
                    f"added {label} latency, steal vs direct",
                    f"{s:.3f} vs {d:.3f} ms",
                    f"{s - d:+.3f} ms",
                    goal,
                )
            )
        rows.append(
            (
                "  mean latency, steal vs direct",
                f"{statistics.fmean(steal_ms):.3f} vs {statistics.fmean(direct_ms):.3f} ms",
                "",
                "",
            )
        )

        # Mirror loss at a fixed rate.
        with tempfile.TemporaryDirectory() as scratch:
            count_file = os.path.join(scratch, "count")
            expected = str(int(args.seconds * args.rate))
            with in_pod(lab, "http_counter.py", "8003"):
                local = under_pymirrord(
                    lab, "http_counter.py", "8003", count_file, expected, steal=False, port=8003
                )
                try:
                    load = client(
                        lab,
                        LOAD_CLIENT,
                        ip,
                        "8003",
                        str(args.rate),
                        str(args.seconds),
                        timeout=args.seconds * 4 + 60,
                    )
                    # Copies still in flight when the client finishes are not lost: a bounded wait for them.
                    with contextlib.suppress(TimeoutError):
                        local.wait_for(f"reached {load['answered']}", timeout=15)
                finally:
                    local.interrupt()
            mirrored = int(Path(count_file).read_text())
        lost = load["answered"] - mirrored
        rows.append(
            (
                f"mirror: {args.rate} req/s for {args.seconds:g} s",
                f"{load['answered']} answered by the pod, {mirrored} mirrored",
                f"{lost} lost",
                "0 lost",
            )
        )

        # Recovery after an agent SIGKILL.
        with (
            in_pod(lab, "http_counter.py", "8004"),
            under_pymirrord(lab, "http_counter.py", "8004", steal=True, port=8004),
        ):
            os.kill(agent_pid(lab), signal.SIGKILL)
            recovery = float(
                subprocess.run(
                    in_namespace(lab.client, [PYTHON, "-c", RECOVERY_CLIENT, ip, "8004"]),
                    capture_output=True,
                    text=True,
                    check=True,
                    timeout=60,
                ).stdout
            )
        rows.append(("pod answers again after agent SIGKILL", f"{recovery:.0f} ms", "", "<= 2000 ms"))

    widths = [max(len(row[i]) for row in [("measure", "values", "result", "goal"), *rows]) for i in range(4)]
    header = ("measure", "values", "result", "goal")
    for row in [header, tuple("-" * w for w in widths), *rows]:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())


if __name__ == "__main__":
    main()
