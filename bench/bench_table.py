"""The table every benchmark prints: one row per measure, one column per path, in the same run.

Columns: ``direct`` (no pymirrord), ``handover`` (a local agent passes connections as sockets, the
default for local targets), ``relayed`` (``PYMIRRORD_HANDOVER=0``: the agent is reached as a remote one
is, over TCP; each TCP connection gets a tunnel of its own to the agent, see ``pymirrord.tunnel``) and
``messages`` (also ``PYMIRRORD_TUNNELS=0``: every byte travels as messages on the websocket through the
session, the path when no tunnel can be opened), then the goal and
whether this run met it.
A cell that does not apply holds ``-``, so every line has the same number of ``|``-separated cells.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

COLUMNS = ("measure", "direct", "handover", "relayed", "messages", "goal", "met")
SEPARATOR = " | "
MIN_CPU_WINDOW = 0.1
"""Seconds of direct transfers below which the machine's CPU per GB is not given (``/proc/stat`` counts
10 ms ticks per core)."""


@dataclass(frozen=True)
class Row:
    """One measure; ``met`` is None where the row has no goal (or it cannot be judged)."""

    measure: str
    direct: str = "-"
    handover: str = "-"
    relayed: str = "-"
    goal: str = "-"
    met: bool | None = None
    messages: str = "-"

    def cells(self) -> tuple[str, ...]:
        met = "-" if self.met is None else ("yes" if self.met else "NO")
        return (self.measure, self.direct, self.handover, self.relayed, self.messages, self.goal, met)


def print_table(rows: Sequence[Row], note: str = "") -> None:
    """The header, a rule, the rows; then ``note`` (sizes of the run) on a line of its own."""
    lines = [COLUMNS, *(row.cells() for row in rows)]
    widths = [max(len(line[i]) for line in lines) for i in range(len(COLUMNS))]
    rule = tuple("-" * width for width in widths)
    for line in [lines[0], rule, *lines[1:]]:
        print(SEPARATOR.join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip())
    if note:
        print(note)


def percentile(samples: Sequence[float], fraction: float) -> float:
    """The sample below which ``fraction`` of them lie (nan without samples)."""
    if not samples:
        return math.nan
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def rate_mb(size: int, seconds: float) -> float:
    """Megabytes (10**6 bytes) per second."""
    return size / seconds / 1e6


def versus(rate: float, direct: float, unit: str = "MB/s") -> str:
    """``rate`` and its ratio to ``direct``: ``812 MB/s (0.61x)``."""
    return f"{rate:.0f} {unit} ({rate / direct:.2f}x)"


def added(value: float, base: float) -> str:
    """``value`` and what it adds to ``base``: ``+0.210 (0.512) ms``."""
    return f"{value - base:+.3f} ({value:.3f}) ms"


def cpu_versus(path: float, direct: float, direct_rate: float, cores: int) -> str:
    """A path's CPU seconds per GB (the whole machine's) against direct's, and the pace against direct
    (``direct_rate``, bytes/s) it could reach at most with every core to itself:
    ``0.44 s: 1.6x direct's, a pace of at most 0.74x``."""
    ceiling = cores / (path / 1e9) / direct_rate
    return f"{path:.2f} s: {path / direct:.1f}x direct's, a pace of at most {ceiling:.2f}x"
