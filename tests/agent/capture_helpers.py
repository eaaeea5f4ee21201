"""What the tests of packet capture share: the mark for machines that cannot capture, and a bounded wait."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable

import pytest

from pymirrord.agent.capture import Capture

needs_capture = pytest.mark.skipif(
    os.geteuid() != 0 or Capture.available() is not None, reason="packet capture needs root (CAP_NET_RAW)"
)


async def until(condition: Callable[[], bool], timeout: float = 10.0) -> bool:
    """Whether ``condition`` came true within ``timeout`` seconds (looked at every few milliseconds)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        if asyncio.get_running_loop().time() >= deadline:
            return False
        await asyncio.sleep(0.005)
    return True
