"""``bench_runs.MachineCpu`` measures the machine's busy CPU time over a window after the fact."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"
sys.path.insert(0, str(BENCH))

import bench_runs  # noqa: E402 (bench/ is not a package: its modules import each other by name)


def _spin_until(moment: float) -> None:
    while time.monotonic() < moment:
        pass


def test_a_busy_window_counts_the_cpu_spent_in_it() -> None:
    with bench_runs.MachineCpu() as machine:
        start = time.monotonic()
        cpu_before = time.process_time()
        _spin_until(start + 0.3)  # 30 of /proc/stat's ticks: enough to tell busy from idle
        end = time.monotonic()
        spent = time.process_time() - cpu_before
        busy = machine.busy(start, end)
    # The machine's count holds this thread's own work (other processes only add to it), within a tick
    # per core at each end of the window.
    assert busy >= spent - 2 * 0.01 * bench_runs.CORES
    assert busy <= (end - start) * bench_runs.CORES + 2 * 0.01 * bench_runs.CORES


def test_a_window_before_sampling_began_is_refused() -> None:
    before = time.monotonic()
    with bench_runs.MachineCpu() as machine, pytest.raises(ValueError, match="before sampling"):
        machine.busy(before - 1, time.monotonic())
