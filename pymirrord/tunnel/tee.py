"""``tee(2)``: duplicate the bytes at the head of one pipe into another, without consuming or copying them.

The kernel only adds references to the same pages, so a mirrored connection's bytes reach the pod's app and
each copy's tunnel with ``splice`` and never pass through Python. ``os`` has ``splice`` but not ``tee``;
this binds it from the C library (Linux only; ``AVAILABLE`` says whether it is there).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
from typing import Any

_SPLICE_F_NONBLOCK = 2


def _bind() -> Any:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
        function = libc.tee
    except (OSError, AttributeError):
        return None
    function.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_size_t, ctypes.c_uint]
    function.restype = ctypes.c_ssize_t
    return function


_tee = _bind()
AVAILABLE = _tee is not None and hasattr(os, "splice")


def tee(source: int, destination: int, length: int) -> int:
    """Duplicates up to ``length`` bytes from the head of pipe ``source`` into pipe ``destination``; the
    count duplicated. ``BlockingIOError`` when ``destination`` is full, ``OSError`` for other failures."""
    assert _tee is not None, "tee(2) is not available here"
    count = int(_tee(source, destination, length, _SPLICE_F_NONBLOCK))
    if count < 0:
        code = ctypes.get_errno()
        if code == errno.EAGAIN:
            raise BlockingIOError(code, os.strerror(code))
        raise OSError(code, os.strerror(code))
    return count
