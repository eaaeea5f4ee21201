"""Per-connection flow control, fed backlog sizes as a relay would see them."""

from __future__ import annotations

import pytest

from pymirrord.flow import FlowControl, Verdict

HIGH, LOW, COPY = 400, 100, 1600


def test_a_connection_pauses_past_high_water_once_and_resumes_at_low_water() -> None:
    flow = FlowControl(HIGH, LOW, COPY)
    assert flow.grew(1, HIGH) is None, "at the mark itself nothing happens"
    assert flow.grew(1, HIGH + 1) is Verdict.PAUSE
    assert flow.paused(1)
    assert flow.grew(1, HIGH * 3) is None, "bytes already on their way do not pause it twice"
    assert flow.shrank(1, LOW + 1) is None, "between the marks it stays paused"
    assert flow.shrank(1, LOW) is Verdict.RESUME
    assert not flow.paused(1)
    assert flow.shrank(1, 0) is None, "a running connection is not resumed again"
    assert flow.grew(1, HIGH + 1) is Verdict.PAUSE
    assert flow.pauses == 2


def test_connections_are_paused_apart() -> None:
    flow = FlowControl(HIGH, LOW)
    assert flow.grew(1, HIGH + 1) is Verdict.PAUSE
    assert flow.grew(2, HIGH) is None
    assert flow.shrank(2, 0) is None
    assert flow.paused(1) and not flow.paused(2)
    assert len(flow) == 1


def test_a_copy_is_never_paused_but_dropped_past_its_limit() -> None:
    flow = FlowControl(HIGH, LOW, COPY)
    assert flow.grew(7, COPY, copy=True) is None
    assert not flow.paused(7)
    assert flow.grew(7, COPY + 1, copy=True) is Verdict.DROP
    without_limit = FlowControl(HIGH, LOW)
    assert without_limit.grew(7, 10 * COPY, copy=True) is None


def test_a_forgotten_connection_is_not_resumed() -> None:
    flow = FlowControl(HIGH, LOW)
    flow.grew(3, HIGH + 1)
    flow.forget(3)
    assert flow.shrank(3, 0) is None
    assert len(flow) == 0


@pytest.mark.parametrize(("high", "low", "copy"), [(100, 100, None), (100, -1, None), (100, 10, 50)])
def test_marks_that_make_no_sense_are_refused(high: int, low: int, copy: int | None) -> None:
    with pytest.raises(ValueError):
        FlowControl(high, low, copy)
