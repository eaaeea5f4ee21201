"""HTTP filter benchmark: one run, one table (run as root).

    .venv/bin/python bench/http_filter.py [--requests 10000] [--connections 50] [--rate 5000]

N requests over C keep-alive connections from the client namespace, every other one carrying the header
the filter matches (``X-Bench: mine``). Once straight to the pod's app, once with the same app running
locally under ``pymirrord exec`` with ``header_filter: ^x-bench: mine$`` (steal). Every answer names who
served it: a matching request answered by the pod (or the reverse) is misrouted, one without an answer lost.
Goals from the issue: 0 misrouted, 0 lost, added p50 <= 1 ms for non-matching requests.

Each side gets the same phases, after a warm-up of ``--warmup`` requests:

- paced: the N requests are sent at ``--rate`` requests/s in all (each connection on its own fixed
  schedule), and a request's latency counts from when it was due, so a late answer also charges the
  requests it delayed. This is the latency pymirrord adds at a steady load both sides can carry, and the
  row the goal applies to;
- flat out: the N requests as fast as the client can send them. Every process then competes for the
  machine's cores, so these latencies are mostly queueing (by Little's law their mean is C / throughput);
  the run shows throughput, and the CPU pymirrord's processes spent per request in it;
- one at a time: ``--sequential`` requests over one connection, the latency added when nothing waits.
"""

from __future__ import annotations

import argparse
import contextlib
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
rate = float(sys.argv[5])  # requests/s in all; 0: as fast as answers come
results = []

async def worker(index, reader, writer, start_at):
    for k, n in enumerate(range(index, total, connections)):
        mine = n % 2 == 0
        extra = b"X-Bench: mine\r\n" if mine else b"X-Bench: other\r\n"
        if rate:
            due = start_at + k * connections / rate
            now = time.perf_counter()
            if due > now:
                await asyncio.sleep(due - now)
                start = time.perf_counter()  # the timer's own lateness is not the server's
            else:
                start = due  # the previous answer came late: this request waited for it
        else:
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
    streams = [await asyncio.open_connection(host, port) for _ in range(connections)]
    start = time.perf_counter()
    # Paced connections start spread over one interval, so the load is even rather than in bursts.
    await asyncio.gather(*(
        worker(i, reader, writer, start + (i / rate if rate else 0))
        for i, (reader, writer) in enumerate(streams)
    ))
    print(json.dumps({"seconds": time.perf_counter() - start, "results": results}))

asyncio.run(main())
"""


def run_client(lab: Lab, port: int, total: int, connections: int, rate: float = 0) -> dict[str, Any]:
    argv = in_namespace(
        lab.client,
        [PYTHON, "-c", CLIENT, lab.pod_ip, str(port), str(total), str(connections), str(rate)],
    )
    result = subprocess.run(argv, capture_output=True, text=True, timeout=600, check=True)
    data: dict[str, Any] = json.loads(result.stdout)
    return data


def _descendants(pid: int) -> list[int]:
    """``pid`` and every process below it."""
    found = [pid]
    index = 0
    while index < len(found):
        for task in Path(f"/proc/{found[index]}/task").glob("*"):
            with contextlib.suppress(OSError):
                found += [int(child) for child in (task / "children").read_text().split()]
        index += 1
    return found


def cpu_seconds(pids: list[int]) -> float:
    """User plus system CPU time of ``pids`` so far."""
    ticks = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] if ordered else float("nan")


def latencies(run: dict[str, Any], mine: bool) -> list[float]:
    return [ms for is_mine, who, ms in run["results"] if is_mine == mine and who is not None]


def _app_pid(exec_pid: int) -> int:
    """The local app: the exec process's child that is not the agent (``pymirrord agent``)."""
    for pid in _descendants(exec_pid)[1:]:
        with contextlib.suppress(OSError):
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            if any(part.endswith(b"http_named_fast.py") for part in argv):
                return pid
    return -1


class CpuMeter:
    """CPU seconds the session (the ``exec`` process) and the agent (its other descendants, the local app
    left out: it is not pymirrord) spend while the meter is entered."""

    def __init__(self, exec_pid: int) -> None:
        self._session = [exec_pid]
        self._agent = [pid for pid in _descendants(exec_pid)[1:] if pid != _app_pid(exec_pid)]
        self.session = self.agent = 0.0

    def __enter__(self) -> CpuMeter:
        self.session, self.agent = -cpu_seconds(self._session), -cpu_seconds(self._agent)
        return self

    def __exit__(self, *_: object) -> None:
        self.session += cpu_seconds(self._session)
        self.agent += cpu_seconds(self._agent)


def run_phases(
    lab: Lab, args: argparse.Namespace, flat_out: contextlib.AbstractContextManager[Any]
) -> dict[str, dict[str, Any]]:
    """The warm-up, paced, flat-out (inside ``flat_out``) and one-at-a-time runs against port 80."""
    runs = {"warmup": run_client(lab, 80, args.warmup, args.connections)}
    runs["paced"] = run_client(lab, 80, args.requests, args.connections, args.rate)
    with flat_out:
        runs["flat"] = run_client(lab, 80, args.requests, args.connections)
    runs["one"] = run_client(lab, 80, args.sequential, 1)
    return runs


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--requests", type=int, default=10_000)
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--rate", type=float, default=5000, help="requests/s of the paced run")
    parser.add_argument("--warmup", type=int, default=1000)
    parser.add_argument("--sequential", type=int, default=2000)
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
            direct = run_phases(lab, args, contextlib.nullcontext())
            argv = [PYTHON, "-m", "pymirrord", "exec", "-f", config_path, "--target", lab.target, "--"]
            local = WatchedProcess([*argv, PYTHON, str(APPS / "http_named_fast.py"), "80", "local"])
            with local:
                local.wait_for("pymirrord: port 80 stolen")
                cpu = CpuMeter(local.pid)
                through = run_phases(lab, args, cpu)
                local.interrupt()
            pod.signal(15)

    sent = {"warmup": args.warmup, "paced": args.requests, "flat": args.requests, "one": args.sequential}
    lost = misrouted = 0
    for phase, run in through.items():
        results = run["results"]
        lost += sum(1 for _, who, _ in results if who is None) + (sent[phase] - len(results))
        misrouted += sum(
            1 for mine, who, _ in results if who is not None and who != ("local" if mine else "pod")
        )
    rows = [
        ("requests / keep-alive connections", f"{args.requests} / {args.connections}", ""),
        ("misrouted (all runs)", str(misrouted), "goal 0"),
        ("lost (all runs)", str(lost), "goal 0"),
    ]
    for phase, title in (
        ("paced", f"paced at {args.rate:.0f} req/s"),
        ("flat", "flat out"),
        ("one", "1 connection, one at a time"),
    ):
        base = latencies(direct[phase], False) + latencies(direct[phase], True)
        for mine, label in ((False, "non-matching (pod)"), (True, "matching (local app)")):
            samples = latencies(through[phase], mine)
            for name, fraction in (("p50", 0.5), ("p99", 0.99)):
                added = percentile(samples, fraction) - percentile(base, fraction)
                goal = "goal <= 1 ms" if (not mine and name == "p50" and phase == "paced") else ""
                pair = f"{percentile(samples, fraction):.2f} vs {percentile(base, fraction):.2f}"
                rows.append((f"{title}: added {name}, {label}", f"{added:+.2f} ms ({pair})", goal))

    def rate_of(run: dict[str, Any]) -> float:
        return len(run["results"]) / float(run["seconds"])

    rows.append(
        (
            "paced: requests/s achieved, through / direct",
            f"{rate_of(through['paced']):.0f} / {rate_of(direct['paced']):.0f}",
            "",
        )
    )
    rows.append(
        (
            "flat out: requests/s, through / direct",
            f"{rate_of(through['flat']):.0f} / {rate_of(direct['flat']):.0f}",
            "",
        )
    )

    def per_request(seconds: float) -> str:
        return f"{seconds / max(len(through['flat']['results']), 1) * 1e6:.0f} us"

    rows.append(
        (
            "flat out: pymirrord CPU per request, agent / session",
            f"{per_request(cpu.agent)} / {per_request(cpu.session)}",
            "",
        )
    )
    width = max(len(r[0]) for r in rows)
    value_width = max(len(r[1]) for r in rows)
    print(f"{'measure':<{width}}  {'value':<{value_width}}  goal")
    for label, value, goal in rows:
        print(f"{label:<{width}}  {value:<{value_width}}  {goal}")


if __name__ == "__main__":
    main()
