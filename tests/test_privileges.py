from __future__ import annotations

from pathlib import Path

from pymirrord.privileges import missing_capabilities, missing_here

ROOT = "Name:\tpython\nCapEff:\t000001ffffffffff\n"
NOTHING = "Name:\tpython\nCapEff:\t0000000000000000\n"
NET_ADMIN_ONLY = f"CapEff:\t{1 << 12:016x}\n"


def test_root_has_what_it_needs() -> None:
    assert missing_capabilities(ROOT) == []


def test_missing_capabilities_are_named() -> None:
    assert missing_capabilities(NOTHING) == ["CAP_SYS_ADMIN", "CAP_NET_ADMIN"]
    assert missing_capabilities(NET_ADMIN_ONLY) == ["CAP_SYS_ADMIN"]


def test_an_unreadable_status_leaves_the_verdict_to_the_real_operations(tmp_path: Path) -> None:
    assert missing_capabilities("Name:\tpython\n") == []
    assert missing_capabilities("CapEff:\tnot hex\n") == []
    assert missing_here(tmp_path / "absent") == []
