"""HTTP filter benchmark: one run, one table (run as root).

    .venv/bin/python bench/http_filter.py [--requests 10000] [--connections 50]

N requests over C keep-alive connections from the client namespace, every other one carrying the header
the filter matches (``X-Bench: mine``). Once straight to the pod's app, once with the same app running
locally under ``pymirrord exec`` with ``header_filter: ^x-bench: mine$`` (steal). Every answer names who
served it: a matching request answered by the pod (or the reverse) is misrouted, one without an answer lost.
Goals from the issue: 0 misrouted, 0 lost, added p50 <= 1 ms for non-matching requests.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from pymirrord.lab import Lab, WatchedProcess, in_namespace

PYTHON = sys.executable
APPS = Path(__file__).resolve().parent / "apps"

CLIENT = r"""
import asyncio, json, sys, time
host, port, total, connections = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
results = []

async def worker(index):
    reader, writer = await asyncio.open_connection(host, port)
    for n in range(index, total, connections):
        mine = n % 2 == 0
        extra = b"X-Bench: mine\r\n" if mine else b"X-Bench: other\r\n"
        start = time.perf_counter()
        writer.write(b"GET /r/%d HTTP/1.1\r\nHost: b\r\n" % n + extra + b"\r\n")
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, ConnectionError):
            results.append((mine, None, 0.0))
            continue
        length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
        body = await reader.readexactly(length)
        results.append((mine, body.decode(), (time.perf_counter() - start) * 1000))
    writer.close()

async def main():
    start = time.perf_counter()
    await asyncio.gather(*(worker(i) for i in range(connections)))
    print(json.dumps({"seconds": time.perf_counter() - start, "results": results}))

asyncio.run(main())
"""


def run_client(lab: Lab, port: int, total: int, connections: int) -> dict[str, Any]:
    argv = in_namespace(
        lab.client, [PYTHON, "-c", CLIENT, lab.pod_ip, str(port), str(total), str(connections)]
    )
    result = subprocess.run(argv, capture_output=True, text=True, timeout=600, check=True)
    data: dict[str, Any] = json.loads(result.stdout)
    return data


def percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] if ordered else float("nan")


def latencies(run: dict[str, Any], mine: bool) -> list[float]:
    return [ms for is_mine, who, ms in run["results"] if is_mine == mine and who is not None]


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--requests", type=int, default=10_000)
    parser.add_argument("--connections", type=int, default=50)
    args = parser.parse_args()
    config = {
        "feature": {
            "network": {"incoming": {"mode": "steal", "http_filter": {"header_filter": "^x-bench: mine$"}}}
        }
    }
    with Lab.create("pmd-bench") as lab, tempfile.TemporaryDirectory() as workdir:
        config_path = os.path.join(workdir, "mirrord.json")
        Path(config_path).write_text(json.dumps(config))
        pod = WatchedProcess(in_namespace(lab.pod, [PYTHON, str(APPS / "http_named_fast.py"), "80", "pod"]))
        with pod:
            pod.wait_for("ready")
            direct = run_client(lab, 80, args.requests, args.connections)
            argv = [PYTHON, "-m", "pymirrord", "exec", "-f", config_path, "--target", lab.target, "--"]
            local = WatchedProcess([*argv, PYTHON, str(APPS / "http_named_fast.py"), "80", "local"])
            with local:
                local.wait_for("pymirrord: port 80 stolen")
                filtered = run_client(lab, 80, args.requests, args.connections)
                local.interrupt()
            pod.signal(15)

    results = filtered["results"]
    lost = sum(1 for _, who, _ in results if who is None) + (args.requests - len(results))
    misrouted = sum(1 for mine, who, _ in results if who is not None and who != ("local" if mine else "pod"))
    rows = [
        ("requests / keep-alive connections", f"{args.requests} / {args.connections}", ""),
        ("misrouted", str(misrouted), "goal 0"),
        ("lost", str(lost), "goal 0"),
    ]
    base = latencies(direct, False) + latencies(direct, True)
    for mine, label in ((True, "matching (local app)"), (False, "non-matching (pod)")):
        through = latencies(filtered, mine)
        for name, fraction in (("p50", 0.5), ("p99", 0.99)):
            added = percentile(through, fraction) - percentile(base, fraction)
            goal = "goal <= 1 ms" if (not mine and name == "p50") else ""
            pair = f"{percentile(through, fraction):.2f} vs {percentile(base, fraction):.2f}"
            rows.append((f"added {name} latency, {label}", f"{added:+.2f} ms ({pair})", goal))
    rows.append(("requests/s through the filter", f"{len(results) / filtered['seconds']:.0f}", ""))
    rows.append(("requests/s direct to the pod", f"{len(direct['results']) / direct['seconds']:.0f}", ""))
    width = max(len(r[0]) for r in rows)
    value_width = max(len(r[1]) for r in rows)
    print(f"{'measure':<{width}}  {'value':<{value_width}}  goal")
    for label, value, goal in rows:
        print(f"{label:<{width}}  {value:<{value_width}}  {goal}")


if __name__ == "__main__":
    main()
