from __future__ import annotations

import os
import socket

from pymirrord.protocol import rights


def test_a_descriptor_sent_with_carrying_is_found_by_descriptors() -> None:
    left, right = socket.socketpair()
    read_end, write_end = os.pipe()
    try:
        left.sendmsg([b"x"], rights.carrying(write_end))
        data, ancillary, _, _ = right.recvmsg(1, rights.SPACE_FOR_ONE)
        [received] = rights.descriptors(ancillary)
        assert data == b"x" and received != write_end
        os.write(received, b"through the passed descriptor")
        os.close(received)
        assert os.read(read_end, 100) == b"through the passed descriptor"
    finally:
        for fd in (read_end, write_end):
            os.close(fd)
        left.close()
        right.close()


def test_other_ancillary_data_and_partial_entries_are_ignored() -> None:
    assert rights.descriptors([(socket.SOL_SOCKET, 99, b"\x01\x00\x00\x00")]) == []
    assert rights.descriptors([(socket.SOL_SOCKET, socket.SCM_RIGHTS, b"\x05\x00\x00\x00\x06\x00")]) == [5]
