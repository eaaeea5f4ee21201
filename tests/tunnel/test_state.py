"""The sans-I/O bookkeeping of a relay: events in, what to do next out."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pymirrord.tunnel.state import Direction, Relay


def wants(direction: Direction) -> set[str]:
    """What the direction asks the I/O shell to do next (a fresh value each call, so mypy narrows nothing)."""
    asks = {"read": direction.should_read, "write": direction.should_write}
    asks["shutdown"] = direction.should_shutdown
    return {name for name, asked in asks.items() if asked}


def is_done(direction: Direction) -> bool:
    return direction.done


def is_stalled(direction: Direction) -> bool:
    return direction.stalled


def is_finished(relay: Relay) -> bool:
    return relay.finished


def test_a_fresh_direction_reads_and_has_nothing_to_write() -> None:
    direction = Direction(100)
    assert wants(direction) == {"read"}
    assert not is_done(direction)
    assert direction.room == 100


def test_read_bytes_are_pending_until_written_and_then_counted_as_moved() -> None:
    direction = Direction(100)
    direction.read(30)
    assert direction.pending == 30 and direction.room == 70
    assert wants(direction) == {"read", "write"}
    direction.wrote(10)
    assert direction.pending == 20 and direction.moved == 10
    direction.wrote(20)
    assert direction.pending == 0 and direction.moved == 30
    assert wants(direction) == {"read"}


def test_a_full_buffer_stops_reading_until_a_write_makes_room() -> None:
    direction = Direction(100)
    direction.read(100)
    assert direction.room == 0
    assert wants(direction) == {"write"}
    direction.wrote(1)
    assert wants(direction) == {"read", "write"}
    assert direction.room == 1


def test_reading_past_the_capacity_is_refused() -> None:
    direction = Direction(100)
    direction.read(60)
    with pytest.raises(ValueError, match="capacity"):
        direction.read(41)
    assert direction.pending == 60


def test_writing_more_than_is_pending_is_refused() -> None:
    direction = Direction(100)
    direction.read(5)
    with pytest.raises(ValueError, match="pending"):
        direction.wrote(6)
    assert direction.pending == 5 and direction.moved == 0


def test_the_end_of_stream_is_passed_on_only_after_every_pending_byte() -> None:
    direction = Direction(100)
    direction.read(8)
    direction.read(0)
    assert direction.eof
    assert wants(direction) == {"write"}
    direction.wrote(8)
    assert wants(direction) == {"shutdown"}
    assert not is_done(direction)
    direction.shutdown_done()
    assert direction.shut and is_done(direction)
    assert wants(direction) == set()


def test_an_immediate_end_of_stream_asks_for_the_shutdown_at_once() -> None:
    direction = Direction(100)
    direction.read(0)
    assert wants(direction) == {"shutdown"}


@pytest.mark.parametrize("count", [0, 1])
def test_reading_after_the_end_of_stream_is_refused(count: int) -> None:
    direction = Direction(100)
    direction.read(0)
    with pytest.raises(ValueError, match="end of the source"):
        direction.read(count)


def test_a_failed_direction_is_done_and_does_nothing_more() -> None:
    direction = Direction(100)
    direction.read(10)
    direction.fail("Connection reset by peer")
    assert is_done(direction)
    assert direction.failed == "Connection reset by peer"
    assert wants(direction) == set()
    with pytest.raises(ValueError, match="end of the source"):
        direction.read(1)


def test_a_failed_direction_with_an_end_of_stream_asks_for_no_shutdown() -> None:
    direction = Direction(100)
    direction.read(0)
    direction.fail("gone")
    assert wants(direction) == set()


def test_the_first_failure_is_the_one_kept() -> None:
    direction = Direction(100)
    direction.fail("first")
    direction.fail("second")
    assert direction.failed == "first"


def test_a_stalled_buffer_stops_reading_until_a_write_moves_bytes() -> None:
    direction = Direction(100)
    direction.read(10)
    direction.buffer_full()
    assert is_stalled(direction)
    assert wants(direction) == {"write"}  # no reading, although there is room
    assert direction.room == 90
    direction.wrote(0)  # nothing went out: still stalled
    assert is_stalled(direction)
    assert wants(direction) == {"write"}
    direction.wrote(3)
    assert not is_stalled(direction)
    assert wants(direction) == {"read", "write"}


def test_a_full_buffer_with_nothing_pending_does_not_stall() -> None:
    # Nothing to write would ever clear the stall: reading must go on.
    direction = Direction(100)
    direction.buffer_full()
    assert not is_stalled(direction)
    assert wants(direction) == {"read"}


def test_a_direction_without_capacity_never_reads() -> None:
    assert wants(Direction(0)) == set()


def test_a_relay_finishes_once_both_ends_of_stream_are_passed_on() -> None:
    relay = Relay.with_capacity(64)
    assert relay.forward.capacity == relay.back.capacity == 64
    assert relay.forward is not relay.back
    assert not is_finished(relay) and relay.failure is None
    relay.forward.read(0)
    relay.forward.shutdown_done()
    assert not is_finished(relay)  # a half-closed connection is still relayed the other way
    assert wants(relay.back) == {"read"}
    relay.back.read(0)
    relay.back.shutdown_done()
    assert is_finished(relay)
    assert relay.failure is None


@pytest.mark.parametrize("which", ["forward", "back"])
def test_a_relay_is_over_as_soon_as_either_direction_failed(which: str) -> None:
    relay = Relay.with_capacity(64)
    getattr(relay, which).fail("reset")
    assert relay.finished
    assert relay.failure == "reset"


def test_a_relay_names_the_forward_failure_when_both_failed() -> None:
    relay = Relay(Direction(1), Direction(1))
    relay.back.fail("back")
    relay.forward.fail("forward")
    assert relay.failure == "forward"


_events = st.lists(
    st.one_of(
        st.tuples(st.just("read"), st.integers(0, 120)),
        st.tuples(st.just("wrote"), st.integers(0, 120)),
        st.tuples(st.just("full"), st.just(0)),
    ),
    max_size=60,
)


@given(_events)
def test_the_counts_stay_consistent_whatever_the_events(events: list[tuple[str, int]]) -> None:
    direction = Direction(100)
    read = 0
    for kind, count in events:
        if kind == "read":
            if direction.eof or count > direction.room:
                with pytest.raises(ValueError):
                    direction.read(count)
                continue
            direction.read(count)
            read += count
        elif kind == "wrote":
            if count > direction.pending:
                with pytest.raises(ValueError):
                    direction.wrote(count)
                continue
            direction.wrote(count)
        else:
            direction.buffer_full()
        assert 0 <= direction.pending <= direction.capacity
        assert direction.pending + direction.moved == read
        assert direction.should_write == (direction.pending > 0)
        assert direction.should_shutdown == (direction.eof and direction.pending == 0)
        if direction.should_read:
            assert direction.room > 0 and not direction.eof


def test_an_announced_length_ends_the_stream_once_read() -> None:
    direction = Direction(100, pending=3)  # three bytes came with the tunnel's handshake
    direction.ends_at(10)
    assert "read" in wants(direction)
    direction.read(7)
    assert direction.eof
    assert "read" not in wants(direction)
    direction.wrote(10)
    assert wants(direction) == {"shutdown"}


def test_an_announcement_after_the_bytes_ends_the_stream_at_once() -> None:
    direction = Direction(100)
    direction.read(5)
    direction.ends_at(5)
    assert direction.eof


def test_bytes_past_the_announced_length_fail_the_direction() -> None:
    direction = Direction(100)
    direction.read(6)
    direction.ends_at(5)
    assert is_done(direction)
    assert direction.failed is not None and "1 bytes more" in direction.failed


def test_a_real_end_of_stream_before_the_announcement_stands() -> None:
    direction = Direction(100)
    direction.read(4)
    direction.read(0)
    direction.ends_at(9)
    assert direction.eof and direction.length is None and direction.failed is None


@given(st.lists(st.integers(min_value=1, max_value=50), max_size=20), st.integers(min_value=0, max_value=20))
def test_the_end_comes_exactly_at_the_announced_length(chunks: list[int], announce_after: int) -> None:
    direction = Direction(10_000)
    total = sum(chunks)
    for index, chunk in enumerate(chunks):
        if index == announce_after:
            direction.ends_at(total)
        assert not direction.eof
        direction.read(chunk)
    direction.ends_at(total)
    assert direction.eof and direction.failed is None and direction.received == total
