"""Descriptors riding on unix-socket messages (SCM_RIGHTS): building and reading the ancillary data.

Pure data handling: the ``socket`` module is used for its constants only, the I/O stays with callers.
The layer, the session and the agent all pass client sockets this way (see ``handover`` in the agent
and the session).
"""

from __future__ import annotations

import array
import socket

Ancillary = list[tuple[int, int, bytes]]

SPACE_FOR_ONE = socket.CMSG_SPACE(array.array("i").itemsize)
"""The ancillary buffer size that ``recvmsg`` needs to receive one descriptor."""


def carrying(descriptor: int) -> list[tuple[int, int, array.array[int]]]:
    """The ancillary data that makes a ``sendmsg`` carry ``descriptor``."""
    return [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [descriptor]))]


def descriptors(ancillary: Ancillary) -> list[int]:
    """The descriptors a ``recvmsg`` received (now owned by the caller, who must close them)."""
    found: list[int] = []
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            whole = len(data) - len(data) % array.array("i").itemsize
            found.extend(array.array("i", data[:whole]))
    return found
