"""Nagle's algorithm is turned off on relaying TCP sockets, whatever their ``proto``."""

from __future__ import annotations

import socket

from pymirrord.nodelay import no_delay


def test_accepted_and_proto_0_sockets_get_no_delay() -> None:
    # proto 0, as the agent's own listeners
    listener = socket.create_server(("127.0.0.1", 0))
    with listener, socket.create_connection(listener.getsockname()) as client:
        accepted, _ = listener.accept()
        with accepted:
            assert accepted.proto == 0
            assert accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 0
            no_delay(accepted)
            assert accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
            no_delay(client)
            assert client.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0


def test_other_sockets_are_left_alone() -> None:
    no_delay(None)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        no_delay(udp)
    left, right = socket.socketpair()
    with left, right:
        no_delay(left)
