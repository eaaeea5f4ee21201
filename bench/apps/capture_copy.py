"""Bench app: a mirror made by packet capture, for a reference row (no pymirrord, Linux, root).

usage: capture_copy.py PORT COPY_HOST COPY_PORT    (prints "capture ready" once capturing)

Captures the TCP segments sent to PORT on every interface of its network namespace (an ``AF_PACKET``
socket with a kernel filter for that port, so other traffic costs it nothing), and writes the payload of
the first connection it sees open, in sequence order, to COPY_HOST:COPY_PORT. At that connection's end
it prints ``copied N gaps G`` (bytes written; holes where segments were missed, which a copy cannot
fill) and exits. The client's connection goes straight to the pod's app, whose speed the copy never
holds back: the kernel hands the capture a reference to each segment, and a capture that falls behind
loses segments instead of slowing anyone. That is the other way to mirror, next to a relay in the
connection's path, and this row shows what it allows on the machine.
"""

from __future__ import annotations

import ctypes
import socket
import struct
import sys

ETH_P_IP = 0x0800
SO_ATTACH_FILTER = 26
SO_RCVBUFFORCE = 33
PACKET_OUTGOING = 4
RECEIVE_BUFFER = 64 << 20
FRAME = 1 << 18  # a segment the NIC would split later arrives whole: up to 64 KiB and its headers
_SYN, _FIN, _RST = 0x02, 0x01, 0x04


def _tcp_to_port(port: int) -> ctypes.Array[ctypes.c_char]:
    """Classic BPF for "IPv4, TCP, not a fragment's tail, destination port ``port``": what tcpdump's
    ``tcp dst port PORT`` compiles to, for IPv4 only."""
    program = [
        (0x28, 0, 0, 12),  # ldh [12]: the ethertype
        (0x15, 0, 8, ETH_P_IP),  # not IPv4: drop
        (0x30, 0, 0, 23),  # ldb [23]: the IP protocol
        (0x15, 0, 6, 6),  # not TCP: drop
        (0x28, 0, 0, 20),  # ldh [20]: flags and fragment offset
        (0x45, 4, 0, 0x1FFF),  # a later fragment: drop
        (0xB1, 0, 0, 14),  # ldxb 4*([14]&0xf): the IP header's length
        (0x48, 0, 0, 16),  # ldh [x+16]: the TCP destination port
        (0x15, 0, 1, port),
        (0x06, 0, 0, FRAME),  # keep the whole frame
        (0x06, 0, 0, 0),  # drop
    ]
    code = b"".join(struct.pack("HBBI", *instruction) for instruction in program)
    return ctypes.create_string_buffer(code, len(code))


def main() -> None:
    port, copy_host, copy_port = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    capture = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_IP))
    code = _tcp_to_port(port)
    program = struct.pack("HL", len(code) // 8, ctypes.addressof(code))
    capture.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, program)
    capture.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, RECEIVE_BUFFER)
    # Left unbound, a packet socket hears every interface of the namespace.
    copy = socket.create_connection((copy_host, copy_port))
    buffer = bytearray(FRAME)
    view = memoryview(buffer)
    peer: tuple[bytes, int] | None = None
    expected = 0
    copied = gaps = 0
    print("capture ready", flush=True)
    while True:
        size, address = capture.recvfrom_into(buffer)
        if address[2] == PACKET_OUTGOING:
            continue  # on loopback a segment is seen leaving and arriving: once is enough
        ip_header = (buffer[14] & 0x0F) * 4
        tcp = 14 + ip_header
        source = (bytes(buffer[26:30]), (buffer[tcp] << 8) | buffer[tcp + 1])
        sequence = int.from_bytes(buffer[tcp + 4 : tcp + 8], "big")
        flags = buffer[tcp + 13]
        end = min(size, 14 + ((buffer[16] << 8) | buffer[17]))
        payload = view[tcp + (buffer[tcp + 12] >> 4) * 4 : end]
        if flags & _SYN:
            if peer is None:
                peer, expected = source, (sequence + 1) & 0xFFFFFFFF
            continue
        if source != peer:
            continue
        ahead = (sequence - expected) & 0xFFFFFFFF
        if payload and ahead < 1 << 31:
            gaps += ahead > 0  # segments missed: the copy goes on after the hole
            copy.sendall(payload)
            copied += len(payload)
            expected = (sequence + len(payload)) & 0xFFFFFFFF
        elif payload and (expected - sequence) & 0xFFFFFFFF < len(payload):
            skip = (expected - sequence) & 0xFFFFFFFF  # a retransmission overlapping what was copied
            copy.sendall(payload[skip:])
            copied += len(payload) - skip
            expected = (sequence + len(payload)) & 0xFFFFFFFF
        if flags & (_FIN | _RST):
            break
    copy.shutdown(socket.SHUT_WR)
    while copy.recv(64):
        pass  # the sink's count: the copy has arrived whole once it answers
    print(f"copied {copied} gaps {gaps}", flush=True)


if __name__ == "__main__":
    main()
