"""The open-file limit: raised towards the wanted number, never past the hard limit, never lowered."""

from __future__ import annotations

import resource
from collections.abc import Iterator

import pytest

from pymirrord.open_files import raise_open_files_limit


@pytest.fixture
def restore_limit() -> Iterator[tuple[int, int]]:
    before = resource.getrlimit(resource.RLIMIT_NOFILE)
    yield before
    resource.setrlimit(resource.RLIMIT_NOFILE, before)


def test_the_soft_limit_rises_up_to_the_hard_one(restore_limit: tuple[int, int]) -> None:
    _, hard = restore_limit
    ceiling = 4096 if hard == resource.RLIM_INFINITY else min(hard, 4096)
    resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))
    assert raise_open_files_limit(ceiling) == ceiling
    assert resource.getrlimit(resource.RLIMIT_NOFILE) == (ceiling, hard)
    # More than the hard limit is never asked for, and a higher soft limit is never lowered.
    wanted = hard * 2 if hard != resource.RLIM_INFINITY else ceiling
    assert raise_open_files_limit(wanted) == (hard if hard != resource.RLIM_INFINITY else ceiling)
    assert raise_open_files_limit(16) >= ceiling
