"""Editor helper benchmark: one run, one table (prepareLaunch needs root for its namespace target).

    .venv/bin/python bench/helper.py [--rounds 200] [--launches 5]

- cold start: process start until the ``initialize`` answer (the client may send requests from then on);
- diagnostics: ``didChange`` of a 200-line config until its ``publishDiagnostics`` arrives;
- completion: p50 and p95 of ``textDocument/completion`` at a key and at a value;
- prepareLaunch: request until the session is ready, for a local namespace target.
Goals from the issue: 500 ms, 30 ms, 50 ms, 1.5 s.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from pymirrord.lab import Lab
from pymirrord.server.rpc_client import HelperClient

HELPER = [str(Path(sys.executable).parent / "pymirrord"), "lsp"]


def config_text(lines: int) -> str:
    """A realistic config of about ``lines`` lines: a steal with an all_of filter and port mappings."""
    filters = [{"header": f"^x-tenant-{i}: (alice|bob)$"} for i in range(max(lines // 8, 1))]
    mapping = [[9000 + i, 80 + i] for i in range(max(lines // 8, 1))]
    data = {
        "target": "netns/bench",
        "feature": {
            "network": {
                "incoming": {
                    "mode": "steal",
                    "http_filter": {"any_of": filters, "ports": [80]},
                    "port_mapping": mapping,
                },
                "outgoing": {"filter": {"local": [f"10.0.{i}.0/24" for i in range(lines // 8)]}},
            },
            "env": {"include": [f"APP_{i}" for i in range(lines // 8)]},
        },
    }
    return json.dumps(data, indent=2)


def percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def cold_start(rounds: int) -> float:
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        client = HelperClient(HELPER)
        client.initialize()
        times.append(time.perf_counter() - start)
        client.close()
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--starts", type=int, default=5)
    parser.add_argument("--launches", type=int, default=5)
    args = parser.parse_args()

    rows: list[tuple[str, str, str]] = []
    rows.append(("cold start to initialized (median)", f"{cold_start(args.starts) * 1000:.0f} ms", "500 ms"))

    client = HelperClient(HELPER)
    client.initialize()
    uri = Path(tempfile.mkdtemp(), ".mirrord", "mirrord.json").as_uri()
    text = config_text(200)
    assert text.count("\n") >= 200, text.count("\n")
    client.open(uri, text)
    client.diagnostics(uri)
    diagnostics = []
    for version in range(2, args.rounds + 2):
        changed = text.replace("alice", f"alice{version}", 1)
        start = time.perf_counter()
        client.change(uri, changed, version)
        client.diagnostics(uri, version=version)
        diagnostics.append(time.perf_counter() - start)
    rows.append(
        (
            f"diagnostics after didChange, {text.count(chr(10)) + 1} lines (p50)",
            f"{statistics.median(diagnostics) * 1000:.1f} ms",
            "30 ms",
        )
    )

    lines = text.splitlines()
    key_line = next(i for i, line in enumerate(lines) if '"mode"' in line)
    positions = [
        {"line": key_line, "character": lines[key_line].index('"mode"') + 3},  # a key
        {"line": key_line, "character": lines[key_line].index('"steal"') + 3},  # a value
    ]
    completion = []
    for index in range(args.rounds):
        start = time.perf_counter()
        client.request(
            "textDocument/completion",
            {"textDocument": {"uri": uri}, "position": positions[index % 2]},
        )
        completion.append(time.perf_counter() - start)
    rows.append(("completion p50", f"{percentile(completion, 0.5) * 1000:.1f} ms", "50 ms"))
    rows.append(("completion p95", f"{percentile(completion, 0.95) * 1000:.1f} ms", "50 ms"))

    if os.geteuid() == 0:
        with Lab.create("pmdb") as lab:
            program = Path(tempfile.mkdtemp(), "app.py")
            program.write_text("print('hi')\n")
            launches = []
            for _ in range(args.launches):
                start = time.perf_counter()
                prepared = client.request(
                    "pymirrord/prepareLaunch",
                    {"target": lab.target, "launch": {"type": "debugpy", "program": str(program)}},
                    timeout=60,
                )
                launches.append(time.perf_counter() - start)
                client.request("pymirrord/stopSession", {"sessionId": prepared["sessionId"]})
            rows.append(
                (
                    "prepareLaunch to ready, local target (median)",
                    f"{statistics.median(launches) * 1000:.0f} ms",
                    "1500 ms",
                )
            )
    else:
        rows.append(("prepareLaunch to ready, local target", "skipped (needs root)", "1500 ms"))
    client.close()

    width = max(len(row[0]) for row in rows)
    print(f"{'measure':<{width}}  {'result':>22}  goal")
    for name, value, goal in rows:
        print(f"{name:<{width}}  {value:>22}  {goal}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
