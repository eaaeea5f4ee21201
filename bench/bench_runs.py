"""What the benchmarks share to run their parts: the interpreter, the bench apps, ``pymirrord exec``."""

from __future__ import annotations

import atexit
import bisect
import functools
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pymirrord.lab import Lab, WatchedProcess, in_namespace
from pymirrord.server.rpc_client import HelperClient

PYTHON = sys.executable
APPS = Path(__file__).resolve().parent / "apps"
HANDOVER_SWITCH = "PYMIRRORD_HANDOVER"


TUNNELS_SWITCH = "PYMIRRORD_TUNNELS"
MACHINE_SAMPLE = 0.005
"""Seconds between two looks at ``/proc/stat`` (whose counters move in 10 ms ticks per CPU)."""
CORES = os.cpu_count() or 1


class MachineCpu:
    """The whole machine's busy CPU time (every process, interrupts and the kernel's own work), sampled
    from ``/proc/stat`` by a thread while the context is open, so that a window that opened in another
    process (a client's first byte, by ``time.monotonic()``) can be measured after the fact, without the
    client's start-up. The sampler's own CPU time is left out."""

    def __init__(self) -> None:
        self._times: list[float] = []
        self._busy: list[float] = []
        self._sampled = threading.Condition()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, name="machine-cpu", daemon=True)
        self._tick = os.sysconf("SC_CLK_TCK")

    def __enter__(self) -> MachineCpu:
        self._thread.start()
        with self._sampled:  # so that a window opened from now on has a sample before it
            if not self._sampled.wait_for(lambda: bool(self._times), timeout=5):
                raise TimeoutError("the CPU sampler did not start")
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    def _sample(self) -> None:
        stat = os.open("/proc/stat", os.O_RDONLY)
        try:
            while True:
                # The first line: "cpu" and the machine's ticks in user, nice, system, idle, iowait, irq,
                # softirq and steal time (then guest time, which user time already holds).
                fields = [int(value) for value in os.pread(stat, 256, 0).split(b"\n", 1)[0].split()[1:9]]
                busy = (sum(fields) - fields[3] - fields[4]) / self._tick - time.thread_time()
                with self._sampled:
                    self._times.append(time.monotonic())
                    self._busy.append(busy)
                    self._sampled.notify_all()
                if self._stop.wait(MACHINE_SAMPLE):
                    return
        finally:
            os.close(stat)

    def _at(self, moment: float) -> float:
        after = bisect.bisect_left(self._times, moment)
        if after == 0:
            raise ValueError(f"no CPU sample before {moment:.3f}: the window opened before sampling did")
        t0, t1 = self._times[after - 1], self._times[after]
        b0, b1 = self._busy[after - 1], self._busy[after]
        return b0 + (b1 - b0) * (moment - t0) / (t1 - t0)

    def busy(self, start: float, end: float) -> float:
        """CPU seconds the machine was busy from ``start`` to ``end`` (``time.monotonic()``, both past)."""
        with self._sampled:
            if not self._sampled.wait_for(lambda: self._times and self._times[-1] > end, timeout=5):
                raise TimeoutError("the CPU sampler stopped")
            return self._at(end) - self._at(start)


def exec_env(handover: bool, tunnels: bool = True) -> dict[str, str]:
    """The environment of a ``pymirrord exec``: handover (a local agent's default) on, or off (relayed);
    without ``tunnels`` relayed bytes travel as messages on the websocket (as when no tunnel opens)."""
    return dict(
        os.environ, **{HANDOVER_SWITCH: "1" if handover else "0", TUNNELS_SWITCH: "1" if tunnels else "0"}
    )


def exec_argv(lab: Lab, *flags: str) -> list[str]:
    """``pymirrord exec`` against the lab's pod, up to and including ``--``."""
    return [PYTHON, "-m", "pymirrord", "exec", *flags, "--target", lab.target, "--"]


def app(name: str, *args: str) -> list[str]:
    """The argv of bench app ``name`` (a file in ``bench/apps``)."""
    return [PYTHON, str(APPS / name), *args]


def _built(name: str, scratch: str) -> Path | None:
    """``apps/NAME.c`` built into ``scratch`` with this machine's C compiler (None without one)."""
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        return None
    binary = Path(scratch, name)
    result = subprocess.run(
        [compiler, "-O2", "-o", str(binary), str(APPS / f"{name}.c")],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise SystemExit(f"building bench/apps/{name}.c failed: {result.stderr.strip()}")
    return binary


def bare_relay(scratch: str) -> Path | None:
    """``apps/bare_relay.c``, built (None without a C compiler): the reference relay whose rows show what a
    relay of pymirrord's design costs with nothing around it."""
    return _built("bare_relay", scratch)


HTTP_CLIENT_SWITCH = "BENCH_HTTP_CLIENT"
"""``python``: the HTTP benches load the servers with ``apps/http_load.py``; otherwise with
``apps/http_load.c`` where a C compiler is at hand, which costs the machine a few microseconds of CPU per
request where the Python client costs 20-28 (on two cores, as much as the apps it measures)."""


@functools.cache
def http_load_client() -> list[str]:
    """The argv that starts the HTTP bench client (see ``HTTP_CLIENT_SWITCH``), built once per run."""
    if os.environ.get(HTTP_CLIENT_SWITCH) != "python":
        scratch = tempfile.mkdtemp(prefix="pymirrord-bench-")
        atexit.register(shutil.rmtree, scratch, ignore_errors=True)
        binary = _built("http_load", scratch)
        if binary is not None:
            return [str(binary)]
    return app("http_load.py")


def http_load_client_name() -> str:
    """Which client ``http_load`` runs, for a table's footnote."""
    return "apps/http_load.py" if http_load_client()[-1].endswith(".py") else "apps/http_load.c"


def json_from(namespace: str, argv: Sequence[str], timeout: float = 300) -> Any:
    """Runs ``argv`` in ``namespace`` and parses the JSON of its last line of output."""
    result = subprocess.run(
        in_namespace(namespace, argv), capture_output=True, text=True, timeout=timeout, check=False
    )
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(argv[:3])} failed in {namespace}: {result.stderr.strip()}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def in_pod(lab: Lab, name: str, *args: str, ready: str = "ready") -> WatchedProcess:
    """Bench app ``name`` serving in the pod's namespace once it printed ``ready`` (stopped if it did not)."""
    process = WatchedProcess(in_namespace(lab.pod, app(name, *args)))
    try:
        process.wait_for(ready)
    except BaseException:
        process.interrupt()
        raise
    return process


def http_load(
    lab: Lab,
    port: int,
    total: int,
    connections: int,
    *,
    rate: float = 0,
    warmup: int = 0,
    timeout: float = 600,
) -> dict[str, Any]:
    """The HTTP bench client (``http_load_client``) from the client namespace against the pod's address."""
    args = [lab.pod_ip, str(port), str(total), str(connections), "--rate", str(rate), "--warmup", str(warmup)]
    data: dict[str, Any] = json_from(lab.client, [*http_load_client(), *args], timeout)
    return data


def answered(run: dict[str, Any]) -> int:
    """Requests of an ``http_load`` run that got an answer."""
    return sum(1 for _, body, _ in run["results"] if body is not None)


def latencies(run: dict[str, Any], mine: bool | None = None) -> list[float]:
    """Milliseconds of the answered requests of an ``http_load`` run (only matching or not, if asked)."""
    return [ms for is_mine, body, ms in run["results"] if body is not None and mine in (None, is_mine)]


@contextmanager
def editor_session(
    lab: Lab, workspace: Path, incoming: Mapping[str, Any] | str, argv: Sequence[str], ports: Sequence[int]
) -> Iterator[HelperClient]:
    """``argv`` (a bench app) as an editor runs it: the helper (``pymirrord lsp``) prepares a launch with
    ``feature.network.incoming`` = ``incoming`` against the lab's pod, as VS Code asks it to, and the app
    runs with the environment it returned (without a debugger, which changes nothing on the path of the
    bytes). Yields the helper once every one of ``ports`` is served; the app stops on leaving."""
    config = workspace / ".mirrord" / "mirrord.json"
    config.parent.mkdir(parents=True)
    config.write_text(json.dumps({"feature": {"network": {"incoming": incoming}}}))
    launch = {"type": "debugpy", "request": "launch", "name": "bench", "program": argv[1], "args": argv[2:]}
    helper = HelperClient([PYTHON, "-m", "pymirrord", "lsp"], cwd=str(workspace))
    try:
        helper.initialize(workspace.as_uri(), progress=False)
        prepared = helper.request(
            "pymirrord/prepareLaunch",
            {"configUri": config.as_uri(), "target": lab.target, "launch": launch},
            timeout=120,
        )
        with WatchedProcess(list(argv), env={**os.environ, **prepared["env"]}) as process:
            served: set[int] = set()

            def port_served(event: dict[str, Any]) -> bool:
                if event["kind"] == "port":
                    served.add(int(event["port"]))
                return served >= set(ports)

            helper.wait_notification("pymirrord/sessionEvent", port_served, timeout=60)
            yield helper
            process.interrupt()
    finally:
        helper.close()
