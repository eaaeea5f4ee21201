"""The debugger's own connections, which must never be intercepted.

An IDE runs the app under a debugger that connects back to the IDE on this machine's loopback: VS Code's
debugpy (``python .../debugpy --connect 127.0.0.1:PORT ... app.py``, and its launcher
``python .../debugpy/launcher PORT -- ...``) and PyCharm's pydevd (``python .../pydevd.py --client 127.0.0.1
--port PORT --file app.py``). The port is read from the command line. mirrord's two variables are honoured:

- ``MIRRORD_DETECT_DEBUGGER_PORT`` = ``debugpy`` or ``pydevd``: look for that debugger's port (other values
  name debuggers of other languages and are ignored). Once found, the variable is removed and
  ``MIRRORD_IGNORE_DEBUGGER_PORTS`` is set to the port, so the app's child processes leave it alone too.
- ``MIRRORD_IGNORE_DEBUGGER_PORTS`` = ``PORT`` or ``FIRST-LAST``: loopback connections to these ports
  stay local.

pymirrord also recognises debugpy and pydevd without the first variable: an IDE that does not set it must
still find its debugger working.
"""

from __future__ import annotations

import os
import sys
from collections.abc import MutableMapping
from typing import TYPE_CHECKING

if TYPE_CHECKING or __package__:
    from pymirrord.layer.pymirrord_layer_policy import is_localhost_name, is_loopback
else:
    from pymirrord_layer_policy import is_localhost_name, is_loopback

DETECT_ENV = "MIRRORD_DETECT_DEBUGGER_PORT"
IGNORE_ENV = "MIRRORD_IGNORE_DEBUGGER_PORTS"
KINDS = ("debugpy", "pydevd")
OTHER_KINDS = ("resharper", "javaagent")


class DebuggerPorts:
    """Loopback ports (single ones and ranges) that belong to the debugger."""

    def __init__(self, ranges: tuple[tuple[int, int], ...] = ()) -> None:
        self.ranges = ranges

    def __bool__(self) -> bool:
        return bool(self.ranges)

    def contains(self, host: str, port: int) -> bool:
        if not self.ranges or not (is_loopback(host) or is_localhost_name(host)):
            return False
        return any(first <= port <= last for first, last in self.ranges)


def command_line() -> list[str]:
    """This process's full command line, interpreter included (``sys.argv`` lacks it)."""
    try:
        with open("/proc/self/cmdline", "rb") as handle:
            raw = handle.read()
    except OSError:
        raw = b""
    if raw:
        return [part.decode("utf-8", "surrogateescape") for part in raw.rstrip(b"\0").split(b"\0")]
    orig: list[str] = list(getattr(sys, "orig_argv", None) or [])
    return orig or [sys.executable, *sys.argv]


def _host_port(text: str, default_host: str = "127.0.0.1") -> tuple[str, int] | None:
    host, sep, port = text.rpartition(":")
    if not sep:
        host, port = default_host, text
    host = host.strip("[]") or default_host
    if not port.isdigit() or not 0 < int(port) <= 65535:
        return None
    return host, int(port)


def _option(argv: list[str], name: str) -> str | None:
    for index, arg in enumerate(argv):
        if arg == name and index + 1 < len(argv):
            return argv[index + 1]
        if arg.startswith(name + "="):
            return arg[len(name) + 1 :]
    return None


_OPTIONS_WITH_VALUE = ("-X", "-W", "--check-hash-based-pycs")


def _program(argv: list[str]) -> tuple[str, int]:
    """What the interpreter runs (a script path, or ``-m``'s module as ``module/path``), and where its own
    arguments start; interpreter options such as ``-X frozen_modules=off`` (debugpy adds it) are skipped."""
    index = 1
    while index < len(argv):
        arg = argv[index]
        if arg in _OPTIONS_WITH_VALUE:
            index += 2
        elif arg == "-m":
            module = argv[index + 1] if index + 1 < len(argv) else ""
            return module.replace(".", "/"), index + 2
        elif arg.startswith("-") and arg not in ("-", "-c"):
            index += 1
        else:
            return (arg if arg != "-c" else ""), index + 1
    return "", index


def _runs(program: str, module: str) -> bool:
    """Whether ``program`` is ``module`` (a path ending in it, or the module run by ``-m``)."""
    return bool(program) and program.rstrip("/").replace("\\", "/").endswith(module)


def debugger_port(kind: str, argv: list[str]) -> tuple[str, int] | None:
    """The debugger's ``(host, port)`` from a command line of debugger ``kind``, or None."""
    if not argv or not os.path.basename(argv[0]).startswith("py"):
        return None
    program, rest = _program(argv)
    if kind == "debugpy":
        if _runs(program, "debugpy/launcher"):
            # The launcher's first argument is the adapter's [host:]port.
            return _host_port(argv[rest]) if rest < len(argv) else None
        if _runs(program, "debugpy"):
            value = _option(argv[rest:], "--connect")
            return _host_port(value) if value else None
        return None
    if kind == "pydevd":
        if "pydevd" not in os.path.basename(program.rstrip("/")):
            return None
        host, port = _option(argv[rest:], "--client"), _option(argv[rest:], "--port")
        if host is None or port is None or not port.isdigit():
            return None
        return host, int(port)
    return None


def parse_range(text: str) -> tuple[int, int] | None:
    parts = text.strip().split("-")
    if not all(part.isdigit() for part in parts) or len(parts) not in (1, 2):
        return None
    first, last = int(parts[0]), int(parts[-1])
    if not 0 < first <= last <= 65535:
        return None
    return first, last


def detect(argv: list[str], environ: MutableMapping[str, str]) -> tuple[DebuggerPorts, list[str]]:
    """The debugger's ports for this process, and warnings about malformed variables.

    Updates ``environ`` (the process's environment) as mirrord does when a port is detected.
    """
    warnings: list[str] = []
    requested = environ.get(DETECT_ENV, "").strip().lower()
    if requested and requested not in KINDS and requested not in OTHER_KINDS:
        warnings.append(f"{DETECT_ENV}={requested!r} names no known debugger (debugpy or pydevd)")
    kinds = [requested] if requested in KINDS else list(KINDS)
    detected: tuple[str, int] | None = None
    for kind in kinds:
        detected = debugger_port(kind, argv)
        if detected is not None:
            break
    ranges: list[tuple[int, int]] = []
    ignore = environ.get(IGNORE_ENV, "")
    parsed = parse_range(ignore) if ignore else None
    if parsed is not None:
        ranges.append(parsed)
    elif ignore:
        warnings.append(f"{IGNORE_ENV}={ignore!r} is neither a port nor a range like 45000-65535")
    if detected is not None:
        host, port = detected
        if not (is_loopback(host) or is_localhost_name(host)):
            warnings.append(
                f"the debugger connects to {host}:{port}, not to loopback; its connection is not kept local"
            )
        else:
            ranges.insert(0, (port, port))
            environ.pop(DETECT_ENV, None)
            if parsed is None:
                environ[IGNORE_ENV] = str(port)
    return DebuggerPorts(tuple(ranges)), warnings
