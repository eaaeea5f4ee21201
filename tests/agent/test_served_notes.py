from __future__ import annotations

from pymirrord.agent.served_notes import ServedNotes
from pymirrord.protocol.agent_to_session import SERVED_LISTED, HttpRequestsServed, ServedRequest
from pymirrord.protocol.types import SocketAddress

CLIENT = SocketAddress("10.0.0.2", 40000)


def served(request_id: int) -> ServedRequest:
    return ServedRequest(request_id, 80, CLIENT, "GET", f"/{request_id}", "header_filter")


def test_a_busy_spell_is_counted_whole_and_only_its_last_requests_described() -> None:
    notes = ServedNotes()
    assert not notes
    for request_id in range(1000):
        notes.add(1, served(request_id))
    notes.add(2, served(5000))
    assert notes
    told = notes.take()
    assert set(told) == {1, 2}
    assert told[1].count == 1000
    assert [each.request_id for each in told[1].last] == list(range(1000 - SERVED_LISTED, 1000))
    assert told[2] == HttpRequestsServed(1, (served(5000),))
    assert not notes and notes.take() == {}, "what was told is not told again"


def test_a_session_that_left_is_told_nothing() -> None:
    notes = ServedNotes()
    notes.add(1, served(1))
    notes.add(2, served(2))
    notes.forget(1)
    notes.forget(3)  # never noted: nothing to forget
    assert list(notes.take()) == [2]
