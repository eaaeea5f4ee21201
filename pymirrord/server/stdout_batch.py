"""The helper's stdout: the JSON-RPC messages of one turn of the event loop leave in one write.

pygls writes and flushes each message on its own, one ``write`` system call per message. A session's
view sends a notification per request its app serves, thousands a second under load, and those writes
took a quarter of the helper's time. ``TurnFlushedStdout`` keeps what pygls writes during a turn and
writes it at the start of the next one: the same bytes in the same order, sooner than an editor notices.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import BinaryIO

log = logging.getLogger("pymirrord.server")


class TurnFlushedStdout:
    """A binary stream for pygls's ``start_io``: ``flush`` on the event loop's thread defers the write to the
    loop's next turn; from any other thread (or with no loop running) it writes at once."""

    def __init__(self, stdout: BinaryIO) -> None:
        self._stdout = stdout
        self._pending: list[bytes] = []
        self._lock = threading.Lock()
        self._scheduled = False

    def write(self, data: bytes) -> int:
        with self._lock:
            self._pending.append(bytes(data))
        return len(data)

    def flush(self) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self.flush_now()
            return
        if not self._scheduled:
            self._scheduled = True
            loop.call_soon(self._flush_turn)

    def _flush_turn(self) -> None:
        self._scheduled = False
        try:
            self.flush_now()
        except OSError as error:
            # The editor is gone; the helper ends when its stdin does.
            log.warning("cannot write to the editor: %s", error)

    def flush_now(self, *, wait: bool = True) -> None:
        """Writes everything pending (the helper exits, or a thread with no loop wrote). ``wait=False``
        gives up if another flush holds the queue: a signal handler runs on the thread it interrupted,
        which may be inside a flush, and must not wait for itself."""
        if not self._lock.acquire(blocking=wait):
            return
        try:
            data = b"".join(self._pending)
            self._pending.clear()
        finally:
            self._lock.release()
        if data:
            self._stdout.write(data)
        self._stdout.flush()

    def close(self) -> None:
        try:
            self.flush_now()
        finally:
            self._stdout.close()
