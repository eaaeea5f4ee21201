"""The agent's bookkeeping of connections to sessions' local apps, fed by calls."""

from __future__ import annotations

from pymirrord.agent.app_connections import AppConnections


def always(_: str) -> bool:
    return True


def test_a_miss_asks_once_then_the_arrival_is_taken() -> None:
    pool: AppConnections[str] = AppConnections(asks_in_flight=1)
    assert pool.take((1, 80), 0.0, always) == (None, [], True)
    assert pool.take((1, 80), 0.1, always) == (None, [], False), "one ask in flight is enough"
    assert pool.arrived((1, 80), "a")
    assert pool.take((1, 80), 0.2, always) == ("a", [], False)


def test_a_used_connection_comes_back_and_the_newest_is_taken_first() -> None:
    pool: AppConnections[str] = AppConnections()
    pool.take((1, 80), 0.0, always)
    pool.arrived((1, 80), "a")
    pool.put((1, 80), "b")
    assert pool.take((1, 80), 0.0, always)[0] == "b"
    assert pool.idle((1, 80)) == 1


def test_unusable_connections_are_handed_back_to_close() -> None:
    pool: AppConnections[str] = AppConnections()
    pool.take((1, 80), 0.0, always)
    for name in ("ok", "stale1", "stale2"):
        pool.arrived((1, 80), name)
    taken, stale, ask = pool.take((1, 80), 0.0, lambda c: c == "ok")
    assert (taken, stale, ask) == ("ok", ["stale2", "stale1"], False)


def test_an_unanswered_ask_expires() -> None:
    pool: AppConnections[str] = AppConnections(asks_in_flight=1, ask_timeout=2.0)
    assert pool.take((1, 80), 0.0, always)[2]
    assert not pool.take((1, 80), 1.9, always)[2]
    assert pool.take((1, 80), 2.1, always)[2], "the session never answered: ask again"


def test_nobody_asked_or_too_many_idle_means_close() -> None:
    pool: AppConnections[str] = AppConnections(idle_limit=1)
    assert not pool.arrived((1, 80), "unasked")
    pool.take((1, 80), 0.0, always)
    assert pool.arrived((1, 80), "a")
    assert not pool.put((1, 80), "b"), "one idle connection is the limit"


def test_forgetting_a_port_or_a_session_returns_what_to_close() -> None:
    pool: AppConnections[str] = AppConnections()
    for key in ((1, 80), (1, 8080), (2, 80)):
        pool.take(key, 0.0, always)
        pool.arrived(key, f"{key[0]}:{key[1]}")
    assert pool.forget_port(1, 8080) == ["1:8080"]
    assert not pool.put((1, 8080), "late"), "a forgotten port keeps nothing"
    assert pool.forget_session(1) == ["1:80"]
    assert pool.idle((2, 80)) == 1
    assert pool.forget_session(3) == []


def test_an_unasked_arrival_is_kept_and_answers_no_ask() -> None:
    """A session's first tunnel to its app comes before any ask: kept, and an ask made later still stands."""
    pool: AppConnections[str] = AppConnections(asks_in_flight=1)
    assert pool.arrived((1, 80), "first", unasked=True)
    assert pool.take((1, 80), 0.0, always) == ("first", [], False)
    assert pool.take((1, 80), 0.1, always) == (None, [], True)
    assert pool.arrived((1, 80), "asked")
    assert pool.idle((1, 80)) == 1
