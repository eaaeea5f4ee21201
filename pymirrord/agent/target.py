"""Local targets: which network namespace the agent works in, and how it gets there.

A local target is written ``netns/NAME`` (a namespace named by ``ip netns add NAME``, bound at
``/run/netns/NAME``) or ``pid/PID`` (the network namespace of a running process, ``/proc/PID/ns/net``).
``parse_target`` turns such a string into a ``LocalTarget`` and checks that it exists, so that a typo fails at
once with a message that names what does exist; ``enter_network_namespace`` moves the calling thread into it.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import functools
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pymirrord.agent.errors import (
    InvalidTarget,
    NamespaceEntryFailed,
    TargetNotFound,
    TargetPermissionDenied,
)

NETNS_DIR = Path("/run/netns")
PROC_DIR = Path("/proc")
ETC_DIR = Path("/etc")

# From <linux/sched.h>; the value setns(2) expects to make sure the fd really is a network namespace.
CLONE_NEWNET = 0x40000000

TargetKind = Literal["netns", "pid"]

_FORMS_HINT = (
    "a local target is netns/NAME (a namespace listed by `ip netns list`) "
    "or pid/PID (a running process whose network namespace to use)"
)
_PRIVILEGE_HINT = (
    "run the agent as root (or with CAP_SYS_ADMIN, plus CAP_SYS_PTRACE for other users' processes)"
)


@dataclass(frozen=True)
class LocalTarget:
    """A network namespace on this machine that the agent can enter.

    ``name_or_pid`` is the namespace name for ``netns`` targets and the decimal pid for ``pid`` targets.
    """

    kind: TargetKind
    name_or_pid: str
    netns_path: Path

    def __str__(self) -> str:
        return f"{self.kind}/{self.name_or_pid}"

    @property
    def etc_dir(self) -> Path:
        """The directory holding the target's ``resolv.conf`` and ``hosts``, as its processes see them."""
        return self.etc_dir_under(ETC_DIR)

    def etc_dir_under(self, etc_root: Path) -> Path:
        """``etc_dir`` with the host's ``/etc`` replaced by ``etc_root`` (for tests)."""
        if self.kind == "pid":
            # The process may live in its own mount namespace (a container): its /etc is reachable through
            # its root link. netns_path is <proc>/PID/ns/net, so its grandparent is <proc>/PID.
            return self.netns_path.parent.parent / "root" / "etc"
        # `ip netns exec` bind-mounts /etc/netns/NAME/* over /etc, so that folder is what the pod sees when
        # it exists; otherwise the namespace shares the host's /etc.
        per_namespace = etc_root / "netns" / self.name_or_pid
        return per_namespace if per_namespace.is_dir() else etc_root


def list_network_namespaces(netns_dir: Path = NETNS_DIR) -> list[str]:
    """The names of the namespaces bound in ``netns_dir`` (what `ip netns list` shows), sorted."""
    try:
        return sorted(entry.name for entry in netns_dir.iterdir())
    except OSError:
        return []


def parse_target(text: str, *, netns_dir: Path = NETNS_DIR, proc_dir: Path = PROC_DIR) -> LocalTarget:
    """Turn ``netns/NAME`` or ``pid/PID`` into a ``LocalTarget`` whose namespace exists right now.

    Raises ``InvalidTarget`` for other forms, ``TargetNotFound`` when the namespace or process is missing,
    ``TargetPermissionDenied`` when this process may not inspect it.
    """
    kind, sep, rest = text.partition("/")
    if not sep:
        raise InvalidTarget(f"unknown target {text!r}", _FORMS_HINT)
    if kind == "netns":
        return _parse_netns(text, rest, netns_dir)
    if kind == "pid":
        return _parse_pid(text, rest, proc_dir)
    raise InvalidTarget(f"unknown target kind {kind!r} in {text!r}", _FORMS_HINT)


def _parse_netns(text: str, name: str, netns_dir: Path) -> LocalTarget:
    # `ip netns` refuses names with a slash, and "." or ".." would escape netns_dir.
    if not name or "/" in name or "\0" in name or name in {".", ".."}:
        raise InvalidTarget(f"invalid namespace name in target {text!r}", _FORMS_HINT)
    path = netns_dir / name
    try:
        exists = path.exists()
    except PermissionError as exc:
        raise TargetPermissionDenied(
            f"cannot look at network namespace {name!r}: {exc}", _PRIVILEGE_HINT
        ) from exc
    if not exists:
        existing = list_network_namespaces(netns_dir)
        if existing:
            hint = "existing namespaces: " + ", ".join(existing)
        else:
            hint = f"there are no namespaces in {netns_dir}; create one with `ip netns add NAME`"
        raise TargetNotFound(f"network namespace {name!r} not found in {netns_dir}", hint)
    return LocalTarget("netns", name, path)


def _parse_pid(text: str, digits: str, proc_dir: Path) -> LocalTarget:
    # isdecimal() alone accepts non-ASCII digits, which int() would take but no pid is written with.
    if not (digits.isascii() and digits.isdecimal()) or int(digits) <= 0:
        raise InvalidTarget(
            f"invalid pid in target {text!r}", "PID is a positive decimal number, e.g. pid/1234"
        )
    pid = int(digits)
    process_dir = proc_dir / str(pid)
    not_running = TargetNotFound(
        f"no running process with pid {pid}", "check the pid with `ps -p PID`; the process may have exited"
    )
    try:
        state = read_process_state(process_dir)
    except FileNotFoundError:
        raise not_running from None
    except PermissionError as exc:
        raise TargetPermissionDenied(f"cannot look at process {pid}: {exc}", _PRIVILEGE_HINT) from exc
    if state in {"Z", "X"}:
        # A zombie has no namespaces left to enter.
        raise not_running
    path = process_dir / "ns" / "net"
    try:
        os.stat(path)
    except FileNotFoundError:
        raise not_running from None
    except PermissionError as exc:
        raise TargetPermissionDenied(
            f"cannot look at the network namespace of process {pid}: permission denied", _PRIVILEGE_HINT
        ) from exc
    return LocalTarget("pid", str(pid), path)


def read_process_state(process_dir: Path) -> str:
    """The one-letter state (field 3) of ``<proc>/PID/stat``."""
    stat = (process_dir / "stat").read_text()
    # The command name (field 2) is in parentheses and may itself contain spaces and parentheses.
    return stat[stat.rindex(")") + 2 :].split(maxsplit=1)[0]


def network_namespace_id(path: Path | str) -> tuple[int, int]:
    """(device, inode) of a namespace file: equal ids mean the same namespace."""
    st = os.stat(path)
    return (st.st_dev, st.st_ino)


def in_network_namespace(target: LocalTarget) -> bool:
    """Whether the calling thread already is in the target's network namespace."""
    return network_namespace_id("/proc/thread-self/ns/net") == network_namespace_id(target.netns_path)


def enter_network_namespace(target: LocalTarget) -> None:
    """Move the calling thread into the target's network namespace.

    setns(2) changes only the calling thread, and a new thread starts in the namespace of the thread that
    creates it. Call this on the main thread before any other thread starts (asyncio's default executor,
    logging handlers with threads, ...), so that every thread, and every socket they create, lives in the
    target's namespace. Sockets created earlier (the websocket listener in the host's namespace) stay where
    they were made. Child processes started afterwards inherit the target's namespace.
    """
    if threading.current_thread() is not threading.main_thread() or threading.active_count() > 1:
        raise NamespaceEntryFailed(
            f"cannot enter {target}: other threads are already running",
            "enter the network namespace on the main thread before starting any thread",
        )
    try:
        fd = os.open(target.netns_path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise TargetNotFound(
            f"{target} no longer exists", "the namespace was deleted or the process exited"
        ) from None
    except PermissionError as exc:
        raise TargetPermissionDenied(
            f"cannot open the network namespace of {target}: {exc}", _PRIVILEGE_HINT
        ) from exc
    try:
        _setns()(fd, CLONE_NEWNET)
    except OSError as exc:
        if exc.errno == errno.EPERM:
            raise NamespaceEntryFailed(
                f"not allowed to enter the network namespace of {target}", _PRIVILEGE_HINT
            ) from exc
        if exc.errno == errno.EINVAL:
            raise NamespaceEntryFailed(
                f"{target.netns_path} is not a network namespace", "check the target; " + _FORMS_HINT
            ) from exc
        raise NamespaceEntryFailed(
            f"cannot enter the network namespace of {target}: {exc}", _PRIVILEGE_HINT
        ) from exc
    finally:
        os.close(fd)


@functools.cache
def _setns() -> Callable[[int, int], None]:
    """os.setns (Python 3.12+), else the libc function through ctypes."""
    native: Callable[[int, int], None] | None = getattr(os, "setns", None)
    if native is not None:
        return native
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    libc_setns = libc.setns
    libc_setns.argtypes = [ctypes.c_int, ctypes.c_int]
    libc_setns.restype = ctypes.c_int

    def setns(fd: int, nstype: int) -> None:
        if libc_setns(fd, nstype) != 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err))

    return setns
