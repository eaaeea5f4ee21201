"""Each benchmark under ``bench/`` runs end to end with ``--quick`` and prints its one table.

Only the table's shape and the rows that count things (bytes delivered, requests lost or misrouted)
are checked: the timings of a smoke run on a busy machine mean nothing, and a test never judges them.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"
COLUMNS = ["measure", "direct", "handover", "relayed", "messages", "goal", "met"]

pytestmark = [
    pytest.mark.timeout(300),
    pytest.mark.skipif(
        os.geteuid() != 0 or shutil.which("ip") is None or shutil.which("iptables") is None,
        reason="the benchmarks need root, ip and iptables (network namespaces and REDIRECT rules)",
    ),
]


def table_of(script: str) -> dict[str, list[str]]:
    """Runs ``bench/<script> --quick``; its rows by measure, after checking the table's shape."""
    result = subprocess.run(
        [sys.executable, str(BENCH / script), "--quick"],
        capture_output=True,
        text=True,
        timeout=280,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("measure "))
    header = [cell.strip() for cell in lines[start].split(" | ")]
    assert header == COLUMNS
    assert set(lines[start + 1]) <= {"-", " ", "|"}
    body = lines[start + 2 :]
    assert body[-1].startswith("("), "the table ends with a line naming the run's sizes"
    rows: dict[str, list[str]] = {}
    for line in body[:-1]:
        cells = [cell.strip() for cell in line.split(" | ")]
        assert len(cells) == len(COLUMNS), line
        assert cells[-1] in ("yes", "NO", "-"), line
        rows[cells[0]] = cells
    return rows


def row(rows: dict[str, list[str]], prefix: str) -> dict[str, str]:
    """The one row whose measure starts with ``prefix``, by column."""
    found = [cells for measure, cells in rows.items() if measure.startswith(prefix)]
    assert len(found) == 1, (prefix, list(rows))
    return dict(zip(COLUMNS, found[0], strict=True))


def test_incoming() -> None:
    rows = table_of("incoming.py")
    for prefix in (
        "steal upload, client MB/s",
        "mirror upload, client MB/s",
        "keep-alive HTTP one at a time, added p50",
        "keep-alive HTTP at 1000 req/s (paced), added p50",
        "pod answers again after agent SIGKILL",
    ):
        cells = row(rows, prefix)
        assert cells["relayed"] != "-" and cells["messages"] != "-" and cells["goal"] != "-", cells
    for prefix in (
        "steal upload, every byte reached the app",
        "mirror upload, bytes the copy received",
        "keep-alive HTTP paced, requests answered",
        "mirror at 1000 req/s",
    ):
        assert row(rows, prefix)["met"] == "yes", row(rows, prefix)
    assert row(rows, "mirror at 1000 req/s")["relayed"].startswith("0 lost")
    assert row(rows, "mirror at 1000 req/s")["messages"].startswith("0 lost")
    # How many copies the packet capture got whole, and how fast, varies with the machine's load: only the
    # cells' form is checked.
    whole, pace = row(rows, "reference: mirror upload by packet capture, copies")["relayed"].split("; ")
    captured = whole.split(" of ")
    assert len(captured) == 2 and all(part.isdigit() for part in captured), captured
    assert (pace.startswith("copy ") and pace.endswith("x)")) or pace == "copy no copy came whole", pace
    # A 4 MB copy comes whole on every path that keeps copies: its pace is a figure against direct.
    assert row(rows, "mirror upload, the copy's MB/s")["relayed"].endswith("x)")
    redirected = row(rows, "mirror upload redirected")["relayed"].split("; ")
    assert redirected[0].endswith("x)") and redirected[1].startswith("copy "), redirected
    assert redirected[2] == "4194304 of 4194304", redirected
    # 4 MB uploads are over within a few of /proc/stat's 10 ms ticks: the CPU rows say so.
    for prefix in ("steal upload, the machine's CPU", "mirror upload, the machine's CPU"):
        assert row(rows, prefix)["relayed"] == "too short to measure", row(rows, prefix)


def test_outgoing() -> None:
    rows = table_of("outgoing.py")
    for phase in ("download", "upload"):
        assert row(rows, f"TCP {phase}, MB/s")["goal"] == "relayed >= 0.5x"
        cells = row(rows, f"TCP {phase}, every byte arrived")
        everything = (cells["direct"], cells["handover"], cells["relayed"], cells["messages"], cells["met"])
        assert everything == ("yes",) * 5
    for prefix in ("TCP connect latency, p50", "name lookup latency, p50"):
        assert row(rows, prefix)["relayed"].endswith(" ms")
    for phase in ("download", "upload"):  # 4 MB moves within a few of /proc/stat's 10 ms ticks
        assert row(rows, f"TCP {phase}, the machine's CPU")["direct"] == "too short to measure"


def test_http_filter() -> None:
    rows = table_of("http_filter.py")
    misrouted, lost = row(rows, "misrouted, all phases"), row(rows, "lost, all phases")
    assert (misrouted["handover"], misrouted["relayed"]) == ("0", "0")
    assert (lost["direct"], lost["handover"], lost["relayed"]) == ("0", "0", "0")
    assert row(rows, "flat out: requests/s")["goal"] == "relayed >= 20000"
    for phase in ("paced at", "flat out: added", "1 connection"):
        assert sum(1 for measure in rows if measure.startswith(phase)) == 4
