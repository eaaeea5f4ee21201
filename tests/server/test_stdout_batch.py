"""The helper's stdout: the messages of one loop turn in one write, in order; at once off the loop."""

from __future__ import annotations

import asyncio
import io
import threading

from pymirrord.server.stdout_batch import TurnFlushedStdout


class Recording(io.BytesIO):
    """A stream that remembers each write it was given."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []

    def write(self, data: bytes) -> int:  # type: ignore[override]
        self.writes.append(bytes(data))
        return super().write(data)


def test_messages_of_one_turn_leave_in_one_write() -> None:
    async def scenario() -> None:
        sink = Recording()
        stdout = TurnFlushedStdout(sink)
        for n in range(100):
            stdout.write(b"message %d;" % n)
            stdout.flush()
        assert sink.writes == []  # nothing before the turn ends
        flushed = asyncio.Event()
        asyncio.get_running_loop().call_soon(flushed.set)
        await asyncio.wait_for(flushed.wait(), 5)
        assert sink.writes == [b"".join(b"message %d;" % n for n in range(100))]

    asyncio.run(scenario())


def test_without_a_running_loop_a_flush_writes_at_once() -> None:
    sink = Recording()
    stdout = TurnFlushedStdout(sink)
    done = threading.Event()

    def writer() -> None:
        stdout.write(b"from a thread")
        stdout.flush()
        done.set()

    thread = threading.Thread(target=writer)
    thread.start()
    thread.join(5)
    assert done.is_set()
    assert sink.writes == [b"from a thread"]


def test_close_writes_what_is_pending() -> None:
    async def scenario() -> None:
        sink = Recording()
        stdout = TurnFlushedStdout(sink)
        stdout.write(b"last words")
        stdout.flush()
        assert sink.writes == []
        stdout.close()
        assert sink.writes == [b"last words"]
        assert sink.closed

    asyncio.run(scenario())


def test_a_flush_that_must_not_wait_gives_way_to_one_under_way() -> None:
    # The SIGTERM handler flushes on the main thread, which it may have interrupted inside a flush.
    sink = Recording()
    stdout = TurnFlushedStdout(sink)
    stdout.write(b"pending")
    with stdout._lock:  # a flush under way
        stdout.flush_now(wait=False)
        assert sink.writes == []
    stdout.flush_now(wait=False)
    assert sink.writes == [b"pending"]
