"""``Due``: one call per burst of asks, none once cancelled, and a callback may ask again."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

from pymirrord.agent.due import Due

WAIT = 5.0


def _run(scenario: Coroutine[Any, Any, None]) -> None:
    asyncio.run(asyncio.wait_for(scenario, WAIT))


async def _after(delay: float) -> None:
    """Returns once a timer of ``delay`` armed now has run: every earlier timer of a shorter delay has."""
    passed = asyncio.Event()
    Due(delay, passed.set).soon()
    await passed.wait()


def test_many_asks_make_one_call() -> None:
    async def scenario() -> None:
        calls: list[str] = []
        due = Due(0.01, lambda: calls.append("ran"))
        for _ in range(1000):
            due.soon()
        await _after(0.05)
        assert calls == ["ran"]

    _run(scenario())


def test_cancelled_it_does_not_run_and_can_be_asked_again() -> None:
    async def scenario() -> None:
        calls: list[str] = []
        due = Due(0.01, lambda: calls.append("ran"))
        due.soon()
        due.cancel()
        await _after(0.05)
        assert calls == []
        due.soon()
        await _after(0.05)
        assert calls == ["ran"]

    _run(scenario())


def test_a_callback_that_asks_again_runs_again() -> None:
    async def scenario() -> None:
        runs: list[int] = []
        twice = asyncio.Event()

        def callback() -> None:
            runs.append(len(runs))
            if len(runs) == 1:
                due.soon()
            else:
                twice.set()

        due = Due(0.001, callback)
        due.soon()
        await twice.wait()
        assert runs == [0, 1]

    _run(scenario())
