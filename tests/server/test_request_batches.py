"""Request notifications: the first after a quiet spell at once, the rest of a busy spell in one batch."""

from __future__ import annotations

from typing import Any

from pymirrord.server.request_batches import RequestBatches


def note(path: str, mode: str = "steal") -> dict[str, Any]:
    return {"sessionId": "s1", "kind": "request", "port": 80, "mode": mode, "method": "GET", "path": path}


def test_a_lone_request_goes_out_at_once_and_nothing_waits() -> None:
    batches = RequestBatches("s1", last=20, interval=0.1)
    first = note("/a")
    assert batches.add(first, now=10.0) is first
    assert batches.due is None
    assert batches.flush(now=10.1) is None
    later = note("/b")
    assert batches.add(later, now=11.0) is later  # quiet again: at once


def test_a_busy_spell_is_one_batch_with_every_request_counted() -> None:
    batches = RequestBatches("s1", last=3, interval=0.1)
    assert batches.add(note("/0"), now=1.0) is not None
    for n in range(1, 1001):
        assert batches.add(note(f"/{n}", "mirror" if n % 10 == 0 else "steal"), now=1.0 + n * 1e-5) is None
    assert batches.due == 1.1
    event = batches.flush(now=1.1)
    assert event is not None
    assert event["kind"] == "requests" and event["sessionId"] == "s1"
    assert event["counts"] == {"steal": 900, "mirror": 100}
    assert [entry["path"] for entry in event["entries"]] == ["/998", "/999", "/1000"]
    assert all("kind" not in entry and "sessionId" not in entry for entry in event["entries"])
    # The next interval starts at the flush: a request within it waits for the next batch.
    assert batches.add(note("/1001"), now=1.15) is None
    assert batches.due is not None and abs(batches.due - 1.2) < 1e-9
    follow = batches.flush(now=1.2)
    assert follow is not None and follow["counts"] == {"steal": 1}


def test_requests_counted_without_entries_join_the_batch() -> None:
    batches = RequestBatches("s1", last=20, interval=0.1)
    batches.count("steal", 0, now=5.0)
    assert batches.flush(now=5.0) is None, "nothing counted, nothing to tell"
    # After a quiet spell: due at once, and described requests that come with the count join it.
    batches.count("steal", 38, now=5.0)
    assert batches.due == 5.0
    assert batches.add(note("/38"), now=5.0) is None
    assert batches.add(note("/39"), now=5.0) is None
    event = batches.flush(now=5.0)
    assert event is not None
    assert event["counts"] == {"steal": 40}
    assert [entry["path"] for entry in event["entries"]] == ["/38", "/39"]
    # Within the interval that follows, a count waits for its end.
    batches.count("steal", 5, now=5.05)
    assert batches.due is not None and abs(batches.due - 5.1) < 1e-9
    follow = batches.flush(now=5.1)
    assert follow is not None and follow["counts"] == {"steal": 5} and follow["entries"] == []
