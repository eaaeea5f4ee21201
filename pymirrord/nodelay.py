"""TCP_NODELAY for the sockets the agent and the session relay bytes on.

A relay must not hold back what it was given: with Nagle's algorithm on, a small write that follows another
one still unacknowledged waits for the peer's ACK, which a peer that delays its ACKs sends up to 40 ms later.
asyncio turns Nagle off only for sockets whose ``proto`` is ``IPPROTO_TCP``; sockets from ``accept`` on
listeners made with ``socket.create_server``, and those made with ``socket.socket(AF_INET, SOCK_STREAM)``,
have ``proto`` 0, so they would keep it.
"""

from __future__ import annotations

import contextlib
import socket


def no_delay(sock: socket.socket | None) -> None:
    """Turns Nagle's algorithm off on a TCP socket (anything else is left alone)."""
    if sock is None or sock.type != socket.SOCK_STREAM:
        return
    if sock.family not in (socket.AF_INET, socket.AF_INET6):
        return
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
