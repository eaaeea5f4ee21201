"""Bench app: a mirror made by packet capture, for a reference row (no pymirrord, Linux, root).

usage: capture_copy.py PORT COPY_HOST COPY_PORT    (prints "capture ready" once capturing)

Captures the TCP segments sent to PORT on every interface of its network namespace (an ``AF_PACKET``
socket with a kernel filter for that port, so other traffic costs it nothing), and writes the payload of
the first connection it sees open, in sequence order, to COPY_HOST:COPY_PORT. At that connection's end it
prints ``drops D of F frames, copied N holes H at T`` (frames the kernel dropped because the capture fell
behind; bytes written; holes where segments never came, which a copy cannot fill; ``time.monotonic()``
once the copy's sink answered, so that a benchmark tells how far the copy trailed the client) and exits.
The client's connection goes straight to the pod's app, whose speed the copy never holds back: the kernel
hands the capture a reference to each segment, and a capture that falls behind loses segments instead of
slowing anyone. That is the other way to mirror, next to a relay in the connection's path, and this row shows
what it allows on the machine. It imports nothing of pymirrord on purpose (the filter and the reordering
are written again here, for one connection, with no event loop), so that it measures the method, not
pymirrord's implementation of it.
"""

from __future__ import annotations

import ctypes
import socket
import struct
import sys
import time

ETH_P_IP = 0x0800
SO_ATTACH_FILTER = 26
SO_RCVBUFFORCE = 33
PACKET_OUTGOING = 4
RECEIVE_BUFFER = 512 << 20
"""The agent's (``pymirrord.agent.capture.RECEIVE_BUFFER``): the two methods compared with the same queue."""
FRAME = 1 << 18  # a segment the NIC would split later arrives whole: up to 64 KiB and its headers
PENDING_LIMIT = 64 << 20
"""Bytes seen ahead of a missing segment that wait for it before it counts as lost."""
END_WAIT = 1.0
"""Seconds the last missing segments may take once the connection's end was seen."""
IDLE_WAIT = 5.0
"""Seconds with no segment after which the connection's end counts as missed (a hole, and the end)."""
SOL_PACKET = 263
PACKET_STATISTICS = 6
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


class _Stream:
    """One direction of a TCP connection put back in order: segments the capture saw ahead of a missing
    one wait in ``pending`` (two CPUs hand the capture segments in the order each got to them, not
    always the connection's), retransmitted bytes are skipped. Past ``PENDING_LIMIT`` bytes waiting, the
    missing ones count as a hole and the copy goes on after it."""

    def __init__(self, first: int, copy: socket.socket) -> None:
        self.expected = first
        self.copy = copy
        self.pending: dict[int, bytes] = {}
        self.pending_bytes = 0
        self.copied = 0
        self.holes = 0
        self.end: int | None = None  # the sequence number after the last byte (its FIN's)

    def segment(self, sequence: int, payload: memoryview) -> None:
        ahead = (sequence - self.expected) & 0xFFFFFFFF
        if ahead >= 1 << 31:  # it starts before what was copied: a retransmission
            behind = (self.expected - sequence) & 0xFFFFFFFF
            if behind >= len(payload):
                return
            payload, sequence, ahead = payload[behind:], self.expected, 0
        if ahead:
            if sequence not in self.pending:
                self.pending[sequence] = bytes(payload)
                self.pending_bytes += len(payload)
            if self.pending_bytes > PENDING_LIMIT:
                self.holes += 1
                self.expected = min(self.pending, key=lambda s: (s - self.expected) & 0xFFFFFFFF)
                self._flush()
            return
        self._write(payload)
        self._flush()

    def _write(self, payload: memoryview | bytes) -> None:
        self.copy.sendall(payload)
        self.copied += len(payload)
        self.expected = (self.expected + len(payload)) & 0xFFFFFFFF

    def _flush(self) -> None:
        while self.pending:
            data = self.pending.pop(self.expected, None)
            if data is None:
                # What waits may start inside what was written (a retransmission overlapping both).
                for sequence in [s for s in self.pending if (self.expected - s) & 0xFFFFFFFF < 1 << 31]:
                    waiting = self.pending.pop(sequence)
                    self.pending_bytes -= len(waiting)
                    overlap = (self.expected - sequence) & 0xFFFFFFFF
                    if overlap < len(waiting):
                        self.pending[self.expected] = waiting[overlap:]
                        self.pending_bytes += len(waiting) - overlap
                if self.expected not in self.pending:
                    return
                continue
            self.pending_bytes -= len(data)
            self._write(data)

    @property
    def done(self) -> bool:
        return self.end is not None and self.expected == self.end


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
    stream: _Stream | None = None
    print("capture ready", flush=True)
    while stream is None or not stream.done:
        if stream is not None:
            # Once the end is known, what is still missing has a moment to come; before, a capture that
            # missed the end itself must not wait for ever.
            capture.settimeout(END_WAIT if stream.end is not None else IDLE_WAIT)
        try:
            size, address = capture.recvfrom_into(buffer)
        except TimeoutError:
            if stream is not None:
                stream.holes += 1
            break
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
                peer, stream = source, _Stream((sequence + 1) & 0xFFFFFFFF, copy)
            continue
        if source != peer or stream is None:
            continue
        if payload:
            stream.segment(sequence, payload)
        if flags & (_FIN | _RST):
            stream.end = (sequence + len(payload)) & 0xFFFFFFFF
    assert stream is not None
    copy.shutdown(socket.SHUT_WR)
    while copy.recv(64):
        pass  # the sink's count: the copy has arrived whole once it answers
    ended = time.monotonic()
    packets, drops = struct.unpack("II", capture.getsockopt(SOL_PACKET, PACKET_STATISTICS, 8))
    print(
        f"drops {drops} of {packets} frames, copied {stream.copied} holes {stream.holes} at {ended:.6f}",
        flush=True,
    )


if __name__ == "__main__":
    main()
