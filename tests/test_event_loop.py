"""The event loop of pymirrord's processes: uvloop where installed and not switched off, else asyncio's."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Iterator

import pytest

from pymirrord import event_loop

uvloop = pytest.importorskip("uvloop", reason="the fast extra (uvloop) is not installed")


async def loop_type() -> str:
    return type(asyncio.get_running_loop()).__module__.split(".")[0]


def test_uvloop_runs_where_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(event_loop.SWITCH, raising=False)
    assert event_loop.name() == "uvloop"
    assert event_loop.run(loop_type()) == "uvloop"


def test_the_switch_keeps_asyncios_own_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(event_loop.SWITCH, "0")
    assert event_loop.uvloop_module() is None
    assert event_loop.name() == "asyncio"
    assert event_loop.run(loop_type()) == "asyncio"


def test_a_missing_uvloop_means_asyncio(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(event_loop.SWITCH, raising=False)
    monkeypatch.setitem(sys.modules, "uvloop", None)  # what an import of a missing module meets
    assert event_loop.uvloop_module() is None
    assert event_loop.run(loop_type()) == "asyncio"


def test_the_result_and_the_exception_of_main_come_back(monkeypatch: pytest.MonkeyPatch) -> None:
    async def fails() -> None:
        raise LookupError("from main")

    for switch in ("0", "1"):
        monkeypatch.setenv(event_loop.SWITCH, switch)
        assert event_loop.run(asyncio.sleep(0, result=42)) == 42
        with pytest.raises(LookupError, match="from main"):
            event_loop.run(fails())


@pytest.fixture
def restore_policy() -> Iterator[None]:
    policy = asyncio.get_event_loop_policy()
    yield
    asyncio.set_event_loop_policy(policy)


@pytest.mark.usefixtures("restore_policy")
def test_a_librarys_own_asyncio_run_gets_uvloop(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(event_loop.SWITCH, raising=False)
    chosen = event_loop.choose_for_asyncio_run()
    assert chosen == (sys.version_info < (3, 14))
    assert asyncio.run(loop_type()) == ("uvloop" if chosen else "asyncio")


@pytest.mark.usefixtures("restore_policy")
def test_a_library_keeps_asyncios_loop_when_switched_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(event_loop.SWITCH, "0")
    assert not event_loop.choose_for_asyncio_run()
    assert asyncio.run(loop_type()) == "asyncio"
