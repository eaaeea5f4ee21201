"""Packet capture of mirrored ports in the agent's network namespace (the I/O shell of ``tcp_capture``).

One ``AF_PACKET`` socket (``SOCK_DGRAM``: packets from their IP header on, whatever the link) hears every
interface of the namespace. A kernel filter keeps only what the mirror needs: segments to a captured port,
and the pod's FIN, SYN-ACK and RST segments from it, each once (loopback shows a packet leaving and
arriving), so neither the pod's answers nor any other traffic costs the agent anything. Captured packets
are read in the loop's reader callback, a batch at a time, without their address (the filter already
told arriving from leaving), and fed to ``CapturedConnections``; the events of each ``SLOTS`` packets,
each read into a buffer of its own, go to ``on_events`` together before the next are read, so that a
connection's consecutive segments go down a tunnel in one system call. Its owner may pause the reading
(``capture_hold``): what arrives meanwhile waits in the kernel's queue.
"""

from __future__ import annotations

import asyncio
import ctypes
import logging
import socket
import struct
import time
from collections.abc import Callable, Iterable

from pymirrord.agent.due import Due
from pymirrord.agent.tcp_capture import CapturedConnections, Event

log = logging.getLogger(__name__)

ETH_P_ALL = 0x0003
"""What the socket hears: every protocol, because a socket bound to IPv4 alone hears only what arrives,
and the pod's side of a connection leaves."""
ETH_P_IP = 0x0800
SKF_AD_PROTOCOL = 0xFFFFF000
"""BPF's "load the packet's protocol" (``SKF_AD_OFF + SKF_AD_PROTOCOL``)."""
SKF_AD_PKTTYPE = 0xFFFFF004
"""BPF's "load the packet's type": arriving, or leaving (``PACKET_OUTGOING``)."""
SKF_AD_IFINDEX = 0xFFFFF008
"""BPF's "load the index of the packet's interface"."""
LOOPBACK_INDEX = 1
"""Loopback's index in every network namespace: it is the first interface each one gets."""
SO_ATTACH_FILTER = 26
SO_RCVBUFFORCE = 33
PACKET_OUTGOING = 4
SO_MEMINFO = 55
"""The socket's memory counters; the first is what its receive queue holds (Linux 4.12 on)."""
SOL_PACKET = 263
PACKET_STATISTICS = 6
RECEIVE_BUFFER = 512 * 1024 * 1024
"""Bytes the kernel keeps for the agent while it is busy (it doubles them: 1 GiB of queued packets,
counted with their overhead), held only while the agent lags (or holds, ``capture_hold``): past them,
segments are lost to the copies. Copies of 1,000 MB uploads at full speed, which trail their clients,
queued up to 547 MB in twelve; with a quarter of this, 15 of 69 of them were given up."""
FRAME = 256 * 1024
"""Largest packet read: a segment the NIC splits later arrives whole (64 KiB and its headers)."""
BATCH = 64
"""Packets read in one callback before the loop runs everything else."""
SLOTS = 4
"""Packets read before their events are handed on, each into a buffer of its own (their data are views
of it, valid until the next are read): a connection's consecutive segments then go down its tunnel in one
``sendmsg``, still in the CPU's cache from being read. In alternated runs, copies of 1,000 MB uploads
kept 0.56-0.65x of direct handed on 4 at a time, against 0.46-0.52x one at a time (500 MB: 2,580-3,270
MB/s against 2,240-2,560); 2 or 8 at a time did as well, and 64 at a time (4 MiB, past the CPU's cache)
fell to 0.34-0.40x."""
SWEEP_EVERY = 0.5
MAX_FILTERED_PORTS = 60
"""More captured ports than this and the kernel filter keeps every TCP segment (jumps are 8 bits)."""

Instruction = tuple[int, int, int, int]


def port_filter(ports: Iterable[int]) -> list[Instruction]:
    """Classic BPF over a packet from its network header: IPv4, TCP, not a fragment's tail, and either
    arriving to one of ``ports`` (any segment) or from one (SYN, FIN or RST only), or leaving from one
    (FIN, RST or SYN-ACK: the pod's side of the connection's life) other than on loopback, where what
    leaves also arrives and is kept then.

    So the kernel decides what arrived and what left, and the agent reads packets without their address
    (which would cost a system call each, to name the interface); no leaving packet it keeps is a bare
    SYN, so any SYN it reads without an ACK is a client's."""
    ports = sorted(set(ports))
    if len(ports) > MAX_FILTERED_PORTS:
        ports = []  # every TCP segment: ``CapturedConnections`` sorts them out
    program: list[tuple[int, int | str, int | str, int | str]] = [
        (0x28, 0, 0, SKF_AD_PROTOCOL),  # ldh the packet's protocol (the socket hears every one)
        (0x15, 0, "drop", ETH_P_IP),
        (0x30, 0, 0, 9),  # ldb [9]: the IP protocol
        (0x15, 0, "drop", 6),  # not TCP: drop
        (0x28, 0, 0, 6),  # ldh [6]: flags and fragment offset
        (0x45, "drop", 0, 0x1FFF),  # a later fragment: drop
        (0xB1, 0, 0, 0),  # ldxb 4*([0]&0xf): the IP header's length
        (0x20, 0, 0, SKF_AD_PKTTYPE),
        (0x15, "leaving", 0, PACKET_OUTGOING),
    ]
    if ports:
        program.append((0x48, 0, 0, 2))  # ldh [x+2]: the destination port
        program += [(0x15, "accept", 0, port) for port in ports]
        program.append((0x48, 0, 0, 0))  # ldh [x+0]: the source port
        program += [(0x15, "flags", 0, port) for port in ports]
        program.append((0x05, 0, 0, "drop"))  # ja: neither port
    else:
        program.append((0x05, 0, 0, "accept"))
    labels = {"leaving": len(program)}
    program += [
        (0x20, 0, 0, SKF_AD_IFINDEX),
        (0x15, "drop", 0, LOOPBACK_INDEX),
    ]
    if ports:
        program.append((0x48, 0, 0, 0))  # ldh [x+0]: the source port
        program += [(0x15, "leaving flags", 0, port) for port in ports]
        program.append((0x05, 0, 0, "drop"))
    labels["leaving flags"] = len(program)
    program += [
        (0x50, 0, 0, 13),  # ldb [x+13]: the TCP flags
        (0x45, "accept", 0, 0x05),  # FIN or RST
        (0x54, 0, 0, 0x12),  # and: SYN and ACK
        (0x15, "accept", "drop", 0x12),
    ]
    labels["flags"] = len(program)
    program += [
        (0x50, 0, 0, 13),  # ldb [x+13]
        (0x45, "accept", "drop", 0x07),  # FIN, SYN or RST
    ]
    labels["accept"] = len(program)
    program.append((0x06, 0, 0, FRAME))
    labels["drop"] = len(program)
    program.append((0x06, 0, 0, 0))

    def resolve(index: int, target: int | str) -> int:
        return target if isinstance(target, int) else labels[target] - index - 1

    # A conditional jump's targets are its two offsets; an unconditional one's (ja) is its k.
    return [
        (code, resolve(index, true), resolve(index, false), resolve(index, k))
        for index, (code, true, false, k) in enumerate(program)
    ]


class Capture:
    """Captures the segments of ``ports_now()`` and feeds ``connections``; ``on_events`` carries out what
    comes of them."""

    def __init__(self, connections: CapturedConnections, on_events: Callable[[list[Event]], None]) -> None:
        self.connections = connections
        self._on_events = on_events
        self._sock: socket.socket | None = None
        self._paused = False
        buffer = memoryview(bytearray(FRAME * SLOTS))
        self._slots = [buffer[index * FRAME : (index + 1) * FRAME] for index in range(SLOTS)]
        self._sweeping = Due(SWEEP_EVERY, self._sweep)

    @property
    def capturing(self) -> bool:
        return self._sock is not None

    @property
    def paused(self) -> bool:
        return self._paused

    def pause(self) -> None:
        """Reads nothing until ``resume``: what comes meanwhile waits in the kernel's queue."""
        if self._sock is not None and not self._paused:
            asyncio.get_running_loop().remove_reader(self._sock.fileno())
            self._paused = True

    def resume(self) -> None:
        if self._paused:
            self._paused = False
            if self._sock is not None:
                asyncio.get_running_loop().add_reader(self._sock.fileno(), self._readable)

    def queued(self) -> int | None:
        """Bytes waiting in the kernel's queue, with their overhead (None: not capturing, or unknown)."""
        if self._sock is None:
            return None
        try:
            return int(struct.unpack_from("I", self._sock.getsockopt(socket.SOL_SOCKET, SO_MEMINFO, 36))[0])
        except OSError:
            return None

    @staticmethod
    def available() -> str | None:
        """None when this process may capture packets here; else why not."""
        try:
            socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(ETH_P_ALL)).close()
        except (OSError, AttributeError) as error:
            return str(error)
        return None

    def watch(self, ports: Iterable[int]) -> None:
        """Captures ``ports`` from now on (none: the socket is closed). ``OSError`` if it cannot."""
        ports = tuple(ports)
        if not ports:
            self.close()
            return
        if self._sock is None:
            sock = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(ETH_P_ALL))
            try:
                self._attach(sock, ports)
                try:
                    sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, RECEIVE_BUFFER)
                except OSError:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER)
                sock.setblocking(False)
            except BaseException:
                sock.close()
                raise
            self._sock = sock
            asyncio.get_running_loop().add_reader(sock.fileno(), self._readable)
            log.debug("capturing ports %s", list(ports))
        else:
            self._attach(self._sock, ports)

    def _attach(self, sock: socket.socket, ports: tuple[int, ...]) -> None:
        code = b"".join(struct.pack("HBBI", *instruction) for instruction in port_filter(ports))
        program = ctypes.create_string_buffer(code, len(code))  # the kernel copies it during the call
        sock.setsockopt(
            socket.SOL_SOCKET, SO_ATTACH_FILTER, struct.pack("HL", len(code) // 8, ctypes.addressof(program))
        )

    def close(self) -> None:
        if self._sock is not None:
            if not self._paused:
                asyncio.get_running_loop().remove_reader(self._sock.fileno())
            self._sock.close()
            self._sock = None
        self._paused = False
        self._sweeping.cancel()

    def _readable(self) -> None:
        sock = self._sock
        if sock is None:
            return
        now = time.monotonic()
        feed = self.connections.feed
        for _ in range(BATCH // SLOTS):
            events: list[Event] = []
            more = True
            for slot in self._slots:
                try:
                    size = sock.recv_into(slot)
                except BlockingIOError:
                    more = False
                    break
                except OSError as error:
                    log.warning("packet capture failed: %s", error)
                    more = False
                    break
                events += feed(slot[:size], now)  # a leaving bare SYN never passes the filter
            if events:
                self._on_events(events)  # now: their data may be views of the slots the next reads reuse
            if not more or self._paused or self._sock is not sock:  # (closed by what the events did)
                break
        self._sweep_soon()

    def _tell_drops(self) -> None:
        """Packets the kernel dropped since the last look (reading the counters resets them)."""
        if self._sock is None:
            return
        try:
            packets, drops = struct.unpack("II", self._sock.getsockopt(SOL_PACKET, PACKET_STATISTICS, 8))
        except OSError:
            return
        if drops:
            log.warning(
                "packet capture missed %d of %d packets while the agent was busy: the copies of the "
                "connections they belonged to are given up",
                drops,
                packets,  # the kernel counts the dropped ones in too
            )

    def _sweep_soon(self) -> None:
        if len(self.connections):
            self._sweeping.soon()

    def _sweep(self) -> None:
        self._tell_drops()
        events = self.connections.sweep(time.monotonic())
        if events:
            self._on_events(events)
        self._sweep_soon()
