"""Whether this process may enter network namespaces and change iptables rules.

Both need CAP_SYS_ADMIN and CAP_NET_ADMIN (root has them). The agent checks before it starts, and
``pymirrord exec`` checks before it starts an agent for a local target, so that a user without them
gets one clear message instead of a failure half way.
"""

from __future__ import annotations

from pathlib import Path

CAP_NET_ADMIN = 12
CAP_SYS_ADMIN = 21
NEEDED = (("CAP_SYS_ADMIN", CAP_SYS_ADMIN), ("CAP_NET_ADMIN", CAP_NET_ADMIN))


def missing_capabilities(status: str) -> list[str]:
    """The needed capabilities absent from a ``/proc/PID/status`` text's effective set.

    A text without a readable ``CapEff`` line yields nothing: then the real operations report.
    """
    for line in status.splitlines():
        name, _, value = line.partition(":")
        if name == "CapEff":
            try:
                effective = int(value.strip(), 16)
            except ValueError:
                return []
            return [name for name, bit in NEEDED if not effective >> bit & 1]
    return []


def missing_here(status_path: Path = Path("/proc/self/status")) -> list[str]:
    try:
        return missing_capabilities(status_path.read_text())
    except OSError:
        return []
