"""The redirect listener: connections that iptables sends to the agent, mirrored or stolen (the I/O shell).

Every accepted connection is asked for its original destination (``SO_ORIGINAL_DST``) and routed by that
port through ``Subscriptions``:

- **steal**: the stealing session serves it. What the client sends goes to that session; reading pauses while
  the session's outgoing queue is full, or while the session asks (``ClientReadFlow``: its app reads that
  connection slowly), so a large upload moves at the app's pace with bounded memory. The session's answer is
  written without waiting; when too much of it waits for a slow client, the session is asked to hold that
  connection's writes (``ConnectionWriteFlow``), so one slow client never delays the session's other messages.
- **mirror** (or nobody subscribed any more): the agent connects to the original destination itself, with the
  bypass mark on its socket so the redirect rules let it through, and pipes both ways; the pod's app answers
  the client. Mirroring sessions get copies of the client's bytes. A copy never slows the passthrough: a
  session that lags too far behind loses its copy of the connection, with a warning. A port that is only
  mirrored reaches this listener only where the agent cannot capture packets: elsewhere it is not
  redirected at all, and ``captured_mirror`` makes its copies.

``ConnectionTable`` decides who hears what; this module only moves bytes and carries out its effects.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import functools
import logging
import socket
import struct
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Protocol

from pymirrord.agent.captured_mirror import CapturedMirror
from pymirrord.agent.connections import CloseClient, ConnectionTable, Effect, PauseClient, Send, WriteClient
from pymirrord.agent.due import Due
from pymirrord.agent.handover import HandoverChannels
from pymirrord.agent.http_incoming import HttpIncoming
from pymirrord.agent.subscriptions import Route, Subscriptions
from pymirrord.agent.traffic_reports import TrafficReports
from pymirrord.agent.tunnels import IdleTunnel, Tunnels
from pymirrord.flow import FlowControl, Verdict
from pymirrord.http_sniffer import RequestSniffer
from pymirrord.nodelay import no_delay
from pymirrord.protocol.agent_to_session import CODEC, ConnectionRead
from pymirrord.protocol.handover_channel import Kind
from pymirrord.protocol.types import SocketAddress
from pymirrord.streams import backlog, drained, open_stream, unsliced
from pymirrord.tunnel.copies import copy_ender
from pymirrord.tunnel.mirror import MirrorRelay
from pymirrord.tunnel.pump import Moved, Tap, TunnelRelay, reset

log = logging.getLogger(__name__)

SO_ORIGINAL_DST = 80
"""From <linux/netfilter_ipv4.h>: the destination a connection had before NAT rewrote it."""
SO_MARK = getattr(socket, "SO_MARK", 36)

READ_CHUNK = 1024 * 1024
"""Bytes read from a socket at once: big chunks mean fewer messages and less per-message overhead."""
CLIENT_WRITE_HIGH_WATER = 1024 * 1024
"""Bytes buffered towards a socket before writers wait for it to drain (a stolen connection's session is
asked to hold its writes instead)."""
CLIENT_WRITE_LOW_WATER = 256 * 1024
"""A stolen connection's session may write again once no more than this waits for its client."""
CONNECT_TIMEOUT = 10.0
"""How long the passthrough waits for the pod's app to accept, before the client's connection is dropped."""
REPORT_DELAY = 0.02
"""Seconds the traffic of tunneled connections gathers before it is reported (``TrafficReport``) to a
session that shows it: the view that shows it updates ten times a second anyway."""


class SessionSink(Protocol):
    """Where messages for one session go (the session's outgoing queue)."""

    def put(self, frame: bytes) -> None:
        """Queue ``frame`` whatever the queue's size: control messages, stolen data (paced by the caller)."""

    def offer(self, frame: bytes) -> bool:
        """Queue a mirrored copy unless the queue is over its bound; False means it was refused."""

    async def wait_writable(self) -> None:
        """Return once the queue is short enough to add more stolen data (or the session is gone)."""


def original_destination(sock: socket.socket) -> SocketAddress | None:
    """Where the client meant to connect before iptables redirected it; None if it was not redirected."""
    try:
        raw = sock.getsockopt(socket.SOL_IP, SO_ORIGINAL_DST, 16)
    except OSError as exc:
        if exc.errno in (errno.ENOENT, errno.ENOPROTOOPT):
            return None
        raise
    port, packed = struct.unpack("!2xH4s8x", raw)
    return SocketAddress(socket.inet_ntoa(packed), port)


def _address(peer: object) -> SocketAddress:
    if isinstance(peer, tuple) and len(peer) >= 2:
        return SocketAddress(str(peer[0]), int(peer[1]))
    return SocketAddress("0.0.0.0", 0)


@dataclass
class _Client:
    """The agent's end of one redirected client connection."""

    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    closed: asyncio.Event = field(default_factory=asyncio.Event)
    readable: asyncio.Event = field(default_factory=asyncio.Event)
    """Clear while the session asked to stop reading the client."""
    waiter: asyncio.Task[None] | None = None
    """Waits for the client to take what the session wrote, once the session was asked to hold its writes."""

    def __post_init__(self) -> None:
        self.readable.set()

    def write(self, data: bytes) -> None:
        if self.closed.is_set() or self.writer.is_closing():
            return
        if data:
            self.writer.write(unsliced(data))
        elif self.writer.can_write_eof():
            self.writer.write_eof()

    def close(self) -> None:
        self.closed.set()
        self.readable.set()
        if self.waiter is not None and self.waiter is not asyncio.current_task():
            self.waiter.cancel()
        self.writer.close()


async def _until_closed(client: _Client) -> None:
    closed = asyncio.ensure_future(client.closed.wait())
    lost = asyncio.ensure_future(client.writer.wait_closed())
    try:
        done, _ = await asyncio.wait((closed, lost), return_when=asyncio.FIRST_COMPLETED)
    finally:
        closed.cancel()
        lost.cancel()
        await asyncio.gather(closed, lost, return_exceptions=True)
    for task in done:
        exc = task.exception()
        if exc is not None:
            raise exc


class Incoming:
    """Accepts redirected connections and serves them; sessions attach their sinks and act on connections."""

    def __init__(
        self,
        subscriptions: Subscriptions,
        *,
        bypass_mark: int,
        read_chunk: int = READ_CHUNK,
        handover: HandoverChannels | None = None,
        capture: bool = False,
    ) -> None:
        """``capture``: the ports sessions only mirror are captured, not redirected (``watch_captured``)."""
        self._subscriptions = subscriptions
        self._handover = handover
        self._bypass_mark = bypass_mark
        self._read_chunk = read_chunk
        self._table = ConnectionTable()
        self._write_flow = FlowControl(CLIENT_WRITE_HIGH_WATER, CLIENT_WRITE_LOW_WATER)
        self._sinks: dict[int, SessionSink] = {}
        self._clients: dict[int, _Client] = {}
        self.tunnels = Tunnels()
        """Sessions' idle tunnels: a stolen connection takes one, and its bytes bypass the websocket."""
        self._tunneled: dict[int, TunnelRelay] = {}
        self._reporting: set[int] = set()
        """Sessions that asked for their tunneled connections' traffic (``ClientHello.report_traffic``)."""
        self._reports = TrafficReports()
        self._reports_due = Due(REPORT_DELAY, self._send_reports)
        self._mirrored: dict[int, MirrorRelay] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._listener: socket.socket | None = None
        self._accepting: asyncio.Task[None] | None = None
        self.http = HttpIncoming(subscriptions, self._sinks, self._connect_bypassing, read_chunk)
        """Connections of HTTP-filtered ports; sessions' HTTP responses go there."""
        if handover is not None:
            self.http.has_channel = handover.can_take
            handover.on_app = self.http.app_socket
        self._captured = (
            CapturedMirror(
                subscriptions,
                self._table,
                self.tunnels,
                self._copy_tunnels,
                self._apply,
                copy_dropped=self._copy_dropped,
            )
            if capture
            else None
        )

    def watch_captured(self, ports: Iterable[int]) -> None:
        """The mirrored ports to capture now (``Subscriptions.captured_ports``)."""
        if self._captured is not None:
            self._captured.watch(ports)

    # --- sessions ------------------------------------------------------------------------------------------

    def attach(self, session: int, sink: SessionSink, *, report_traffic: bool = False) -> None:
        self._sinks[session] = sink
        if report_traffic:
            self._reporting.add(session)

    def session_gone(self, session: int) -> None:
        """Close the connections the session stole and stop its copies."""
        self._sinks.pop(session, None)
        self._reporting.discard(session)
        self._reports.forget(session)
        self._apply(self._table.session_gone(session))
        self.http.session_gone(session)

    def session_write(self, session: int, connection_id: int, data: bytes) -> None:
        """Never waits: the session's other messages must not queue behind one slow client."""
        self._apply(self._table.write(session, connection_id, data))
        client = self._clients.get(connection_id)
        if client is None or client.closed.is_set() or client.writer.is_closing():
            return
        if self._write_flow.grew(connection_id, backlog(client.writer)) is Verdict.PAUSE:
            self._apply(self._table.write_flow(connection_id, paused=True))
            client.waiter = asyncio.get_running_loop().create_task(self._resume_writes(connection_id, client))

    async def _resume_writes(self, connection_id: int, client: _Client) -> None:
        try:
            await drained(client.writer, CLIENT_WRITE_LOW_WATER)
        except OSError:
            # The client is gone; its reader may be paused and never see it, so the connection ends here.
            client.close()
            return
        if self._write_flow.shrank(connection_id, backlog(client.writer)) is Verdict.RESUME:
            self._apply(self._table.write_flow(connection_id, paused=False))

    def session_read_flow(self, session: int, connection_id: int, paused: bool) -> None:
        """The session's app reads the connection slowly (``paused``), or caught up again."""
        self._apply(self._table.read_flow(session, connection_id, paused))

    def session_close(self, session: int, connection_id: int) -> None:
        self._apply(self._table.close(session, connection_id))

    def session_unsubscribe(self, session: int, connection_id: int) -> None:
        self._apply(self._table.unsubscribe(session, connection_id))

    def app_tunnel(self, session: int, port: int, tunnel_id: int, *, notify: bool = False) -> None:
        """The session's tunnel ``tunnel_id`` leads to its app behind ``port`` (``HttpAppTunnel``)."""
        task = asyncio.get_running_loop().create_task(self._app_tunnel(session, port, tunnel_id, notify))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _app_tunnel(self, session: int, port: int, tunnel_id: int, notify: bool) -> None:
        tunnel = await self.tunnels.claim(session, tunnel_id)
        if tunnel is None:
            log.info("session %d: its tunnel %d to the app on port %d never came", session, tunnel_id, port)
            return
        if tunnel.rest:
            # Bytes before any request would be taken for the app's answer to the first one.
            log.warning("session %d: tunnel %d to its app spoke first; closed", session, tunnel_id)
            tunnel.sock.close()
            return
        counted = functools.partial(self.tunnels.listen_end, session, tunnel_id) if tunnel.counted else None
        self.http.app_tunnel(session, port, tunnel.sock, counted, notify=notify)

    @property
    def open_connections(self) -> int:
        return len(self._table)

    # --- listening -----------------------------------------------------------------------------------------

    async def start(self, sock: socket.socket) -> None:
        """Start accepting on the redirect listener ``sock`` (already bound and listening)."""
        sock.setblocking(False)
        self._listener = sock
        self._accepting = asyncio.get_running_loop().create_task(self._accept_loop(sock))

    async def _accept_loop(self, listener: socket.socket) -> None:
        # Raw accepts, not a stream server: a stream transport would start reading the client at once, and
        # a socket handed over to a session must reach it with none of its bytes consumed.
        loop = asyncio.get_running_loop()
        while True:
            try:
                sock, _ = await loop.sock_accept(listener)
            except OSError as error:
                log.warning("accepting a redirected connection failed: %s", error)
                continue
            if self._hand_over(sock):
                continue
            tunneled = self._tunnel(sock)
            mirrored = self._mirror_tunnels(sock) if tunneled is None else None
            if tunneled is not None:
                task = loop.create_task(self._serve_tunneled(*tunneled))
            elif mirrored is not None:
                task = loop.create_task(self._serve_mirrored(sock, *mirrored))
            else:
                task = loop.create_task(self._accepted_socket(sock))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def _hand_over(self, sock: socket.socket) -> bool:
        """Passes a stolen connection's socket to its session when that session takes sockets."""
        if self._handover is None:
            return False
        destination = original_destination(sock)
        if destination is None:
            return False
        route = self._subscriptions.route(destination.port)
        if route.stealer is None or not route.handover or not self._handover.can_take(route.stealer):
            return False
        client = _address(sock.getpeername())
        connection_id, effects = self._table.hand_over(destination.port, route.stealer, client, destination)
        if not self._handover.send(route.stealer, Kind.INCOMING, connection_id, sock):
            return False
        self._apply(effects)
        log.debug("connection %d from %s handed to session %d", connection_id, client, route.stealer)
        sock.close()  # the session holds its own descriptor now
        return True

    def _tunnel(self, sock: socket.socket) -> tuple[int, int, socket.socket, IdleTunnel] | None:
        """Gives a stolen connection one of its session's idle tunnels, when the session has one and
        nobody needs the bytes as messages (HTTP filtering, mirrors)."""
        try:
            destination = original_destination(sock)
            client = _address(sock.getpeername())
        except OSError:
            return None
        if destination is None:
            return None
        route = self._subscriptions.route(destination.port)
        if route.stealer is None or route.http or route.mirrors:
            return None
        tunnel = self.tunnels.take(route.stealer)
        if tunnel is None:
            return None
        connection_id, effects = self._table.open(
            destination.port, route, client, destination, tunnel=tunnel.tunnel_id
        )
        self._apply(effects)
        log.debug(
            "connection %d from %s stolen by session %d through tunnel %d",
            connection_id,
            client,
            route.stealer,
            tunnel.tunnel_id,
        )
        return connection_id, route.stealer, sock, tunnel

    async def _serve_tunneled(
        self, connection_id: int, session: int, sock: socket.socket, tunnel: IdleTunnel
    ) -> None:
        sock.setblocking(False)
        no_delay(sock)
        reason = "both sides closed"
        failed = True
        try:
            if session in self._reporting:
                tap, moved = self._reporters(session, connection_id)
                relay = self.tunnels.relay(session, tunnel, sock, tap_forward=tap, on_moved=moved)
            else:
                relay = self.tunnels.relay(session, tunnel, sock)
            self._tunneled[connection_id] = relay
            relay.start()
            outcome = await relay.wait()
            failed = outcome.failure is not None
            if outcome.failure is not None:
                reason = f"the connection failed: {outcome.failure}"
        except OSError as error:
            reason = f"the connection failed: {error}"
        finally:
            self._tunneled.pop(connection_id, None)
            self.tunnels.unlisten(session, tunnel.tunnel_id)
            for end in (sock, tunnel.sock):
                if failed:
                    reset(end)
                else:
                    end.close()
            if session in self._reporting:
                self._send_reports(session)  # the connection's last bytes, before its end
            self._apply(self._table.closed(connection_id, reason))

    def _reporters(self, session: int, connection_id: int) -> tuple[Tap, Moved]:
        """What a reporting session's tunneled connection's relay tells: the requests its sniffer finds in
        the client's bytes (until they are not HTTP/1: the relay then splices), and the bytes it moves."""
        sniffer = RequestSniffer()
        reports = self._reports

        def tap(data: bytes) -> bool:
            found = sniffer.feed(data)
            for request in found:
                reports.request(session, connection_id, request.method, request.target)
            if found:
                self._reports_due.soon()
            return not sniffer.stopped

        def moved(to_app: bool, count: int) -> None:
            reports.moved(session, connection_id, to_app, count)
            self._reports_due.soon()

        return tap, moved

    def _send_reports(self, session: int | None = None) -> None:
        for to, report in self._reports.take(session).items():
            sink = self._sinks.get(to)
            if sink is not None:
                sink.put(CODEC.encode(report))

    def _mirror_tunnels(
        self, sock: socket.socket
    ) -> tuple[Route, SocketAddress, SocketAddress, dict[int, IdleTunnel]] | None:
        """The idle tunnels of every session mirroring a connection's port, when each has one (and the port
        is neither stolen nor HTTP-filtered): the copies then go down them."""
        try:
            destination = original_destination(sock)
            client = _address(sock.getpeername())
        except OSError:
            return None
        if destination is None:
            return None
        route = self._subscriptions.route(destination.port)
        if not route.mirror_only:
            return None
        taken = self._copy_tunnels(route)
        return None if taken is None else (route, client, destination, taken)

    def _copy_tunnels(self, route: Route) -> dict[int, IdleTunnel] | None:
        """An idle tunnel of each of ``route``'s mirroring sessions, or None when one of them has none (the
        copies then go as messages)."""
        if any(self.tunnels.idle_incoming(session) == 0 for session in route.mirrors):
            return None
        taken: dict[int, IdleTunnel] = {}
        for session in route.mirrors:
            tunnel = self.tunnels.take(session)
            if tunnel is None:  # an outgoing tunnel counted as idle: give the others back
                for other, given in taken.items():
                    self.tunnels.give_back(other, given)
                return None
            taken[session] = tunnel
        return taken

    async def _serve_mirrored(
        self,
        sock: socket.socket,
        route: Route,
        client: SocketAddress,
        destination: SocketAddress,
        tunnels: dict[int, IdleTunnel],
    ) -> None:
        try:
            pod = await self._connect_raw(destination)
        except (OSError, asyncio.TimeoutError) as exc:
            log.info("cannot pass a connection from %s through to %s: %s", client, destination, exc)
            sock.close()
            for session, tunnel in tunnels.items():
                self.tunnels.give_back(session, tunnel)
            return
        copy_tunnels = {session: tunnel.tunnel_id for session, tunnel in tunnels.items()}
        connection_id, effects = self._table.open(
            destination.port, route, client, destination, copy_tunnels=copy_tunnels
        )
        self._apply(effects)
        log.debug(
            "connection %d from %s to %s passed through, copies through tunnels to sessions %s",
            connection_id,
            client,
            destination,
            list(tunnels),
        )

        reason = "the connection ended"
        relay: MirrorRelay | None = None
        try:
            no_delay(sock)
            counted = {
                session: announce
                for session, tunnel in tunnels.items()
                if (announce := self.tunnels.end_sender(session, tunnel)) is not None
            }
            relay = MirrorRelay(
                sock,
                pod,
                {session: tunnel.sock for session, tunnel in tunnels.items()},
                functools.partial(self._copy_dropped, connection_id),
                counted,
            )
            self._mirrored[connection_id] = relay
            for session in counted:
                self.tunnels.listen_end(session, tunnels[session].tunnel_id, copy_ender(relay, session))
            relay.start()
            await relay.wait()
            if relay.failure is not None:
                reason = f"the connection failed: {relay.failure}"
        except OSError as error:
            reason = f"the connection failed: {error}"
        finally:
            self._mirrored.pop(connection_id, None)
            for session, tunnel in tunnels.items():
                self.tunnels.unlisten(session, tunnel.tunnel_id)
            failed = relay is None or relay.failure is not None
            for end in (sock, pod, *(tunnel.sock for tunnel in tunnels.values())):
                if failed:
                    reset(end)
                else:
                    end.close()
            self._apply(self._table.closed(connection_id, reason))

    def _copy_dropped(self, connection_id: int, session: int, reason: str | None) -> None:
        """A session's copy of a connection through a tunnel ended early: its session closed its end (reason
        None), or it fell too far behind."""
        if reason is None:
            self._apply(self._table.unsubscribe(session, connection_id))
            return
        log.warning("session %d: its copy of connection %d dropped: %s", session, connection_id, reason)
        self._apply(self._table.drop_copy(session, connection_id, reason))

    async def _connect_raw(self, destination: SocketAddress) -> socket.socket:
        """A socket connected to the pod's app past the redirect rules, for the caller to move bytes on."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            # Marked before connect, so the SYN already passes the agent's redirect rules untouched.
            sock.setsockopt(socket.SOL_SOCKET, SO_MARK, self._bypass_mark)
            sock.setblocking(False)
            no_delay(sock)
            loop = asyncio.get_running_loop()
            await asyncio.wait_for(
                loop.sock_connect(sock, (destination.host, destination.port)), CONNECT_TIMEOUT
            )
        except BaseException:
            sock.close()
            raise
        return sock

    async def _accepted_socket(self, sock: socket.socket) -> None:
        no_delay(sock)
        reader, writer = await open_stream(sock, self._read_chunk)
        await self._accepted(reader, writer)

    async def close(self) -> None:
        """Stop accepting, end every connection and wait for their tasks."""
        if self._accepting is not None:
            self._accepting.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._accepting
        for client in list(self._clients.values()):
            client.close()
        for relay in list(self._tunneled.values()):
            relay.abort("the agent is stopping")
        for mirror in list(self._mirrored.values()):
            mirror.abort("the agent is stopping")
        if self._captured is not None:
            await self._captured.close()
        self.tunnels.close()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        self._reports_due.cancel()  # the sessions are gone: nobody to report to
        self.http.stop_notes()

    async def _accepted(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await self._serve_client(reader, writer)
        except asyncio.CancelledError:
            pass
        except Exception:
            log.exception("serving a redirected connection failed")
        finally:
            writer.close()

    async def _serve_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        sock = writer.get_extra_info("socket")
        client = _address(writer.get_extra_info("peername"))
        destination = original_destination(sock) if sock is not None else None
        if destination is None:
            log.warning("connection from %s reached the redirect port without a redirect; closed", client)
            return
        writer.transport.set_write_buffer_limits(high=CLIENT_WRITE_HIGH_WATER)
        route = self._subscriptions.route(destination.port)
        if route.http:
            await self.http.serve(reader, writer, client, destination)
        elif route.stealer is not None:
            await self._steal(route, client, destination, reader, writer)
        else:
            # Mirrored, or the last subscriber left while this connection was being redirected: the pod's app
            # serves it either way.
            await self._pass_through(route, client, destination, reader, writer)

    # --- steal ---------------------------------------------------------------------------------------------

    async def _steal(
        self,
        route: Route,
        client_address: SocketAddress,
        destination: SocketAddress,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> None:
        assert route.stealer is not None
        owner = route.stealer
        connection_id, effects = self._table.open(destination.port, route, client_address, destination)
        client = _Client(reader, writer)
        self._clients[connection_id] = client
        log.debug(
            "connection %d from %s to %s stolen by session %d",
            connection_id,
            client_address,
            destination,
            owner,
        )
        reason = "the client closed the connection"
        try:
            self._apply(effects)
            while not client.closed.is_set():
                data = await reader.read(self._read_chunk)
                if not data:
                    self._apply(self._table.client_eof(connection_id))
                    break
                self._apply(self._table.client_data(connection_id, data))
                sink = self._sinks.get(owner)
                if sink is not None:
                    await sink.wait_writable()
                await client.readable.wait()
            # The client only half-closed: the session may still answer until it closes its side too, or the
            # client's connection goes away.
            await _until_closed(client)
        except (ConnectionError, OSError) as exc:
            reason = f"the client's connection failed: {exc}"
        finally:
            self._clients.pop(connection_id, None)
            self._write_flow.forget(connection_id)
            client.close()
            self._apply(self._table.closed(connection_id, reason))

    # --- mirror / passthrough ------------------------------------------------------------------------------

    async def _pass_through(
        self,
        route: Route,
        client_address: SocketAddress,
        destination: SocketAddress,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> None:
        try:
            pod_reader, pod_writer = await self._connect_bypassing(destination)
        except (OSError, asyncio.TimeoutError) as exc:
            # The client sees its connection end, as it would if the pod's app were not listening.
            log.info("cannot pass a connection from %s through to %s: %s", client_address, destination, exc)
            return
        pod_writer.transport.set_write_buffer_limits(high=CLIENT_WRITE_HIGH_WATER)
        connection_id: int | None = None
        if route.subscribed:
            connection_id, effects = self._table.open(destination.port, route, client_address, destination)
            self._apply(effects)
        log.debug(
            "connection %s from %s to %s passed through, copies to sessions %s",
            connection_id,
            client_address,
            destination,
            list(route.mirrors),
        )
        reason = "the connection ended"
        try:
            upstream = asyncio.ensure_future(self._pipe(reader, pod_writer, connection_id))
            downstream = asyncio.ensure_future(self._pipe(pod_reader, writer, None))
            try:
                done, _ = await asyncio.wait((upstream, downstream), return_when=asyncio.FIRST_EXCEPTION)
            finally:
                for task in (upstream, downstream):
                    task.cancel()
                await asyncio.gather(upstream, downstream, return_exceptions=True)
            for task in done:
                failure = task.exception()
                if failure is not None:
                    reason = f"the connection failed: {failure}"
        finally:
            pod_writer.close()
            writer.close()
            if connection_id is not None:
                self._apply(self._table.closed(connection_id, reason))

    async def _connect_bypassing(
        self, destination: SocketAddress
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        sock = await self._connect_raw(destination)
        try:
            return await open_stream(sock, self._read_chunk)
        except BaseException:
            sock.close()
            raise

    async def _pipe(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, copies_of: int | None
    ) -> None:
        """Copy ``reader`` to ``writer`` until end of stream, then half-close ``writer``.

        With ``copies_of`` set, every chunk also goes to the connection's mirroring sessions.
        """
        while True:
            data = await reader.read(self._read_chunk)
            if not data:
                break
            writer.write(unsliced(data))
            if copies_of is not None:
                self._apply(self._table.client_data(copies_of, data))
            await writer.drain()
        if copies_of is not None:
            self._apply(self._table.client_eof(copies_of))
        if writer.can_write_eof() and not writer.is_closing():
            writer.write_eof()

    # --- effects -------------------------------------------------------------------------------------------

    def _apply(self, effects: Iterable[Effect]) -> None:
        encoded: dict[int, bytes] = {}
        for effect in effects:
            if isinstance(effect, Send):
                sink = self._sinks.get(effect.session)
                if sink is None:
                    continue  # the session is gone; nothing to tell it
                # The same message often goes to several sessions: encode it once.
                frame = encoded.get(id(effect.message))
                if frame is None:
                    frame = encoded[id(effect.message)] = CODEC.encode(effect.message)
                if not effect.copy:
                    sink.put(frame)
                elif not sink.offer(frame):
                    assert isinstance(effect.message, ConnectionRead)
                    connection_id = effect.message.connection_id
                    log.warning(
                        "session %d lags too far behind; dropping its copy of connection %d",
                        effect.session,
                        connection_id,
                    )
                    self._apply(
                        self._table.drop_copy(
                            effect.session,
                            connection_id,
                            "the session fell too far behind the mirrored traffic",
                        )
                    )
            elif isinstance(effect, WriteClient):
                client = self._clients.get(effect.connection_id)
                if client is not None:
                    client.write(effect.data)
            elif isinstance(effect, CloseClient):
                client = self._clients.get(effect.connection_id)
                if client is not None:
                    client.close()
                relay = self._tunneled.get(effect.connection_id)
                if relay is not None:
                    relay.abort("closed by the session")
            elif isinstance(effect, PauseClient):
                client = self._clients.get(effect.connection_id)
                if client is not None and effect.paused and not client.closed.is_set():
                    client.readable.clear()
                elif client is not None:
                    client.readable.set()
