"""Progress reporting: the callback shape the editor helper maps to $/progress, and plain terminal lines."""

from __future__ import annotations

import io

from pymirrord.kube.progress import CallbackProgress, ProgressEvent, TerminalProgress


def test_callback_progress_has_the_lsp_shape() -> None:
    events: list[ProgressEvent] = []
    progress = CallbackProgress(events.append)
    progress.begin("Starting the pymirrord agent")
    progress.report("creating job/x")
    progress.end("agent ready")
    assert events == [
        ProgressEvent("begin", title="Starting the pymirrord agent"),
        ProgressEvent("report", message="creating job/x"),
        ProgressEvent("end", message="agent ready"),
    ]


def test_terminal_progress_without_a_terminal_prints_lines() -> None:
    stream = io.StringIO()
    progress = TerminalProgress(stream)
    progress.begin("Starting the pymirrord agent")
    progress.report("creating job/x [y]")
    progress.report("creating job/x [y]")  # repeats are not printed twice
    progress.end(None)
    assert stream.getvalue() == "pymirrord: Starting the pymirrord agent...\npymirrord: creating job/x [y]\n"


def test_terminal_progress_on_a_terminal_shows_a_spinner_and_the_outcome() -> None:
    stream = io.StringIO()
    progress = TerminalProgress(stream, force_terminal=True)
    progress.begin("Starting")
    progress.report("step [1]")
    progress.end("agent ready")
    assert "agent ready" in stream.getvalue()
