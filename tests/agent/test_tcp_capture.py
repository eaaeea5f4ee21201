"""Captured segments put back into connections: packets built by hand, fed in the orders a capture
sees them (reordered, retransmitted, with segments missing)."""

from __future__ import annotations

import struct

from pymirrord.agent.tcp_capture import (
    END_WAIT,
    HANDSHAKE_LIMIT,
    IDLE_LIMIT,
    CapturedConnections,
    ClientEnd,
    Closed,
    Data,
    Event,
    Lost,
    Opened,
)
from pymirrord.protocol.types import SocketAddress

CLIENT, POD = bytes([10, 0, 0, 2]), bytes([10, 0, 0, 1])
FIN, SYN, RST, ACK = 0x01, 0x02, 0x04, 0x10
ISN = 1000


def packet(
    *, to_pod: bool = True, seq: int = 0, flags: int = ACK, payload: bytes = b"", port: int = 80
) -> bytes:
    source, destination = (CLIENT, POD) if to_pod else (POD, CLIENT)
    ports = (40000, port) if to_pod else (port, 40000)
    tcp = struct.pack("!HHIIBBHHH", *ports, seq & 0xFFFFFFFF, 0, 5 << 4, flags, 65535, 0, 0)
    total = 20 + len(tcp) + len(payload)
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, total, 0, 0, 64, 6, 0, source, destination)
    return ip + tcp + payload


def data(events: list[Event]) -> bytes:
    return b"".join(bytes(e.data) for e in events if isinstance(e, Data))


def opened() -> CapturedConnections:
    connections = CapturedConnections(lambda port: port == 80)
    assert connections.feed(packet(seq=ISN, flags=SYN), 0.0) == []  # not yet: the app may refuse it
    events = connections.feed(packet(to_pod=False, seq=5000, flags=SYN | ACK), 0.0)
    assert events == [Opened(events[0].key, SocketAddress("10.0.0.2", 40000), SocketAddress("10.0.0.1", 80))]
    return connections


def test_a_connection_the_app_refuses_is_never_announced() -> None:
    connections = CapturedConnections(lambda port: port == 80)
    assert connections.feed(packet(seq=ISN, flags=SYN), 0.0) == []
    assert connections.feed(packet(to_pod=False, seq=0, flags=RST | ACK), 0.0) == []
    assert len(connections) == 0
    assert connections.feed(packet(seq=ISN, flags=SYN), 1.0) == []  # one nobody answers at all
    assert connections.sweep(1.0 + HANDSHAKE_LIMIT * 2) == []
    assert len(connections) == 0


def test_the_clients_answer_to_the_syn_ack_announces_it_when_the_capture_shows_that_first() -> None:
    connections = CapturedConnections(lambda port: port == 80)
    connections.feed(packet(seq=ISN, flags=SYN), 0.0)
    events = connections.feed(packet(seq=ISN + 1, payload=b"early"), 0.1)
    assert [type(e) for e in events] == [Opened, Data]
    assert connections.feed(packet(to_pod=False, seq=5000, flags=SYN | ACK), 0.2) == []


def test_a_connection_opens_streams_its_bytes_and_ends_both_ways() -> None:
    connections = opened()
    assert data(connections.feed(packet(seq=ISN + 1, payload=b"hello "), 0.2)) == b"hello "
    assert data(connections.feed(packet(seq=ISN + 7, payload=b"pod"), 0.3)) == b"pod"
    ending = connections.feed(packet(seq=ISN + 10, flags=FIN | ACK), 0.4)
    assert [type(e) for e in ending] == [ClientEnd]
    closing = connections.feed(packet(to_pod=False, seq=5001, flags=FIN | ACK), 0.5)
    assert [type(e) for e in closing] == [Closed]
    assert len(connections) == 0


def test_only_a_syn_to_a_watched_port_opens_a_connection() -> None:
    connections = CapturedConnections(lambda port: port == 80)
    assert connections.feed(packet(seq=ISN, flags=SYN, port=81), 0.0) == []
    assert connections.feed(packet(seq=ISN + 1, payload=b"x"), 0.0) == []  # opened before anyone watched
    assert len(connections) == 0


def test_reordered_and_retransmitted_segments_come_out_once_and_in_order() -> None:
    connections = opened()
    # "abcdefghijkl" from ISN + 1; "d" (ISN + 4) is seen last, and only inside a retransmission.
    assert connections.feed(packet(seq=ISN + 5, payload=b"efgh"), 0.1) == []
    assert connections.feed(packet(seq=ISN + 9, payload=b"ijkl"), 0.1) == []
    assert data(connections.feed(packet(seq=ISN + 1, payload=b"abc"), 0.2)) == b"abc"
    # It overlaps what was passed on and what waits.
    assert data(connections.feed(packet(seq=ISN + 2, payload=b"bcdefg"), 0.3)) == b"defghijkl"
    assert data(connections.feed(packet(seq=ISN + 1, payload=b"abcdefghijkl"), 0.4)) == b""
    assert data(connections.feed(packet(seq=ISN + 11, payload=b"klmn"), 0.5)) == b"mn"


def test_sequence_numbers_wrap_around() -> None:
    connections = CapturedConnections(lambda port: True)
    connections.feed(packet(seq=0xFFFFFFFD, flags=SYN), 0.0)
    connections.feed(packet(to_pod=False, seq=5000, flags=SYN | ACK), 0.0)
    assert data(connections.feed(packet(seq=0x00000002, payload=b"cd"), 0.1)) == b""
    assert data(connections.feed(packet(seq=0xFFFFFFFE, payload=b"ab\x00\x01"), 0.2)) == b"ab\x00\x01cd"


def test_a_reset_from_either_side_closes_the_connection() -> None:
    for to_pod in (True, False):
        connections = opened()
        events = connections.feed(packet(to_pod=to_pod, seq=ISN + 1, flags=RST), 0.1)
        assert [type(e) for e in events] == [Closed]
        assert len(connections) == 0


def test_too_much_behind_a_hole_gives_the_copy_up() -> None:
    connections = CapturedConnections(lambda port: True, pending_limit=10)
    connections.feed(packet(seq=ISN, flags=SYN), 0.0)
    connections.feed(packet(to_pod=False, seq=5000, flags=SYN | ACK), 0.0)
    assert connections.feed(packet(seq=ISN + 2, payload=b"12345"), 0.1) == []
    events = connections.feed(packet(seq=ISN + 7, payload=b"678901"), 0.2)
    assert [type(e) for e in events] == [Lost, Closed]
    assert connections.feed(packet(seq=ISN + 1, payload=b"0"), 0.3) == []  # forgotten


def test_an_end_whose_bytes_never_all_came_is_given_up_after_a_moment() -> None:
    connections = opened()
    connections.feed(packet(seq=ISN + 3, payload=b"late"), 0.1)  # the first two bytes were missed
    assert connections.feed(packet(seq=ISN + 7, flags=FIN | ACK), 0.2) == []
    assert connections.sweep(0.2 + END_WAIT / 2) == []
    assert [type(e) for e in connections.sweep(0.2 + END_WAIT * 2)] == [Lost, Closed]


def test_a_client_end_the_capture_missed_is_given_up_after_the_pods() -> None:
    connections = opened()
    connections.feed(packet(seq=ISN + 1, payload=b"hi"), 0.1)
    assert connections.feed(packet(to_pod=False, seq=5001, flags=FIN | ACK), 0.2) == []
    assert [type(e) for e in connections.sweep(0.2 + END_WAIT * 2)] == [Lost, Closed]


def test_a_connection_nothing_was_seen_of_for_long_is_forgotten() -> None:
    connections = opened()
    assert connections.sweep(IDLE_LIMIT / 2) == []
    assert [type(e) for e in connections.sweep(IDLE_LIMIT * 2)] == [Closed]
