"""Real Linux network namespaces and processes for integration tests (needs root and `ip`).

Typical use, through the fixtures in ``conftest.py``::

    def test_hello(topology: Topology) -> None:
        with topology.pod.start_python(ECHO_SERVER) as server:      # waits for its first stdout line
            port = int(server.ready_line)
            answer = topology.client.python(CLIENT, topology.pod_ip, str(port)).stdout

Namespaces are named ``pmd-test-<random hex>[-tag]``; deleting one first kills every process still inside it,
so nothing outlives a test. Processes get the repository on ``PYTHONPATH`` and unbuffered output, and their
stderr goes to the test's captured output (pytest shows it when a test fails).
"""

from __future__ import annotations

import os
import random
import secrets
import selectors
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

NAME_PREFIX = "pmd-test-"
NETNS_DIR = Path("/run/netns")
REPO_ROOT = Path(__file__).resolve().parents[2]
# Bounds for waiting on processes and commands; generous so a loaded CI machine does not flake.
DEFAULT_TIMEOUT = 15.0


def unique_name(tag: str = "") -> str:
    """A fresh namespace name: ``pmd-test-<8 hex>`` plus ``-tag`` when given."""
    return NAME_PREFIX + secrets.token_hex(4) + (f"-{tag}" if tag else "")


def child_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment for test processes: this repository importable, Python output unbuffered."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH")) if p)
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra or {})
    return env


def run(
    argv: Sequence[str], *, check: bool = True, timeout: float = DEFAULT_TIMEOUT, input: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run a command to completion; with ``check`` a failure raises, showing its stderr."""
    result = subprocess.run(
        list(argv), input=input, capture_output=True, text=True, timeout=timeout, env=child_env(), check=False
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"`{' '.join(argv)}` exited with {result.returncode}\n"
            f"stdout: {result.stdout}\nstderr: {result.stderr}"
        )
    return result


def python_argv(code: str, *args: str) -> list[str]:
    """argv running a Python snippet with the test's interpreter."""
    return [sys.executable, "-c", code, *args]


def wait_until(
    predicate: Callable[[], bool], *, timeout: float = DEFAULT_TIMEOUT, interval: float = 0.02
) -> bool:
    """Poll ``predicate`` until it is true or ``timeout`` passes; returns its last value.

    For conditions that have no event to wait on (another process's iptables work, a process exiting that is
    not our child). The interval only spaces the polls; correctness never depends on it.
    """
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


class Process:
    """A process started by a test, with line-oriented, timeout-bounded access to its stdin and stdout."""

    def __init__(self, argv: Sequence[str], *, env: dict[str, str] | None = None) -> None:
        self.argv = list(argv)
        self.popen: subprocess.Popen[bytes] = subprocess.Popen(
            self.argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env or child_env()
        )
        self.ready_line = ""
        self._buffer = b""

    @property
    def pid(self) -> int:
        return self.popen.pid

    def read_line(self, timeout: float = DEFAULT_TIMEOUT) -> str:
        """The next stdout line without its newline. Raises if none arrives in time or stdout ends first."""
        assert self.popen.stdout is not None
        fd = self.popen.stdout.fileno()
        deadline = time.monotonic() + timeout
        with selectors.DefaultSelector() as selector:
            selector.register(fd, selectors.EVENT_READ)
            while b"\n" not in self._buffer:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not selector.select(remaining):
                    raise TimeoutError(f"no line from {self.argv[:4]} within {timeout:g} s")
                chunk = os.read(fd, 65536)
                if not chunk:
                    status = self.popen.wait(timeout=DEFAULT_TIMEOUT)
                    raise EOFError(f"{self.argv[:4]} closed stdout (exit status {status}) before a full line")
                self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        return line.decode()

    def wait_ready(self, timeout: float = DEFAULT_TIMEOUT) -> str:
        """Read the first line (the process prints it once it is ready) and keep it in ``ready_line``."""
        self.ready_line = self.read_line(timeout)
        return self.ready_line

    def write_line(self, text: str) -> None:
        assert self.popen.stdin is not None
        self.popen.stdin.write(text.encode() + b"\n")
        self.popen.stdin.flush()

    def request(self, text: str, timeout: float = DEFAULT_TIMEOUT) -> str:
        """Write one line and return the next line of the answer."""
        self.write_line(text)
        return self.read_line(timeout)

    def close_stdin(self) -> None:
        if self.popen.stdin is not None and not self.popen.stdin.closed:
            with suppress(BrokenPipeError):
                self.popen.stdin.close()

    def wait(self, timeout: float = DEFAULT_TIMEOUT) -> int:
        return self.popen.wait(timeout=timeout)

    def kill(self) -> int:
        """SIGKILL and reap it; returns the exit status."""
        if self.popen.poll() is None:
            self.popen.kill()
        return self.popen.wait(timeout=DEFAULT_TIMEOUT)

    def stop(self, timeout: float = DEFAULT_TIMEOUT) -> int:
        """SIGTERM, then SIGKILL if it has not exited within ``timeout``; closes the pipes."""
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
        status = self.popen.wait(timeout=DEFAULT_TIMEOUT)
        self.close_stdin()
        if self.popen.stdout is not None:
            self.popen.stdout.close()
        return status

    def __enter__(self) -> Process:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def start_process(
    argv: Sequence[str], *, ready: bool = True, ready_timeout: float = DEFAULT_TIMEOUT
) -> Process:
    """Start ``argv`` (in the caller's namespace); with ``ready`` wait for its first stdout line."""
    process = Process(argv)
    if ready:
        try:
            process.wait_ready(ready_timeout)
        except BaseException:
            process.kill()
            raise
    return process


@dataclass
class Netns:
    """A network namespace bound at ``/run/netns/NAME``, with its loopback up."""

    name: str
    _processes: list[Process] = field(default_factory=list, repr=False)

    @property
    def path(self) -> Path:
        return NETNS_DIR / self.name

    @property
    def target(self) -> str:
        """The pymirrord target string for this namespace."""
        return f"netns/{self.name}"

    def exec_argv(self, argv: Sequence[str]) -> list[str]:
        """``argv`` wrapped to run inside this namespace (`ip netns exec` then execs it: same pid)."""
        return ["ip", "netns", "exec", self.name, *argv]

    def run(
        self, *argv: str, check: bool = True, timeout: float = DEFAULT_TIMEOUT, input: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run a command inside the namespace to completion."""
        return run(self.exec_argv(argv), check=check, timeout=timeout, input=input)

    def python(
        self, code: str, *args: str, check: bool = True, timeout: float = DEFAULT_TIMEOUT
    ) -> subprocess.CompletedProcess[str]:
        """Run a Python snippet inside the namespace to completion (``sys.argv[1:]`` = ``args``)."""
        return self.run(*python_argv(code, *args), check=check, timeout=timeout)

    def start(self, *argv: str, ready: bool = True, ready_timeout: float = DEFAULT_TIMEOUT) -> Process:
        """Start a process inside the namespace; with ``ready`` wait for its first stdout line.

        The process is stopped when the namespace is deleted, if the test has not stopped it before.
        """
        process = start_process(self.exec_argv(argv), ready=ready, ready_timeout=ready_timeout)
        self._processes.append(process)
        return process

    def start_python(
        self, code: str, *args: str, ready: bool = True, ready_timeout: float = DEFAULT_TIMEOUT
    ) -> Process:
        """``start`` for a Python snippet."""
        return self.start(*python_argv(code, *args), ready=ready, ready_timeout=ready_timeout)

    def pids(self) -> list[int]:
        """Every process whose network namespace this is (including ones that entered it by setns)."""
        result = run(["ip", "netns", "pids", self.name], check=False)
        return [int(p) for p in result.stdout.split()]

    def nat_rules(self, *, ipv6: bool = False) -> str:
        """``iptables -t nat -S`` (or ip6tables) inside the namespace."""
        return self.run("ip6tables" if ipv6 else "iptables", "-w", "10", "-t", "nat", "-S").stdout


def create_netns(name: str | None = None) -> Netns:
    """Create a namespace with a unique name (or ``name``) and bring its loopback up."""
    ns = Netns(name or unique_name())
    run(["ip", "netns", "add", ns.name])
    try:
        run(["ip", "-n", ns.name, "link", "set", "lo", "up"])
    except BaseException:
        delete_netns(ns)
        raise
    return ns


def delete_netns(ns: Netns) -> None:
    """Stop the processes started in it, kill any others still inside it, and delete it. Never raises."""
    for process in ns._processes:
        # Best effort: teardown must go on to delete the namespace.
        with suppress(Exception):
            process.kill()
    for pid in ns.pids() if ns.path.exists() else []:
        with suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    # Deleting drops the name; the kernel frees the namespace (and its veth ends) once nothing uses it.
    run(["ip", "netns", "delete", ns.name], check=False)


@contextmanager
def netns(name: str | None = None) -> Iterator[Netns]:
    """A namespace for the duration of a ``with`` block, deleted however the block ends."""
    ns = create_netns(name)
    try:
        yield ns
    finally:
        delete_netns(ns)


def random_subnet() -> tuple[str, str]:
    """Two addresses of a random 10.2xx.x.0/24 (they only ever exist inside test namespaces)."""
    base = f"10.{random.randint(200, 254)}.{random.randint(0, 255)}"
    return f"{base}.1", f"{base}.2"


@dataclass(frozen=True)
class Topology:
    """A "pod" and a "client" namespace joined by a veth pair: the client reaches the pod at ``pod_ip``."""

    pod: Netns
    client: Netns
    pod_ip: str
    client_ip: str
    pod_interface: str
    client_interface: str
    prefix_len: int = 24


def connect(a: Netns, b: Netns, a_ip: str, b_ip: str, prefix_len: int = 24) -> tuple[str, str]:
    """Join two namespaces with a veth pair, address and raise both ends; returns the interface names."""
    # Interface names are at most 15 characters; created directly inside the namespaces, so the host's
    # interface list is never touched.
    tag = secrets.token_hex(3)
    a_if, b_if = f"pmd{tag}a", f"pmd{tag}b"
    run(["ip", "-n", a.name, "link", "add", a_if, "type", "veth", "peer", "name", b_if, "netns", b.name])
    for ns, ifname, ip in ((a, a_if, a_ip), (b, b_if, b_ip)):
        run(["ip", "-n", ns.name, "addr", "add", f"{ip}/{prefix_len}", "dev", ifname])
        run(["ip", "-n", ns.name, "link", "set", ifname, "up"])
    return a_if, b_if


@contextmanager
def topology() -> Iterator[Topology]:
    """A fresh pod/client ``Topology``; both namespaces are deleted however the block ends."""
    name = unique_name()
    with netns(f"{name}-pod") as pod, netns(f"{name}-client") as client:
        pod_ip, client_ip = random_subnet()
        pod_if, client_if = connect(pod, client, pod_ip, client_ip)
        yield Topology(pod, client, pod_ip, client_ip, pod_if, client_if)
