"""Outgoing connections and name lookups made from the target's network namespace for sessions.

The agent runs inside the target's namespace, so its sockets are the pod's: a TCP connection or a connected
UDP socket opened here reaches what the pod reaches (its own 127.0.0.1 included). Every socket carries the
agent's bypass mark, so the agent's own redirect rules never catch it. ``OutgoingTable`` keeps the
bookkeeping; this module moves bytes between sockets and the sessions' outboxes.
"""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import logging
import socket
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any

from pymirrord.agent.dns import Resolver
from pymirrord.agent.handover import HandoverChannels
from pymirrord.agent.incoming import SO_MARK, SessionSink
from pymirrord.agent.outgoing_table import OutgoingTable, describe_error
from pymirrord.agent.tunnels import IdleTunnel, Tunnels
from pymirrord.flow import FlowControl, Verdict
from pymirrord.protocol.agent_to_session import (
    CODEC,
    AgentToSession,
    OutgoingClosed,
    OutgoingConnectResult,
    OutgoingRead,
    OutgoingWriteFlow,
)
from pymirrord.protocol.handover_channel import Kind
from pymirrord.protocol.outgoing_types import Transport
from pymirrord.protocol.session_to_agent import DnsLookup, OutgoingConnect
from pymirrord.protocol.types import SocketAddress
from pymirrord.streams import backlog, drained, open_stream, unsliced
from pymirrord.tunnel.pump import TunnelRelay, reset

log = logging.getLogger(__name__)

CONNECT_TIMEOUT = 20.0
"""The longest a TCP handshake may take when the session does not ask for less."""
READ_CHUNK = 1024 * 1024
WRITE_HIGH_WATER = 1024 * 1024
"""Bytes buffered towards a remote peer before its session is asked to hold that connection's writes."""
WRITE_LOW_WATER = 256 * 1024
"""The session may write again once no more than this waits for the remote peer."""
MAX_DATAGRAM = 65535


@dataclass
class _Stream:
    writer: asyncio.StreamWriter
    task: asyncio.Task[None] | None = None
    readable: asyncio.Event = field(default_factory=asyncio.Event)
    """Clear while the session asked to stop reading the remote peer (its app reads slowly)."""
    waiter: asyncio.Task[None] | None = None
    """Waits for the remote peer to take what the session wrote, while the session holds its writes."""

    def __post_init__(self) -> None:
        self.readable.set()


class _DatagramProtocol(asyncio.DatagramProtocol):
    def __init__(self, outgoing: Outgoing, connection_id: int) -> None:
        self._outgoing = outgoing
        self._connection_id = connection_id

    def datagram_received(self, data: bytes, addr: object) -> None:
        self._outgoing._from_remote(self._connection_id, data)

    def error_received(self, exc: Exception) -> None:
        # An ICMP error for one datagram (port unreachable): UDP goes on, as it does for the app.
        log.debug("outgoing UDP connection %d: %s", self._connection_id, exc)


def _family_and_address(remote: SocketAddress) -> tuple[socket.AddressFamily, tuple[str, int]]:
    host = remote.host
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        raise OSError(errno.EINVAL, f"{host!r} is not an IP address") from None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return socket.AF_INET, (str(address.ipv4_mapped), remote.port)
    family = socket.AF_INET6 if address.version == 6 else socket.AF_INET
    return family, (host, remote.port)


def _socket_address(raw: object) -> SocketAddress:
    if isinstance(raw, tuple) and len(raw) >= 2:
        return SocketAddress(str(raw[0]), int(raw[1]))
    return SocketAddress("0.0.0.0", 0)


class Outgoing:
    """Serves every session's outgoing connections and lookups; sessions attach their outboxes first."""

    def __init__(
        self,
        resolver: Resolver,
        *,
        bypass_mark: int | None,
        read_chunk: int = READ_CHUNK,
        handover: HandoverChannels | None = None,
    ) -> None:
        self._resolver = resolver
        self._handover = handover
        self._bypass_mark = bypass_mark
        self._read_chunk = read_chunk
        self._table = OutgoingTable()
        self._write_flow = FlowControl(WRITE_HIGH_WATER, WRITE_LOW_WATER)
        self._sinks: dict[int, SessionSink] = {}
        self._streams: dict[int, _Stream] = {}
        self._datagrams: dict[int, asyncio.DatagramTransport] = {}
        """Made from connected sockets: sends name no address (uvloop refuses one there, with EISCONN)."""
        self._tasks: set[asyncio.Task[None]] = set()
        self.tunnels: Tunnels | None = None
        """Sessions' tunnels: a TCP connection made in one that the session named moves its bytes there."""
        self._tunneled: dict[int, TunnelRelay] = {}

    @property
    def open_connections(self) -> int:
        return len(self._table)

    # --- sessions ------------------------------------------------------------------------------------------

    def attach(self, session: int, sink: SessionSink) -> None:
        self._sinks[session] = sink

    def session_gone(self, session: int) -> None:
        self._sinks.pop(session, None)
        for connection_id in self._table.session_gone(session):
            self._close_socket(connection_id)

    def connect(self, session: int, request: OutgoingConnect) -> None:
        """Opens the connection in the background; the answer goes to the session's outbox."""
        self._spawn(self._connect(session, request))

    def lookup(self, session: int, request: DnsLookup) -> None:
        """Resolves in the background; the answer goes to the session's outbox."""
        self._spawn(self._lookup(session, request))

    def write(self, session: int, connection_id: int, data: bytes) -> None:
        """Never waits: the session's other messages must not queue behind one slow remote peer."""
        connection = self._table.owned(session, connection_id)
        if connection is None:
            return  # already over: the session hears (or heard) OutgoingClosed
        done = self._table.from_app(connection_id, len(data))
        datagram = self._datagrams.get(connection_id)
        if datagram is not None:
            datagram.sendto(data)
            return
        stream = self._streams.get(connection_id)
        if stream is None or stream.writer.is_closing():
            return
        if data:
            stream.writer.write(unsliced(data))
        elif stream.writer.can_write_eof():
            stream.writer.write_eof()
        if done:
            self._finish(connection_id, "", "")
            return
        if self._write_flow.grew(connection_id, backlog(stream.writer)) is Verdict.PAUSE:
            self._send(session, OutgoingWriteFlow(connection_id, True))
            stream.waiter = asyncio.get_running_loop().create_task(
                self._resume_writes(connection_id, session, stream)
            )

    async def _resume_writes(self, connection_id: int, session: int, stream: _Stream) -> None:
        try:
            await drained(stream.writer, WRITE_LOW_WATER)
        except OSError as error:
            # The peer is gone; the connection's reader may be paused and never see it, so it ends here.
            self._finish(connection_id, *describe_error(error))
            return
        if self._write_flow.shrank(connection_id, backlog(stream.writer)) is Verdict.RESUME:
            self._send(session, OutgoingWriteFlow(connection_id, False))

    def read_flow(self, session: int, connection_id: int, paused: bool) -> None:
        """The session's app reads the connection slowly (``paused``), or caught up again."""
        stream = self._streams.get(connection_id)
        if stream is None or self._table.owned(session, connection_id) is None:
            return
        if paused:
            stream.readable.clear()
        else:
            stream.readable.set()

    def close(self, session: int, connection_id: int) -> None:
        if self._table.owned(session, connection_id) is None:
            return
        self._table.forget(connection_id)
        self._close_socket(connection_id)

    async def close_all(self) -> None:
        for relay in list(self._tunneled.values()):
            relay.abort("the agent is stopping")
        for connection in self._table:
            self._table.forget(connection.id)
            self._close_socket(connection.id)
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    # --- connecting ----------------------------------------------------------------------------------------

    async def _connect(self, session: int, request: OutgoingConnect) -> None:
        try:
            family, address = _family_and_address(request.remote)
            if request.handover and await self._hand_over(session, request, family, address):
                return
            if request.transport is Transport.UDP:
                connection_id = await self._open_udp(session, request, family, address)
            else:
                connection_id = await self._open_tcp(session, request, family, address)
        except (OSError, asyncio.TimeoutError) as error:
            if request.tunnel and self.tunnels is not None:
                self.tunnels.discard(session, request.tunnel)
            if isinstance(error, asyncio.TimeoutError) and not isinstance(error, OSError):
                error = TimeoutError()
            name, message = describe_error(error)
            log.debug("outgoing %s to %s failed: %s", request.transport.value, request.remote, message)
            self._send(
                session,
                OutgoingConnectResult(
                    request.request_id, request.transport, 0, None, name, message, handed_over=False
                ),
            )
            return
        connection = self._table.get(connection_id)
        if connection is None:
            return
        log.debug(
            "outgoing %s connection %d from %s to %s for session %d",
            request.transport.value,
            connection_id,
            connection.local,
            request.remote,
            session,
        )

    async def _hand_over(
        self, session: int, request: OutgoingConnect, family: socket.AddressFamily, address: tuple[str, int]
    ) -> bool:
        """Connects in the pod and passes the socket itself to a local session; False: relay instead."""
        if self._handover is None or not self._handover.can_take(session):
            return False
        udp = request.transport is Transport.UDP
        sock = self._new_socket(family, socket.SOCK_DGRAM if udp else socket.SOCK_STREAM)
        try:
            if udp:
                sock.connect(address)  # picks a route and a local port, sends nothing
            else:
                timeout = request.timeout_ms / 1000 if request.timeout_ms else CONNECT_TIMEOUT
                loop = asyncio.get_running_loop()
                await asyncio.wait_for(loop.sock_connect(sock, address), min(timeout, CONNECT_TIMEOUT))
            local = _socket_address(sock.getsockname())
            if not self._handover.send(session, Kind.OUTGOING, request.request_id, sock):
                return False  # the connection is made again and relayed; rare: a full channel
            result = OutgoingConnectResult(
                request.request_id, request.transport, 0, local, "", "", handed_over=True
            )
            self._send(session, result)
            log.debug(
                "outgoing %s to %s handed to session %d", request.transport.value, request.remote, session
            )
            return True
        finally:
            sock.close()  # the session holds its own descriptor of it now, or it failed

    def _new_socket(self, family: socket.AddressFamily, kind: socket.SocketKind) -> socket.socket:
        sock = socket.socket(family, kind)
        try:
            if self._bypass_mark is not None:
                # Marked before connect, so the first packet already passes the redirect rules untouched.
                sock.setsockopt(socket.SOL_SOCKET, SO_MARK, self._bypass_mark)
            sock.setblocking(False)
        except BaseException:
            sock.close()
            raise
        return sock

    async def _open_tcp(
        self, session: int, request: OutgoingConnect, family: socket.AddressFamily, address: tuple[str, int]
    ) -> int:
        sock = self._new_socket(family, socket.SOCK_STREAM)
        timeout = request.timeout_ms / 1000 if request.timeout_ms else CONNECT_TIMEOUT
        try:
            loop = asyncio.get_running_loop()
            await asyncio.wait_for(loop.sock_connect(sock, address), min(timeout, CONNECT_TIMEOUT))
            if request.tunnel and self.tunnels is not None:
                tunnel = await self.tunnels.claim(session, request.tunnel)
                if tunnel is not None:
                    return self._open_tunneled(session, request, sock, tunnel)
            reader, writer = await open_stream(sock, self._read_chunk)
        except BaseException:
            sock.close()
            raise
        writer.transport.set_write_buffer_limits(high=WRITE_HIGH_WATER)
        local = _socket_address(sock.getsockname())
        if session not in self._sinks:
            writer.close()  # the session left while we connected
            raise ConnectionAbortedError(errno.ECONNABORTED, "the session went away")
        connection_id = self._table.open(session, Transport.TCP, request.remote, local)
        stream = _Stream(writer)
        self._streams[connection_id] = stream
        # The answer is queued before the first read can be, so the session always hears of the id first.
        self._send(
            session,
            OutgoingConnectResult(
                request.request_id, Transport.TCP, connection_id, local, "", "", handed_over=False
            ),
        )
        stream.task = self._spawn(self._pump(connection_id, session, reader))
        return connection_id

    def _open_tunneled(
        self, session: int, request: OutgoingConnect, sock: socket.socket, tunnel: IdleTunnel
    ) -> int:
        local = _socket_address(sock.getsockname())
        if session not in self._sinks:
            tunnel.sock.close()
            raise ConnectionAbortedError(errno.ECONNABORTED, "the session went away")
        connection_id = self._table.open(session, Transport.TCP, request.remote, local)
        tunnels = self.tunnels
        assert tunnels is not None, "a tunnel was claimed, so the agent has tunnels"
        try:
            relay = tunnels.relay(session, tunnel, sock)
        except BaseException:
            self._table.forget(connection_id)
            tunnel.sock.close()
            raise
        self._tunneled[connection_id] = relay
        result = OutgoingConnectResult(
            request.request_id, Transport.TCP, connection_id, local, "", "", False, request.tunnel
        )
        self._send(session, result)
        self._spawn(
            self._relay_tunneled(connection_id, relay, sock, tunnel.sock, (session, tunnel.tunnel_id))
        )
        return connection_id

    async def _relay_tunneled(
        self,
        connection_id: int,
        relay: TunnelRelay,
        sock: socket.socket,
        tunnel: socket.socket,
        named: tuple[int, int],
    ) -> None:
        """Remote peer <-> tunnel until both ends closed; the session hears how it ended."""
        failure: str | None = "stopped"
        try:
            relay.start()
            failure = (await relay.wait()).failure
        finally:
            self._tunneled.pop(connection_id, None)
            if self.tunnels is not None:
                self.tunnels.unlisten(*named)
            for end in (sock, tunnel):
                if failure is not None:
                    reset(end)
                else:
                    end.close()
            if failure is None:
                self._finish(connection_id, "", "")
            else:
                self._finish(connection_id, "ECONNRESET", f"the connection failed: {failure}")

    async def _open_udp(
        self, session: int, request: OutgoingConnect, family: socket.AddressFamily, address: tuple[str, int]
    ) -> int:
        sock = self._new_socket(family, socket.SOCK_DGRAM)
        try:
            sock.connect(address)  # UDP: picks a route and a local port, sends nothing
            local = _socket_address(sock.getsockname())
        except BaseException:
            sock.close()
            raise
        connection_id = self._table.open(session, Transport.UDP, request.remote, local)
        loop = asyncio.get_running_loop()
        try:
            transport, _ = await loop.create_datagram_endpoint(
                lambda: _DatagramProtocol(self, connection_id), sock=sock
            )
        except BaseException:
            self._table.forget(connection_id)
            sock.close()
            raise
        self._datagrams[connection_id] = transport
        self._send(
            session,
            OutgoingConnectResult(
                request.request_id, Transport.UDP, connection_id, local, "", "", handed_over=False
            ),
        )
        return connection_id

    # --- relaying ------------------------------------------------------------------------------------------

    async def _pump(self, connection_id: int, session: int, reader: asyncio.StreamReader) -> None:
        """Remote peer -> session, until end of stream or failure."""
        try:
            while True:
                data = await reader.read(self._read_chunk)
                if self._table.get(connection_id) is None:
                    return  # the session closed it meanwhile
                done = self._table.from_remote(connection_id, len(data))
                self._send(session, OutgoingRead(connection_id, data))
                if done:
                    self._finish(connection_id, "", "")
                    return
                if not data:
                    return  # half-closed by the peer; the app may still send
                sink = self._sinks.get(session)
                if sink is not None:
                    await sink.wait_writable()
                stream = self._streams.get(connection_id)
                if stream is not None:
                    await stream.readable.wait()
        except (ConnectionError, OSError) as error:
            name, message = describe_error(error)
            self._finish(connection_id, name, message)

    def _from_remote(self, connection_id: int, data: bytes) -> None:
        connection = self._table.get(connection_id)
        if connection is not None:
            self._table.from_remote(connection_id, len(data))
            self._send(connection.session, OutgoingRead(connection_id, data))

    def _finish(self, connection_id: int, error: str, message: str) -> None:
        """The connection is over on the pod's side: tell its session and release the socket."""
        connection = self._table.forget(connection_id)
        if connection is None:
            return
        self._send(connection.session, OutgoingClosed(connection_id, error, message))
        self._close_socket(connection_id)

    def _close_socket(self, connection_id: int) -> None:
        relay = self._tunneled.get(connection_id)
        if relay is not None:
            relay.abort("closed")
        stream = self._streams.pop(connection_id, None)
        self._write_flow.forget(connection_id)
        if stream is not None:
            if stream.task is not None and stream.task is not asyncio.current_task():
                stream.task.cancel()
            if stream.waiter is not None and stream.waiter is not asyncio.current_task():
                stream.waiter.cancel()
            stream.writer.close()
        datagram = self._datagrams.pop(connection_id, None)
        if datagram is not None:
            datagram.close()

    # --- lookups -------------------------------------------------------------------------------------------

    async def _lookup(self, session: int, request: DnsLookup) -> None:
        result = await self._resolver.lookup(request)
        self._send(session, result)

    # --- plumbing ------------------------------------------------------------------------------------------

    def _send(self, session: int, message: AgentToSession) -> None:
        sink = self._sinks.get(session)
        if sink is not None:
            sink.put(CODEC.encode(message))

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("an outgoing task failed: %r", task.exception())
