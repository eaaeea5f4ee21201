"""A guard process that removes an agent's iptables rules when the agent dies, even by SIGKILL.

The agent starts the guard with ``spawn_guard`` before it installs any rule. The guard blocks reading its
stdin, a pipe whose only writer is the agent. When the agent exits for any reason the kernel closes that pipe,
the guard reads end-of-file, removes the agent's chains and exits. On a clean shutdown the agent removes its
rules itself and calls ``Guard.release()``, which tells the guard to exit without doing anything.

Run as ``python -m pymirrord.agent.guard --agent-id ID [--ipv6] [--target netns/NAME|pid/PID]``. Without
``--target`` the guard works in the network namespace it was started in, so spawn it after ``setns`` (a child
inherits the namespace of the thread that starts it).
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import selectors
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import IO, BinaryIO

import pymirrord
from pymirrord.agent.errors import AgentError, GuardError
from pymirrord.agent.iptables import remove_agent_rules, validate_agent_id
from pymirrord.agent.target import enter_network_namespace, parse_target

log = logging.getLogger(__name__)

READY_LINE = b"ready\n"
RELEASE_LINE = b"release\n"
READY_TIMEOUT_SECONDS = 10.0
# Time for the guard to exit after release (no work) or after the pipe closes (a few iptables runs).
EXIT_TIMEOUT_SECONDS = 30.0


@dataclass
class Guard:
    """The agent's handle on its guard process."""

    agent_id: str
    process: subprocess.Popen[bytes]

    @property
    def pid(self) -> int:
        return self.process.pid

    def release(self, timeout: float = EXIT_TIMEOUT_SECONDS) -> int | None:
        """Tell the guard the rules are already gone, and wait for it to exit. Returns its exit status.

        Call this after ``RedirectRules.remove_all()`` on a clean shutdown.
        """
        return self._finish(RELEASE_LINE, timeout)

    def close(self, timeout: float = EXIT_TIMEOUT_SECONDS) -> int | None:
        """Close the pipe as if the agent had died, and wait until the guard has removed the rules.

        Returns the guard's exit status (0: nothing of the agent is left), None if it did not finish in time.
        """
        return self._finish(b"", timeout)

    def _finish(self, message: bytes, timeout: float) -> int | None:
        stdin = self.process.stdin
        if stdin is not None and not stdin.closed:
            try:
                if message:
                    stdin.write(message)
                    stdin.flush()
            except BrokenPipeError:
                pass  # the guard is already gone; wait() below collects its status
            finally:
                with contextlib.suppress(BrokenPipeError):
                    stdin.close()
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            log.warning("guard %d of agent %s did not exit within %g s", self.pid, self.agent_id, timeout)
            return None


def spawn_guard(
    agent_id: str,
    *,
    ipv6: bool = False,
    target: str | None = None,
    stderr: int | IO[bytes] | None = None,
    ready_timeout: float = READY_TIMEOUT_SECONDS,
    remove_dirs: Sequence[str] = (),
) -> Guard:
    """Start the guard for ``agent_id`` and wait until it is ready (it then ignores SIGINT).

    ``target`` (``netns/NAME`` or ``pid/PID``) makes the guard enter that namespace itself; without it the
    guard inherits the caller's namespace. ``stderr`` is where the guard logs (default: the caller's stderr).
    The guard never holds the caller's stdout, nor any other of its file descriptors.

    Do not ``os.fork()`` without exec afterwards: a forked copy would hold the pipe open and keep the guard
    waiting after the agent's death. (subprocess and exec'd children are fine: the pipe is close-on-exec.)
    """
    validate_agent_id(agent_id)
    argv = [sys.executable, "-m", "pymirrord.agent.guard", "--agent-id", agent_id]
    if ipv6:
        argv.append("--ipv6")
    if target is not None:
        argv += ["--target", target]
    for directory in remove_dirs:
        argv += ["--remove-dir", directory]
    # The guard runs from / so it pins no directory; make sure it imports this same pymirrord.
    package_root = str(Path(pymirrord.__file__).resolve().parent.parent)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
    try:
        process = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,  # only for the ready line; the guard has fd 1 on /dev/null by then
            stderr=stderr,
            close_fds=True,
            cwd="/",
            env=env,
            # Its own session: Ctrl-C and terminal hang-ups aimed at the agent's process group miss it.
            start_new_session=True,
        )
    except OSError as exc:
        raise GuardError(
            f"cannot start the rule guard: {exc}", "check that the Python interpreter runs"
        ) from exc
    assert process.stdout is not None
    try:
        output = _read_to_end(process.stdout, ready_timeout)
    finally:
        process.stdout.close()
    if output != READY_LINE:
        if process.poll() is None:
            process.kill()
        status = process.wait()
        reason = "did not report ready in time" if output is None else f"exited with status {status}"
        raise GuardError(
            f"the rule guard of agent {agent_id} {reason}", "see the guard's messages above on stderr"
        )
    return Guard(agent_id, process)


def _read_to_end(stream: IO[bytes], timeout: float) -> bytes | None:
    """Everything a pipe delivers until end-of-file, or None if that takes longer than ``timeout``."""
    fd = stream.fileno()
    data = b""
    deadline = time.monotonic() + timeout
    with selectors.DefaultSelector() as selector:
        selector.register(fd, selectors.EVENT_READ)
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not selector.select(remaining):
                return None
            chunk = os.read(fd, 4096)
            if not chunk:
                return data
            data += chunk


# --- the guard process --------------------------------------------------------------------------------------


class _Terminated(Exception):
    """SIGTERM or SIGHUP arrived: clean up now."""


def wait_for_release(stream: BinaryIO) -> bool:
    """Block until the agent releases the guard (True) or the pipe closes (False)."""
    # Other lines are ignored, leaving room for more messages later.
    return any(line == RELEASE_LINE for line in iter(stream.readline, b""))


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m pymirrord.agent.guard",
        description="Remove a pymirrord agent's iptables rules once the agent exits (stdin closes).",
    )
    parser.add_argument("--agent-id", required=True, help="the agent whose chains to remove")
    parser.add_argument("--ipv6", action="store_true", help="also remove the agent's ip6tables chains")
    parser.add_argument("--target", help="enter this netns/NAME or pid/PID first")
    parser.add_argument(
        "--remove-dir",
        action="append",
        default=[],
        metavar="DIR",
        help="also remove this directory of the agent's",
    )
    return parser.parse_args(argv)


def _report_ready() -> None:
    """Tell spawn_guard that the signal setup is done, and let go of the pipe so that nobody reading the
    agent's output waits for the guard: fd 1 becomes /dev/null first, then the last copy of the pipe is
    closed, and the end-of-file spawn_guard waits for proves that the guard holds no pipe of its parent."""
    ready_fd = os.dup(1)
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)
        os.close(devnull)
        os.write(ready_fd, READY_LINE)
    finally:
        os.close(ready_fd)


def main(argv: Sequence[str] | None = None) -> int:
    # Ctrl-C in a terminal reaches the whole foreground process group; the guard must outlive the agent.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    logging.basicConfig(level=logging.INFO, format=f"pymirrord guard[{os.getpid()}]: %(message)s")
    args = parse_args(argv)
    try:
        validate_agent_id(args.agent_id)
        if args.target is not None:
            enter_network_namespace(parse_target(args.target))
    except ValueError as exc:
        log.error("%s", exc)
        return 2
    except AgentError as exc:
        log.error("%s", exc.render())
        return 2

    def terminate(signum: int, frame: FrameType | None) -> None:
        raise _Terminated

    # Someone stopping the guard (or the whole session) still wants the rules gone.
    signal.signal(signal.SIGTERM, terminate)
    signal.signal(signal.SIGHUP, terminate)

    try:
        # Inside the try: the signal that stops the guard may come the moment spawn_guard sees it ready.
        _report_ready()
        released = wait_for_release(sys.stdin.buffer)
    except _Terminated:
        released = False
    # Removal must not be cut short by a second signal.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    if released:
        return 0
    for directory in args.remove_dir:
        shutil.rmtree(directory, ignore_errors=True)
    removal = remove_agent_rules(args.agent_id, ipv6=args.ipv6)
    for agent in removal.found:
        log.info("agent %s is gone; removed its leftover rules: %s", args.agent_id, agent.describe())
    if removal.ok:
        return 0
    log.error("some rules of agent %s could not be removed; see `iptables -t nat -S`", args.agent_id)
    return 1


if __name__ == "__main__":
    sys.exit(main())
