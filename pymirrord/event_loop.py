"""The event loop of pymirrord's own processes (agent, session, editor helper): uvloop where it is installed
(the ``fast`` extra, which ``scripts/setup.sh`` and the agent image install), asyncio's own otherwise.

A relayed connection's bytes move by ``splice`` without passing through Python, so what the agent spends
per byte is mostly the loop's turn around each splice: waking up, dispatching the ready socket, coming
back. uvloop does that turn in C. In 1,000 MB uploads stolen through a tunnel on 2 cores, the agent went
from 0.06-0.11 to 0.05-0.07 s of CPU per GB, and the uploads from 3,781-4,329 to 4,600-4,748 MB/s
(a bare relay in C, on the same runs: 4,599-5,358). ``PYMIRRORD_UVLOOP=0`` keeps asyncio's loop, to rule
the loop out when something misbehaves; the layer, inside the user's own process, never changes loops.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Coroutine
from types import ModuleType
from typing import Any, TypeVar

SWITCH = "PYMIRRORD_UVLOOP"

T = TypeVar("T")


def uvloop_module() -> ModuleType | None:
    """uvloop, if it is installed and ``PYMIRRORD_UVLOOP`` is not ``0``."""
    if os.environ.get(SWITCH, "1") == "0":
        return None
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop


def name() -> str:
    """The loop this process runs on, for logs: ``uvloop`` or ``asyncio``."""
    return "asyncio" if uvloop_module() is None else "uvloop"


def run(main: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run(main)``, on uvloop where it is chosen."""
    uvloop = uvloop_module()
    if uvloop is None:
        return asyncio.run(main)
    result: T = uvloop.run(main)
    return result


def choose_for_asyncio_run() -> bool:
    """Makes the ``asyncio.run`` of a library that starts its own loop (pygls) use uvloop, where it is
    chosen; whether it does. Through the loop policy, which Python 3.14 deprecates: from there on the
    library keeps asyncio's loop."""
    uvloop = uvloop_module()
    if uvloop is None or sys.version_info >= (3, 14):
        return False
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    return True
