"""One-line messages from the layer to the app's stderr: the layer never prints a traceback."""

from __future__ import annotations

import os
import sys
import threading


class _Said:
    """Keys already warned about in this process."""

    keys: set[str] = set()
    lock = threading.Lock()


def _after_fork_in_child() -> None:
    # Another thread of the parent may have held the lock at fork time; the child must not wait on it.
    _Said.lock = threading.Lock()


os.register_at_fork(after_in_child=_after_fork_in_child)


def warn(text: str) -> None:
    """Writes ``pymirrord: text`` as one line; an unusable stderr must not break the app."""
    line = "pymirrord: " + " ".join(text.split("\n")) + "\n"
    try:
        sys.stderr.write(line)
        sys.stderr.flush()
    except Exception:
        pass


def warn_once(key: str, text: str) -> None:
    """Like ``warn``, but only the first time ``key`` is used in this process (a flood helps nobody)."""
    with _Said.lock:
        if key in _Said.keys:
            return
        _Said.keys.add(key)
    warn(text)
