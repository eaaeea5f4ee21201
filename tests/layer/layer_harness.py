"""Running a test app as a subprocess with the layer injected, and reading what it prints."""

from __future__ import annotations

import contextlib
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType

REPO = Path(__file__).resolve().parents[2]
LAYER_DIR = REPO / "pymirrord" / "layer"
APPS = Path(__file__).resolve().parent / "apps"
PYTHON39 = Path("/root/.pyenv/versions/3.9.18/bin/python")
WAIT = 20.0


def layer_env(
    socket_path: str | None,
    config: str | None = None,
    *,
    pythonpath: Sequence[str | Path] = (),
    extra: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The app's environment: the layer first on PYTHONPATH, then ``pythonpath``; the layer's variables."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("PYMIRRORD_")}
    env["PYTHONPATH"] = os.pathsep.join([str(LAYER_DIR), *map(str, pythonpath)])
    env["PYTHONUNBUFFERED"] = "1"
    if socket_path is not None:
        env["PYMIRRORD_LAYER_SOCKET"] = socket_path
    if config is not None:
        env["PYMIRRORD_LAYER_CONFIG"] = config
    env.update(extra or {})
    return env


class App:
    """A subprocess whose stdout and stderr lines are collected by threads; killed on exit."""

    def __init__(
        self, argv: Sequence[str | Path], env: Mapping[str, str], cwd: str | Path | None = None
    ) -> None:
        self.argv = [str(arg) for arg in argv]
        self.process = subprocess.Popen(
            self.argv,
            env=dict(env),
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        self.stdout: list[str] = []
        self.stderr: list[str] = []
        self._lines: queue.Queue[str | None] = queue.Queue()
        assert self.process.stdout is not None and self.process.stderr is not None
        self._readers = [
            threading.Thread(target=self._read, args=(self.process.stdout, self.stdout, True), daemon=True),
            threading.Thread(target=self._read, args=(self.process.stderr, self.stderr, False), daemon=True),
        ]
        for reader in self._readers:
            reader.start()

    def _read(self, stream: object, into: list[str], announce: bool) -> None:
        for line in stream:  # type: ignore[attr-defined]
            into.append(line.rstrip("\n"))
            if announce:
                self._lines.put(line.rstrip("\n"))
        if announce:
            self._lines.put(None)

    def __enter__(self) -> App:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.kill()

    def wait_line(self, pattern: str, timeout: float = WAIT) -> re.Match[str]:
        """The first (not yet consumed) stdout line matching ``pattern``."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self._lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(
                    f"no line matching {pattern!r} within {timeout} s{self._report()}"
                ) from None
            if line is None:
                raise AssertionError(f"the app ended without a line matching {pattern!r}{self._report()}")
            match = regex.search(line)
            if match:
                return match

    def finish(self, timeout: float = WAIT) -> int:
        """Waits for the app to exit on its own and for its output to be read; its exit status."""
        try:
            code = self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"the app did not exit within {timeout} s{self._report()}") from None
        for reader in self._readers:
            reader.join(timeout)
        return code

    def kill(self) -> None:
        if self.process.poll() is None:
            # The whole process group: an app may have forked.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(WAIT)
        for reader in self._readers:
            reader.join(WAIT)
        for stream in (self.process.stdout, self.process.stderr):
            if stream is not None:
                stream.close()

    def _report(self) -> str:
        return (
            f"\n--- stdout of {self.argv}:\n"
            + "\n".join(self.stdout)
            + "\n--- stderr:\n"
            + "\n".join(self.stderr)
        )


def python(*args: str | Path, interpreter: str | Path = sys.executable) -> list[str | Path]:
    return [interpreter, *args]
