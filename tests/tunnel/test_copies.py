"""A copy's queue over a real socket pair: what the socket takes at once, and a copy of the rest (the
caller's buffer is reused for the next packet)."""

from __future__ import annotations

import socket

from pymirrord.tunnel.copies import Queue
from pymirrord.tunnel.state import Direction


def test_push_sends_what_the_socket_takes_and_keeps_its_own_copy_of_the_rest() -> None:
    ours, theirs = socket.socketpair()
    with ours, theirs:
        ours.setblocking(False)
        ours.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        queue = Queue(Direction(1 << 24))
        buffer = bytearray(b"a" * (1 << 20))
        queue.push(ours, memoryview(buffer))
        assert queue.chunks, "a small send buffer cannot take 1 MiB at once"
        waiting = queue.state.pending
        assert waiting == sum(len(chunk) for chunk in queue.chunks)
        buffer[:] = b"b" * len(buffer)  # the capture reads its next packet into the same buffer
        assert all(bytes(chunk) == b"a" * len(chunk) for chunk in queue.chunks)
        queue.push(ours, b"tail")  # behind what waits: queued, not sent
        assert queue.state.pending == waiting + 4
        received = bytearray()
        theirs.settimeout(10)  # a queue that stopped sending fails the test instead of hanging it
        while queue.chunks or len(received) < (1 << 20) + 4:
            queue.send(ours)
            received += theirs.recv(1 << 20)
        assert received == b"a" * (1 << 20) + b"tail"
