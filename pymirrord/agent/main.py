"""``pymirrord agent``: start-up, the serving loop and an orderly shutdown.

The order matters and is the reason this module exists:

1. parse the target, so a typo fails before anything is made;
2. make the websocket's listening socket in the *current* (host) namespace, where sessions can reach it;
3. enter the target's network namespace on the main thread, before any thread exists (threads inherit the
   namespace of the thread that creates them, and the event loop's executors make threads later);
4. remove the rules of agents that died without removing theirs;
5. spawn the guard, which removes this agent's rules if it dies without doing so itself (SIGKILL included);
6. make the redirect listener (inside the target) and install this agent's chains;
7. print one JSON line on stdout and serve:
   ``{"event": "ready", "address": "HOST:PORT", "agent_id": "..."}``.

Everything else the agent says goes to stderr. SIGTERM and SIGINT close the sessions, remove every rule,
release the guard and exit 0.

``--targetless`` skips steps 3 to 6: the agent stays in its own namespace (in Kubernetes, an unprivileged
pod), needs no privileges, and serves outgoing connections and DNS (with its own ``/etc``) only; a port
subscription is refused with a hint to pick a target.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import json
import logging
import os
import shutil
import signal
import socket
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType

from pymirrord import event_loop
from pymirrord.agent.capture import Capture
from pymirrord.agent.container import find_container_pid
from pymirrord.agent.dns import Resolver
from pymirrord.agent.environ import target_environment
from pymirrord.agent.errors import AgentError
from pymirrord.agent.guard import Guard, spawn_guard
from pymirrord.agent.handover import HandoverChannels, private_directory
from pymirrord.agent.incoming import Incoming
from pymirrord.agent.iptables import RedirectRules, new_agent_id, remove_stale
from pymirrord.agent.outgoing import Outgoing
from pymirrord.agent.server import AgentServer, EnvironmentSource
from pymirrord.agent.subscriptions import Subscriptions
from pymirrord.agent.target import LocalTarget, enter_network_namespace, parse_target
from pymirrord.open_files import raise_open_files_limit
from pymirrord.privileges import missing_here
from pymirrord.protocol.types import SocketAddress

log = logging.getLogger("pymirrord.agent")

TOKEN_ENV = "PYMIRRORD_AGENT_TOKEN"
"""The environment variable holding the session token (never on the command line, where `ps` shows it)."""
DEFAULT_LISTEN = "127.0.0.1:0"
BYPASS_MARK = 0x706D64
"""SO_MARK of the agent's own connections to the pod's app ("pmd"). Every agent uses the same mark, so one
agent's passthrough is not caught by another agent's redirect of the same port."""
REDIRECT_BACKLOG = 1024
TARGETLESS = "targetless"
MIRROR_CAPTURE_ENV = "PYMIRRORD_MIRROR_CAPTURE"
"""``0``: ports that are only mirrored are redirected through the agent, as stolen ones are, instead of
captured (``pymirrord.agent.captured_mirror``)."""


class _Terminated(Exception):
    """SIGTERM before the event loop took over the signal: unwind through the clean-up code."""


def run(args: argparse.Namespace) -> int:
    """The ``agent`` subcommand: ``args.target`` (or ``container_id``, or ``targetless``), ``args.listen``,
    ``args.idle_timeout`` (seconds or None)."""
    _configure_logging(verbose=getattr(args, "verbose", False))
    token = os.environ.get(TOKEN_ENV, "")
    if not token:
        raise AgentError(
            f"{TOKEN_ENV} is not set",
            f"the agent reads the token that sessions must present from the environment variable {TOKEN_ENV}",
        )
    idle_timeout: float | None = args.idle_timeout
    if idle_timeout is not None and not idle_timeout > 0:
        raise AgentError(f"--idle-timeout must be a positive number of seconds, got {idle_timeout:g}")
    listen = parse_listen(args.listen)
    target: LocalTarget | None = None
    if not getattr(args, "targetless", False):
        require_privileges()
        if getattr(args, "container_id", None):
            target = parse_target(f"pid/{find_container_pid(args.container_id)}")
        else:
            target = parse_target(args.target)

    raise_open_files_limit()
    previous_term = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        with _listen_socket(listen) as ws_sock:
            if target is None:
                return _run_targetless(ws_sock, token, idle_timeout)
            return _run_in_target(target, ws_sock, token, idle_timeout)
    except _Terminated:
        log.info("terminated during start-up; cleaned up")
        return 0
    finally:
        signal.signal(signal.SIGTERM, previous_term)


def _run_targetless(ws_sock: socket.socket, token: str, idle_timeout: float | None) -> int:
    """Serve outgoing traffic and DNS from this process's own network: nothing to enter, redirect or guard."""
    agent_id = new_agent_id()
    log.info(
        "agent %s serving targetless, on %s: outgoing connections and DNS only", agent_id, event_loop.name()
    )
    serving = _serve(
        ws_sock=ws_sock,
        redirect=None,
        token=token,
        target=TARGETLESS,
        etc_dir=lambda: Path("/etc"),
        agent_id=agent_id,
        idle_timeout=idle_timeout,
        environment=None,
    )
    return event_loop.run(serving)


def _run_in_target(
    target: LocalTarget, ws_sock: socket.socket, token: str, idle_timeout: float | None
) -> int:
    enter_network_namespace(target)
    _remove_stale_rules()
    agent_id = new_agent_id()
    handover_dir = private_directory()
    guard = spawn_guard(agent_id, remove_dirs=[handover_dir])
    rules_removed = False
    try:
        with socket.create_server(("0.0.0.0", 0), backlog=REDIRECT_BACKLOG) as redirect_sock:
            redirect_port = redirect_sock.getsockname()[1]
            rules = RedirectRules(agent_id, redirect_port, BYPASS_MARK)
            try:
                rules.install()
                log.info(
                    "agent %s serving %s on %s; redirected connections arrive on port %d",
                    agent_id,
                    target,
                    event_loop.name(),
                    redirect_port,
                )
                serving = _serve(
                    ws_sock=ws_sock,
                    redirect=(redirect_sock, rules, handover_dir),
                    token=token,
                    target=str(target),
                    etc_dir=lambda: target.etc_dir,
                    agent_id=agent_id,
                    idle_timeout=idle_timeout,
                    environment=lambda: target_environment(target),
                )
                return event_loop.run(serving)
            finally:
                # A second Ctrl-C must not cut the removal short.
                _ignore_stop_signals()
                rules_removed = rules.remove_all()
                if not rules_removed:
                    log.warning("some rules of agent %s may be left; the guard tries again", agent_id)
    finally:
        _ignore_stop_signals()
        shutil.rmtree(handover_dir, ignore_errors=True)
        _finish_guard(guard, rules_removed)


async def _serve(
    *,
    ws_sock: socket.socket,
    redirect: tuple[socket.socket, RedirectRules, str] | None,
    token: str,
    target: str,
    etc_dir: Callable[[], Path],
    agent_id: str,
    idle_timeout: float | None,
    environment: EnvironmentSource | None,
) -> int:
    """Serve sessions until a stop signal or ``idle_timeout``; ``redirect`` (the redirect listener, this
    agent's rules and the handover channel's directory) is None for a targetless agent, which takes no
    incoming traffic and hands nothing over."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    stop_reason: list[str] = []

    def request_stop(name: str) -> None:
        stop_reason.append(name)
        stop.set()

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, request_stop, signal.Signals(signum).name)

    capture = redirect is not None and _can_capture()
    subscriptions = Subscriptions(capture_mirrors=capture)
    handover = HandoverChannels(redirect[2]) if redirect is not None else None
    try:
        if handover is not None:
            handover.start()
        incoming = Incoming(subscriptions, bypass_mark=BYPASS_MARK, handover=handover, capture=capture)
        # The target's resolv.conf and hosts are read afresh for every lookup. Without redirect rules there
        # is nothing to bypass (and an unprivileged agent may not set SO_MARK).
        outgoing = Outgoing(
            Resolver(etc_dir),
            bypass_mark=BYPASS_MARK if redirect is not None else None,
            handover=handover,
        )
        server = AgentServer(
            token=token,
            target=target,
            rules=redirect[1] if redirect is not None else None,
            subscriptions=subscriptions,
            incoming=incoming,
            handover=handover,
            outgoing=outgoing,
            environment=environment,
        )
        if redirect is not None:
            await incoming.start(redirect[0])
        await server.start(ws_sock)
        host, port = ws_sock.getsockname()[:2]
        ready = {"event": "ready", "address": str(SocketAddress(host, port)), "agent_id": agent_id}
        sys.stdout.write(json.dumps(ready) + "\n")
        sys.stdout.flush()

        waits: list[asyncio.Future[object]] = [asyncio.ensure_future(stop.wait())]
        if idle_timeout is not None:
            waits.append(asyncio.ensure_future(server.wait_idle(idle_timeout)))
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waits:
                waiter.cancel()
        if stop_reason:
            log.info("%s received; shutting down", stop_reason[0])
        else:
            log.info("no session for %g s; shutting down", idle_timeout)
        await server.close()
        await incoming.close()
        await outgoing.close_all()
    finally:
        if handover is not None:
            await handover.close()
    return 0


def parse_listen(text: str) -> SocketAddress:
    """``HOST:PORT`` or ``[V6HOST]:PORT`` (port 0: any free port)."""
    host, sep, port_text = text.rpartition(":")
    hint = "write --listen HOST:PORT, e.g. 127.0.0.1:0 (port 0 picks a free port) or [::1]:7000"
    if not sep or not host or not port_text.isdecimal() or int(port_text) > 65535:
        raise AgentError(f"invalid --listen address {text!r}", hint)
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    try:
        ipaddress.ip_address(host)
    except ValueError:
        raise AgentError(f"invalid --listen address {text!r}: {host!r} is not an IP address", hint) from None
    return SocketAddress(host, int(port_text))


def require_privileges(status_path: Path = Path("/proc/self/status")) -> None:
    """Fail early, with a hint, without the capabilities that entering a namespace and iptables need."""
    missing = missing_here(status_path)
    if missing:
        raise AgentError(
            f"the agent lacks {' and '.join(missing)}: it cannot enter the target or redirect ports",
            "run it as root (sudo), or grant it CAP_SYS_ADMIN and CAP_NET_ADMIN",
        )


@contextlib.contextmanager
def _listen_socket(address: SocketAddress) -> Iterator[socket.socket]:
    family = socket.AF_INET6 if ":" in address.host else socket.AF_INET
    try:
        sock = socket.create_server((address.host, address.port), family=family)
    except OSError as exc:
        raise AgentError(
            f"cannot listen on {address}: {exc.strerror or exc}",
            "choose another --listen address, or port 0 for any free port",
        ) from exc
    with sock:
        yield sock


def _remove_stale_rules() -> None:
    scan = remove_stale()
    for agent in scan.stale:
        log.warning("removed rules left behind by a dead agent: %s", agent.describe())
    for agent in scan.live:
        log.info("another live agent also works in this namespace: %s", agent.describe())


def _can_capture() -> bool:
    """Whether mirrored ports are captured rather than redirected (see ``MIRROR_CAPTURE_ENV``)."""
    if os.environ.get(MIRROR_CAPTURE_ENV) == "0":
        log.info("mirrored ports are redirected through the agent (%s=0)", MIRROR_CAPTURE_ENV)
        return False
    why_not = Capture.available()
    if why_not is not None:
        log.info(
            "mirrored ports are redirected through the agent: packet capture is not possible (%s)", why_not
        )
        return False
    return True


def _finish_guard(guard: Guard, rules_removed: bool) -> None:
    if rules_removed:
        guard.release()
        return
    # Closing the pipe is what the guard sees when the agent dies: it removes whatever is left.
    status = guard.close()
    if status != 0:
        log.error("the guard could not remove every rule; check `iptables -t nat -S` in the target")


def _raise_terminated(signum: int, frame: FrameType | None) -> None:
    raise _Terminated


def _ignore_stop_signals() -> None:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _configure_logging(*, verbose: bool) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(f"pymirrord agent[{os.getpid()}]: %(levelname)s %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    # websockets logs every handshake and rejection itself; ours are the lines that matter.
    logging.getLogger("websockets").setLevel(logging.WARNING)
