"""Putting a socket handed over by a local agent in place of the app's own socket.

A local agent passes real sockets (a stolen client connection, a connection made in the pod) instead of
relaying their bytes. The layer duplicates the handed descriptor onto the descriptor of the app's socket
object: same number, so the app's object now talks to the peer directly, with the real addresses.
"""

from __future__ import annotations

import os
import socket
from typing import TYPE_CHECKING

if TYPE_CHECKING or __package__:
    from pymirrord.layer.pymirrord_layer_warn import warn_once
else:
    from pymirrord_layer_warn import warn_once


def take_over(sock: socket.socket, handed: int) -> None:
    """Makes ``sock`` the handed socket; ``handed`` is consumed (closed) either way."""
    try:
        os.dup2(handed, sock.fileno(), inheritable=False)
        # The descriptor arrives with the agent's non-blocking flag: restore the app's own mode.
        sock.settimeout(sock.gettimeout())
    except OSError as error:
        warn_once("handover", f"could not take over a handed socket: {error}")
    finally:
        os.close(handed)
