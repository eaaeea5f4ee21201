"""CaptureHold fed stalls, catch-ups and periodic looks by hand."""

from __future__ import annotations

from pymirrord.agent.capture_hold import HOLD_QUEUE, HOLD_TIME, CaptureHold

A, B = "copy a", "copy b"


def test_a_stall_holds_the_capture_until_its_copy_caught_up() -> None:
    hold = CaptureHold[str]()
    assert hold.stall(A, 0.0, 0)
    assert hold.holding
    assert list(hold.stalled) == [A]
    assert hold.caught_up(A)
    assert not hold.holding


def test_the_capture_reads_again_only_once_every_stalled_copy_caught_up() -> None:
    hold = CaptureHold[str]()
    assert hold.stall(A, 0.0, 0)
    assert hold.stall(B, 0.01, 0)
    assert not hold.caught_up(A)
    assert hold.holding
    assert hold.caught_up(B)


def test_a_copy_that_never_held_catching_up_changes_nothing() -> None:
    hold = CaptureHold[str]()
    assert hold.caught_up(A)
    assert hold.stall(B, 0.0, 0)
    assert not hold.caught_up(A)


def test_a_stall_that_lasts_hold_time_ends_the_hold_and_its_copy_overflows_until_it_caught_up() -> None:
    hold = CaptureHold[str]()
    assert hold.stall(A, 1.0, 0)
    assert hold.check(1.0 + HOLD_TIME / 2, 0)
    assert not hold.check(1.0 + HOLD_TIME, 0)
    assert not hold.holding
    # The copy now keeps what its tunnel refuses itself, and holds nothing until it caught up.
    assert not hold.stall(A, 2.0, 0)
    assert not hold.holding
    assert hold.caught_up(A)
    assert hold.stall(A, 3.0, 0)


def test_only_the_stalls_that_lasted_end() -> None:
    hold = CaptureHold[str]()
    assert hold.stall(A, 0.0, 0)
    assert hold.stall(B, HOLD_TIME / 2, 0)
    assert hold.check(HOLD_TIME, 0)
    assert list(hold.stalled) == [B]
    assert not hold.stall(A, HOLD_TIME, 0)


def test_a_full_kernel_queue_neither_starts_a_hold_nor_lets_one_go_on() -> None:
    hold = CaptureHold[str]()
    assert not hold.stall(A, 0.0, HOLD_QUEUE)
    assert hold.stall(B, 0.0, HOLD_QUEUE - 1)
    assert not hold.check(0.001, HOLD_QUEUE)
    assert not hold.stall(B, 0.002, 0)


def test_a_kernel_queue_that_cannot_be_measured_never_holds() -> None:
    hold = CaptureHold[str]()
    assert not hold.stall(A, 0.0, None)
    assert hold.stall(B, 0.0, 0)
    assert not hold.check(0.0, None)


def test_the_bounds_can_be_chosen() -> None:
    hold = CaptureHold[str](hold_time=5.0, hold_queue=10)
    assert not hold.stall(A, 0.0, 10)
    assert hold.stall(B, 0.0, 9)
    assert hold.check(4.9, 9)
    assert not hold.check(5.0, 9)
