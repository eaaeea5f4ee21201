"""Mirrored connections as packet capture sees them, put back into byte streams (sans-I/O).

A port that sessions only mirror is not redirected: the pod's app serves its clients directly, and the
agent captures the segments (``capture``, the shell, hands each captured IPv4 packet to ``feed``). A
client's SYN to a port ``watching`` says yes to starts a connection, announced (``Opened``) once the pod's
app accepted it (its SYN-ACK, or the client's ACK that answers one, whichever the capture shows first): a
connection the app refuses is never announced. The client's bytes come out in order (``Data``), however
the capture saw them: two CPUs hand it segments in the order each got to them, not
always the connection's, and a retransmission repeats what was already passed on. The client's FIN ends
its bytes (``ClientEnd``), once every byte before it came; a reset from either side, or the pod's FIN after
the client's end, closes the connection (``Closed``).

A segment the capture never got (it fell too far behind, and the kernel dropped it) leaves a hole no copy
can fill: once more than ``PENDING_LIMIT`` bytes wait behind one, or the connection's end came and
``END_WAIT`` passed without it, the connection's copy is given up (``Lost``). Connections opened before the
port was watched are never seen opening and are left alone, as a redirect would leave them.
"""

from __future__ import annotations

import ipaddress
import struct
from collections.abc import Callable
from dataclasses import dataclass, field

from pymirrord.protocol.types import SocketAddress

PENDING_LIMIT = 64 * 1024 * 1024
"""Bytes that may wait behind a missing segment before the connection's copy is given up."""
END_WAIT = 1.0
"""Seconds a connection's missing bytes may take once its end was seen."""
IDLE_LIMIT = 3600.0
"""Seconds after which a connection nothing was seen of is forgotten (its end was missed)."""
HANDSHAKE_LIMIT = 30.0
"""Seconds after which a connection the pod's app never accepted is forgotten (its refusal was missed)."""

_FIN, _SYN, _RST, _ACK = 0x01, 0x02, 0x04, 0x10
_HALF = 1 << 31
_MASK = 0xFFFFFFFF
_IP = struct.Struct("!BxH5xBxx4s4s")
"""Version and header length, total length, protocol, source and destination addresses."""
_TCP = struct.Struct("!HHI4xBB")
"""Source and destination ports, sequence number, data offset, flags."""

Key = tuple[bytes, int, bytes, int]
"""(client address, client port, pod address, pod port), addresses as 4 raw bytes."""


@dataclass(slots=True)
class Opened:
    """A client connected to a watched port: ``client`` to ``local`` (the pod's address and port)."""

    key: Key
    client: SocketAddress
    local: SocketAddress


@dataclass(slots=True)
class Data:
    """The client's next bytes, in order: a view of the captured packet (valid as long as the shell keeps
    that packet's buffer: whoever keeps them copies them), or bytes."""

    key: Key
    data: bytes | memoryview


@dataclass(slots=True)
class ClientEnd:
    """The client sent its last byte (its FIN came, and everything before it)."""

    key: Key


@dataclass(slots=True)
class Closed:
    key: Key
    reason: str


@dataclass(slots=True)
class Lost:
    """Bytes of the client's were never captured: the copy cannot go on."""

    key: Key
    reason: str


Event = Opened | Data | ClientEnd | Closed | Lost
"""(Plain slotted dataclasses rather than frozen ones: one is built for every packet of a transfer.)"""


@dataclass
class _Connection:
    key: Key
    expected: int
    """The sequence number of the client's next byte."""
    seen: float
    pending: dict[int, bytes] = field(default_factory=dict)
    pending_bytes: int = 0
    end: int | None = None
    """The sequence number after the client's last byte, once its FIN was seen."""
    end_seen: float = 0.0
    ended: bool = False
    pod_finished: bool = False
    accepted: bool = False
    """The pod's app accepted the connection (and it was announced)."""


def _address(raw: bytes, port: int) -> SocketAddress:
    return SocketAddress(str(ipaddress.IPv4Address(raw)), port)


class CapturedConnections:
    """The watched ports' connections, from their captured segments."""

    def __init__(self, watching: Callable[[int], bool], *, pending_limit: int = PENDING_LIMIT) -> None:
        """``watching(port)``: whether a new connection to ``port`` is this capture's to copy (the port is
        mirrored and nothing redirects it)."""
        self._watching = watching
        self._pending_limit = pending_limit
        self._connections: dict[Key, _Connection] = {}

    def __len__(self) -> int:
        return len(self._connections)

    def feed(self, packet: bytes | memoryview, now: float) -> list[Event]:
        """One captured IPv4 packet (from its IP header on), seen at ``now`` (seconds). A SYN without ACK
        to a watched port opens a connection: the capture's filter lets no leaving one through (that
        would be the pod's own connection out)."""
        # Every packet of a bulk transfer passes here: one unpack per header, no more.
        if len(packet) < 40:
            return []
        version, length, protocol, source, destination = _IP.unpack_from(packet)
        if version >> 4 != 4 or protocol != 6:
            return []
        tcp = (version & 0x0F) * 4
        total = min(len(packet), length) or len(packet)
        if total < tcp + 20:
            return []
        source_port, destination_port, sequence, offset, flags = _TCP.unpack_from(packet, tcp)
        payload = packet[tcp + (offset >> 4) * 4 : total]
        key = (source, source_port, destination, destination_port)
        connection = self._connections.get(key)
        if connection is not None:
            connection.seen = now
            return self._from_client(connection, sequence, flags, payload, now)
        reverse = (destination, destination_port, source, source_port)
        connection = self._connections.get(reverse)
        if connection is not None:
            connection.seen = now
            return self._from_pod(connection, flags)
        if flags & _SYN and not flags & _ACK and self._watching(destination_port):
            self._connections[key] = _Connection(key, (sequence + 1) & _MASK, now)
        return []

    def sweep(self, now: float) -> list[Event]:
        """Connections whose missing bytes did not come within ``END_WAIT`` of their end (or of the pod's
        end, when the client's was missed), and those nothing was seen of for ``IDLE_LIMIT``."""
        events: list[Event] = []
        for key, connection in list(self._connections.items()):
            if connection.end is not None and not connection.ended and now - connection.end_seen > END_WAIT:
                events += self._lose(connection, "segments before the client's end were never captured")
            elif connection.pod_finished and now - connection.seen > END_WAIT:
                # The pod's app closed and the client's end never came: the capture missed it.
                events += self._lose(connection, "the client's end was never captured")
            elif not connection.accepted and now - connection.seen > HANDSHAKE_LIMIT:
                del self._connections[key]  # never announced: nobody to tell
            elif now - connection.seen > IDLE_LIMIT:
                events += self._close(key, "nothing was seen of the connection for an hour")
        return events

    def forget(self, key: Key) -> None:
        """Nobody wants this connection's bytes any more."""
        self._connections.pop(key, None)

    # --- one connection ------------------------------------------------------------------------------

    def _from_client(
        self, connection: _Connection, sequence: int, flags: int, payload: bytes | memoryview, now: float
    ) -> list[Event]:
        if flags & _RST:
            return self._close(connection.key, "the client reset the connection")
        if flags & _SYN:
            return []  # the SYN again: nothing new
        # Anything but a SYN from the client answers the pod's SYN-ACK: the app accepted the connection.
        events: list[Event] = [] if connection.accepted else self._accepted(connection)
        if payload and not connection.ended:
            events += self._segment(connection, sequence, payload)
            if connection.key not in self._connections:
                return events  # given up
        if flags & _FIN and connection.end is None:
            connection.end = (sequence + len(payload)) & _MASK
            connection.end_seen = now
        if connection.end is not None:  # (before the client's FIN nothing can end: most segments)
            events += self._maybe_end(connection)
        return events

    def _from_pod(self, connection: _Connection, flags: int) -> list[Event]:
        if flags & _RST:
            return self._close(connection.key, "the pod's app reset the connection")
        if flags & _SYN:
            return [] if connection.accepted else self._accepted(connection)
        if flags & _FIN:
            connection.pod_finished = True
            return self._maybe_end(connection)
        return []

    def _segment(self, connection: _Connection, sequence: int, payload: bytes | memoryview) -> list[Event]:
        ahead = (sequence - connection.expected) & _MASK
        if ahead >= _HALF:  # it starts before the next byte: a retransmission, perhaps with new bytes after
            behind = (connection.expected - sequence) & _MASK
            if behind >= len(payload):
                return []
            payload, ahead = payload[behind:], 0
        if not ahead and not connection.pending:  # the common case: the next bytes, nothing waiting
            connection.expected = (connection.expected + len(payload)) & _MASK
            return [Data(connection.key, payload)]
        if ahead:
            if sequence not in connection.pending:
                connection.pending[sequence] = bytes(payload)
                connection.pending_bytes += len(payload)
            if connection.pending_bytes > self._pending_limit:
                return self._lose(connection, f"more than {self._pending_limit >> 20} MiB came after a hole")
            return []
        out = [payload]
        connection.expected = (connection.expected + len(payload)) & _MASK
        while connection.pending:
            data = connection.pending.pop(connection.expected, None)
            if data is None:
                self._trim(connection)
                data = connection.pending.pop(connection.expected, None)
                if data is None:
                    break
            connection.pending_bytes -= len(data)
            out.append(data)
            connection.expected = (connection.expected + len(data)) & _MASK
        return [Data(connection.key, b"".join(out) if len(out) > 1 else out[0])]

    @staticmethod
    def _trim(connection: _Connection) -> None:
        """Waiting segments that start before the next byte (retransmissions that overlap both what was
        passed on and what follows) are cut to start at it."""
        expected = connection.expected
        for start in [s for s in connection.pending if (expected - s) & _MASK < _HALF]:
            data = connection.pending.pop(start)
            connection.pending_bytes -= len(data)
            overlap = (expected - start) & _MASK
            if overlap < len(data) and expected not in connection.pending:
                connection.pending[expected] = data[overlap:]
                connection.pending_bytes += len(data) - overlap

    def _maybe_end(self, connection: _Connection) -> list[Event]:
        key = connection.key
        events: list[Event] = []
        if not connection.ended and connection.end is not None and connection.expected == connection.end:
            connection.ended = True
            events.append(ClientEnd(key))
        if connection.ended and connection.pod_finished:
            events += self._close(key, "the connection ended")
        return events

    @staticmethod
    def _accepted(connection: _Connection) -> list[Event]:
        connection.accepted = True
        source, source_port, destination, destination_port = connection.key
        return [
            Opened(connection.key, _address(source, source_port), _address(destination, destination_port))
        ]

    def _lose(self, connection: _Connection, reason: str) -> list[Event]:
        """The copy cannot go on: nothing more of the connection is wanted (its FIN may never be seen)."""
        if not connection.accepted:
            return self._close(connection.key, reason)  # never announced: nothing to give up
        return [Lost(connection.key, reason), *self._close(connection.key, "its copies were given up")]

    def _close(self, key: Key, reason: str) -> list[Event]:
        connection = self._connections.pop(key, None)
        if connection is None or not connection.accepted:
            return []  # never announced (the pod's app refused it): nobody to tell
        return [Closed(key, reason)]
