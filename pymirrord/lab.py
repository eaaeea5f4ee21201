"""A two-host lab on this machine: a "pod" and a "client" network namespace joined by a veth pair.

The demo runs the mission document's story in it, and the integration tests build their targets with
it. Everything it creates is named with a unique suffix and removed by ``close`` (also when setup
fails half way), so runs never collide and never leave namespaces behind.
"""

from __future__ import annotations

import contextlib
import os
import queue
import secrets
import signal
import subprocess
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import IO

from pymirrord.errors import PymirrordError


class LabError(PymirrordError):
    """The lab could not be built (not root, no ``ip`` command, kernel refused)."""


def _ip(*args: str) -> None:
    try:
        subprocess.run(["ip", *args], check=True, capture_output=True, text=True)
    except FileNotFoundError:
        raise LabError(
            "the 'ip' command is missing", "install iproute2 (apt-get install -y iproute2)"
        ) from None
    except subprocess.CalledProcessError as error:
        raise LabError(
            f"'ip {' '.join(args)}' failed: {error.stderr.strip()}",
            "network namespaces need root (or CAP_NET_ADMIN and CAP_SYS_ADMIN)",
        ) from None


def in_namespace(namespace: str, argv: Sequence[str]) -> list[str]:
    """The argv that runs ``argv`` inside ``namespace``."""
    return ["ip", "netns", "exec", namespace, *argv]


@dataclass
class Lab:
    """Two namespaces on a private /24: ``pod`` (``pod_ip``) and ``client`` (``client_ip``)."""

    pod: str
    client: str
    pod_ip: str
    client_ip: str
    _created: list[str] = field(default_factory=list)

    @classmethod
    def create(cls, prefix: str = "pmd") -> Lab:
        suffix = secrets.token_hex(3)
        # A /24 per lab, chosen at random inside 10.200.0.0/13 and only ever routed between our namespaces.
        subnet = f"10.{200 + secrets.randbelow(8)}.{secrets.randbelow(256)}"
        lab = cls(f"{prefix}-pod-{suffix}", f"{prefix}-cli-{suffix}", f"{subnet}.1", f"{subnet}.2")
        try:
            lab._build(suffix)
        except BaseException:
            lab.close()
            raise
        return lab

    def _build(self, suffix: str) -> None:
        for namespace in (self.pod, self.client):
            _ip("netns", "add", namespace)
            self._created.append(namespace)
            _ip("-n", namespace, "link", "set", "lo", "up")
        pod_end, client_end = f"pmdp{suffix}", f"pmdc{suffix}"
        _ip("link", "add", pod_end, "type", "veth", "peer", "name", client_end)
        try:
            _ip("link", "set", pod_end, "netns", self.pod)
            _ip("link", "set", client_end, "netns", self.client)
        except LabError:
            with contextlib.suppress(LabError):
                _ip("link", "del", pod_end)
            raise
        for namespace, device, address in (
            (self.pod, pod_end, self.pod_ip),
            (self.client, client_end, self.client_ip),
        ):
            _ip("-n", namespace, "addr", "add", f"{address}/24", "dev", device)
            _ip("-n", namespace, "link", "set", device, "up")

    def close(self) -> None:
        """Deletes the namespaces (their veth ends go with them); safe to call more than once."""
        while self._created:
            namespace = self._created.pop()
            with contextlib.suppress(LabError):
                _ip("netns", "del", namespace)

    def __enter__(self) -> Lab:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def target(self) -> str:
        return f"netns/{self.pod}"


@contextlib.contextmanager
def lab(prefix: str = "pmd") -> Iterator[Lab]:
    built = Lab.create(prefix)
    try:
        yield built
    finally:
        built.close()


def namespace_exists(name: str) -> bool:
    return os.path.exists(os.path.join("/run/netns", name))


class WatchedProcess:
    """A child whose stdout and stderr lines are collected by a thread, so a caller can wait for a line.

    It starts in a process group of its own: the caller decides when and how it stops (``interrupt``
    sends SIGINT, then SIGKILL to the whole group after a grace period, so no grandchild outlives it).
    """

    def __init__(self, argv: Sequence[str], env: Mapping[str, str] | None = None) -> None:
        self.argv = list(argv)
        self.popen = subprocess.Popen(
            self.argv,
            stdin=subprocess.DEVNULL,
            # Two pipes, not one: pymirrord writes to stderr while the app writes to stdout, and an app whose
            # print() takes two writes (text, then newline) would otherwise have a line of ours land in the
            # middle of its own.
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=dict(env) if env is not None else None,
            start_new_session=True,
        )
        self.seen: list[str] = []
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._open_streams = 2
        self._closing = threading.Lock()
        for stream in (self.popen.stdout, self.popen.stderr):
            threading.Thread(target=self._read, args=(stream,), daemon=True).start()

    def _read(self, stream: IO[bytes] | None) -> None:
        assert stream is not None
        for raw in stream:
            self._lines.put(raw.decode("utf-8", "replace").rstrip("\n"))
        with self._closing:
            self._open_streams -= 1
            if self._open_streams == 0:
                self._lines.put(None)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def wait_for(self, text: str, timeout: float = 30.0) -> str:
        """The next line that contains ``text``; ``TimeoutError`` (with all output so far) if none comes."""
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                line = self._lines.get(timeout=left)
            except queue.Empty:
                break
            if line is None:
                self._lines.put(None)  # later waits see the end too
                status = self.popen.wait()
                raise TimeoutError(self._report(f"exited with status {status} before printing {text!r}"))
            self.seen.append(line)
            if text in line:
                return line
        raise TimeoutError(self._report(f"printed no line with {text!r} within {timeout:g} s"))

    def wait_for_each(self, *texts: str, timeout: float = 30.0) -> list[str]:
        """Lines containing each of ``texts``, in the order given, whatever order they are printed in."""
        found: dict[str, str] = {}
        deadline = time.monotonic() + timeout
        while len(found) < len(texts):
            line = self.wait_for("", max(0.0, deadline - time.monotonic()))
            for text in texts:
                if text in line and text not in found:
                    found[text] = line
                    break
        return [found[text] for text in texts]

    def _report(self, what: str) -> str:
        shown = "\n".join(f"  | {line}" for line in self.seen[-30:])
        return f"{' '.join(self.argv[:6])} {what}; its output:\n{shown}"

    def signal(self, signum: int) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signum)

    def wait(self, timeout: float | None = None) -> int:
        return self.popen.wait(timeout)

    def interrupt(self, grace: float = 15.0) -> int:
        """SIGINT, then after ``grace`` seconds SIGKILL for the whole process group; returns the status."""
        self.signal(signal.SIGINT)
        try:
            status = self.popen.wait(grace)
        except subprocess.TimeoutExpired:
            status = None
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.popen.pid, signal.SIGKILL)
        return self.popen.wait() if status is None else status

    def __enter__(self) -> WatchedProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.interrupt()
