"""A copy's queue over a real socket pair: what the socket takes at once, and a copy of the rest (the
caller's buffers are reused for the next packets)."""

from __future__ import annotations

import socket

from pymirrord.tunnel.copies import Queue
from pymirrord.tunnel.state import Direction


def small_pair() -> tuple[socket.socket, socket.socket]:
    """A socket pair whose first end writes without blocking and takes little at once."""
    ours, theirs = socket.socketpair()
    ours.setblocking(False)
    ours.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    theirs.settimeout(10)  # a queue that stopped sending fails the test instead of hanging it
    return ours, theirs


def drain(queue: Queue, ours: socket.socket, theirs: socket.socket, count: int) -> bytes:
    """Sends what ``queue`` holds until ``count`` bytes came out of ``theirs``."""
    received = bytearray()
    while queue.chunks or len(received) < count:
        queue.send(ours)
        received += theirs.recv(1 << 20)
    return bytes(received)


def test_push_sends_what_the_socket_takes_and_keeps_its_own_copy_of_the_rest() -> None:
    ours, theirs = small_pair()
    with ours, theirs:
        queue = Queue(Direction(1 << 24))
        buffer = bytearray(b"a" * (1 << 20))
        queue.push(ours, [memoryview(buffer)], len(buffer))
        assert queue.chunks, "a small send buffer cannot take 1 MiB at once"
        waiting = queue.state.pending
        assert waiting == sum(len(chunk) for chunk in queue.chunks)
        buffer[:] = b"b" * len(buffer)  # the capture reads its next packet into the same buffer
        assert all(bytes(chunk) == b"a" * len(chunk) for chunk in queue.chunks)
        queue.push(ours, [b"tail"], 4)  # behind what waits: queued, not sent
        assert queue.state.pending == waiting + 4
        assert drain(queue, ours, theirs, (1 << 20) + 4) == b"a" * (1 << 20) + b"tail"


def test_a_run_of_chunks_goes_in_one_send_and_what_is_left_is_copied_in_order() -> None:
    ours, theirs = small_pair()
    with ours, theirs:
        queue = Queue(Direction(1 << 24))
        buffers = [bytearray(letter * 300_000) for letter in (b"a", b"b", b"c")]
        queue.push(ours, [memoryview(buffer) for buffer in buffers], 900_000)
        assert queue.chunks and queue.state.pending == sum(len(chunk) for chunk in queue.chunks)
        assert queue.state.pending < 900_000, "the socket took the first bytes at once"
        for buffer in buffers:
            buffer[:] = b"z" * len(buffer)  # the capture reads its next packets into the same buffers
        assert drain(queue, ours, theirs, 900_000) == b"a" * 300_000 + b"b" * 300_000 + b"c" * 300_000
