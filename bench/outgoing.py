"""Outgoing traffic and DNS benchmark: one run, one table (run as root).

    .venv/bin/python bench/outgoing.py [--megabytes 256] [--connects 500] [--lookups 500]

The same client runs twice: inside the pod's namespace (direct), and on this machine under
``pymirrord exec`` against that namespace, where its connections and lookups go through the agent.

- throughput: the client downloads N MB from a server on the pod's own 127.0.0.1;
- connect latency: N sequential TCP connects to that server (p50, p99 of ``connect()``);
- lookup latency: N ``getaddrinfo`` calls for a name served by a DNS server in the pod (p50, p99).
Goals from the issue: ratio >= 0.5, connect and lookup each add <= 2 ms at p50.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import statistics
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pymirrord.lab import Lab, WatchedProcess, in_namespace

APPS = Path(__file__).resolve().parent / "apps"
# The test suite's DNS server: one implementation of "a DNS server in the pod" for tests and benchmarks.
DNS_SERVER = Path(__file__).resolve().parents[1] / "tests" / "integration" / "apps" / "dns_server.py"
PYTHON = sys.executable
NAME = "db.bench.test"
NAME_ADDRESS = "10.77.0.7"

CLIENT = """
import json, socket, struct, sys, time
mode, host, port, count = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
if mode == "download":
    with socket.create_connection((host, port), timeout=120) as connection:
        start = time.perf_counter()
        connection.sendall(struct.pack("!Q", count))
        received = 0
        while data := connection.recv(1 << 20):
            received += len(data)
        seconds = time.perf_counter() - start
    print(json.dumps({"seconds": seconds, "received": received}))
elif mode == "connect":
    samples = []
    for index in range(count + 20):
        sock = socket.socket()
        start = time.perf_counter()
        sock.connect((host, port))
        elapsed = (time.perf_counter() - start) * 1000
        sock.close()
        if index >= 20:
            samples.append(elapsed)
    print(json.dumps(samples))
else:
    samples = []
    for index in range(count + 20):
        start = time.perf_counter()
        socket.getaddrinfo(host, port, socket.AF_INET, socket.SOCK_STREAM)
        elapsed = (time.perf_counter() - start) * 1000
        if index >= 20:
            samples.append(elapsed)
    print(json.dumps(samples))
"""


def run_direct(lab: Lab, *args: str) -> Any:
    result = subprocess.run(
        in_namespace(lab.pod, [PYTHON, "-c", CLIENT, *args]),
        check=False,
        capture_output=True,
        text=True,
        timeout=300,
    )
    if result.returncode != 0:
        raise SystemExit(f"the direct client failed: {result.stderr.strip()}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def run_through(lab: Lab, *args: str) -> Any:
    argv = [PYTHON, "-m", "pymirrord", "exec", "-t", lab.target, "--", PYTHON, "-c", CLIENT, *args]
    with WatchedProcess(argv) as run:
        line = run.wait_for(("{" if args[0] == "download" else "["), timeout=300)
        run.wait(60)
    return json.loads(line)


@contextlib.contextmanager
def pod_services(lab: Lab) -> Iterator[int]:
    """The download server on the pod's 127.0.0.1, a DNS server for the pod, the pod's resolv.conf."""
    etc = Path("/etc/netns") / lab.pod
    etc.mkdir(parents=True, exist_ok=True)
    processes: list[WatchedProcess] = []
    try:
        (etc / "resolv.conf").write_text("nameserver 127.0.0.1\n")
        (etc / "hosts").write_text("127.0.0.1 localhost\n")
        # A fresh namespace: any port is free; 53 because resolv.conf cannot name another one.
        port = 47_000
        source = WatchedProcess(
            in_namespace(lab.pod, [PYTHON, str(APPS / "source.py"), "127.0.0.1", str(port)])
        )
        processes.append(source)
        source.wait_for("ready")
        responder = WatchedProcess(
            in_namespace(
                lab.pod,
                [PYTHON, str(DNS_SERVER), "127.0.0.1", "53", f"{NAME}={NAME_ADDRESS}"],
            )
        )
        processes.append(responder)
        responder.wait_for("ready")
        yield port
    finally:
        for process in processes:
            process.interrupt(grace=2)
        shutil.rmtree(etc, ignore_errors=True)


def percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--megabytes", type=int, default=256)
    parser.add_argument("--connects", type=int, default=500)
    parser.add_argument("--lookups", type=int, default=500)
    args = parser.parse_args()
    size = args.megabytes * 1024 * 1024
    with Lab.create("pmdbo") as lab, pod_services(lab) as port:
        host = "127.0.0.1"
        direct_download = run_direct(lab, "download", host, str(port), str(size))
        through_download = run_through(lab, "download", host, str(port), str(size))
        assert direct_download["received"] == size and through_download["received"] == size
        direct_connects = run_direct(lab, "connect", host, str(port), str(args.connects))
        through_connects = run_through(lab, "connect", host, str(port), str(args.connects))
        direct_lookups = run_direct(lab, "lookup", NAME, "80", str(args.lookups))
        through_lookups = run_through(lab, "lookup", NAME, "80", str(args.lookups))

    direct_rate = size / direct_download["seconds"] / 1e6
    through_rate = size / through_download["seconds"] / 1e6
    ratio = through_rate / direct_rate
    rows = [
        (
            "TCP download throughput, MB/s",
            f"{direct_rate:.0f}",
            f"{through_rate:.0f}",
            f"ratio {ratio:.2f}",
            ">= 0.5",
            ratio >= 0.5,
        ),
    ]
    for label, direct, through in (
        ("connect latency, ms", direct_connects, through_connects),
        ("lookup latency, ms", direct_lookups, through_lookups),
    ):
        added = statistics.median(through) - statistics.median(direct)
        rows.append(
            (
                f"{label} p50 (p99)",
                f"{statistics.median(direct):.3f} ({percentile(direct, 0.99):.3f})",
                f"{statistics.median(through):.3f} ({percentile(through, 0.99):.3f})",
                f"+{added:.3f} at p50",
                "<= 2 ms",
                added <= 2.0,
            )
        )
    header = ("measure", "in the pod", "via pymirrord", "difference", "goal", "met")
    table = [header, *[(*row[:5], "yes" if row[5] else "NO") for row in rows]]
    widths = [max(len(str(line[i])) for line in table) for i in range(len(header))]
    for line in table:
        print(" | ".join(str(cell).ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip())
    print(f"({args.megabytes} MB download, {args.connects} connects, {args.lookups} lookups; one run)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
