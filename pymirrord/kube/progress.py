"""Progress of slow steps (creating the agent, waiting for its pod, connecting), for a terminal or an editor.

``Progress`` is the interface the deployment code reports to: ``begin`` a task with a title, ``report``
steps, ``end`` it. It has the shape of LSP's ``$/progress`` (begin / report / end with title and message), so
the editor helper maps ``CallbackProgress`` events one to one. In a terminal ``TerminalProgress`` shows a rich
spinner with the current step and prints each finished step; elsewhere it prints plain lines.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, Protocol, TextIO

from rich.console import Console
from rich.markup import escape
from rich.status import Status

ProgressKind = Literal["begin", "report", "end"]


class Progress(Protocol):
    def begin(self, title: str) -> None:
        """A slow task starts (``title``: what it is, e.g. "Starting the pymirrord agent")."""

    def report(self, message: str) -> None:
        """The task moved on to a new step."""

    def end(self, message: str | None = None) -> None:
        """The task is over (``message``: how it ended, e.g. "agent ready"; None when it failed)."""


class NullProgress:
    """Reports nothing."""

    def begin(self, title: str) -> None:
        pass

    def report(self, message: str) -> None:
        pass

    def end(self, message: str | None = None) -> None:
        pass


@dataclass(frozen=True)
class ProgressEvent:
    """One progress event, as ``$/progress`` carries it: ``title`` on begin, ``message`` on report and end."""

    kind: ProgressKind
    title: str | None = None
    message: str | None = None


class CallbackProgress:
    """Hands every event to a callback (the editor helper sends them as ``$/progress`` notifications)."""

    def __init__(self, callback: Callable[[ProgressEvent], None]) -> None:
        self._callback = callback

    def begin(self, title: str) -> None:
        self._callback(ProgressEvent("begin", title=title))

    def report(self, message: str) -> None:
        self._callback(ProgressEvent("report", message=message))

    def end(self, message: str | None = None) -> None:
        self._callback(ProgressEvent("end", message=message))


class TerminalProgress:
    """A spinner with the current step on a terminal (stderr); plain ``pymirrord: ...`` lines otherwise."""

    def __init__(self, stream: TextIO | None = None, *, force_terminal: bool | None = None) -> None:
        self._stream = stream if stream is not None else sys.stderr
        self._console = Console(file=self._stream, force_terminal=force_terminal, highlight=False)
        self._status: Status | None = None
        self._title = ""
        self._step = ""
        self._started = 0.0

    @property
    def interactive(self) -> bool:
        return self._console.is_terminal

    def begin(self, title: str) -> None:
        self._title = title
        self._step = ""
        self._started = time.monotonic()
        if self.interactive:
            self._status = self._console.status(f"{title}...", spinner="dots")
            self._status.start()
        else:
            self._line(f"{title}...")

    def report(self, message: str) -> None:
        if message == self._step:
            return
        self._step = message
        if self._status is not None:
            self._status.update(f"{self._title}: {message}")
        else:
            self._line(message)

    def end(self, message: str | None = None) -> None:
        if self._status is not None:
            self._status.stop()
            self._status = None
        if message:
            elapsed = time.monotonic() - self._started
            self._line(f"{message} ({elapsed:.1f} s)")

    def _line(self, text: str) -> None:
        if self.interactive:
            self._console.print(f"[dim]pymirrord:[/dim] {escape(text)}", markup=True, highlight=False)
        else:
            print(f"pymirrord: {text}", file=self._stream, flush=True)


def terminal_progress() -> Progress:
    """The progress display for ``pymirrord exec`` and ``pymirrord ls``."""
    return TerminalProgress()
