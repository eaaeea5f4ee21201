"""The session's side of outgoing traffic: local interceptors relaying to the agent's connections, lookups.

When the app connects a socket, its layer asks here first. The agent opens the connection from the pod; then
the session opens a one-shot local interceptor (a loopback listener for TCP, a loopback UDP socket for UDP),
tells the layer where it is, and the layer connects the app's socket to it. From then on the interceptor and
the agent's connection are relayed both ways: through one of the session's outgoing tunnels when one is
open (``pymirrord.tunnel``), else as messages on the websocket. ``OutgoingState`` holds the bookkeeping.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, cast

from pymirrord.flow import FlowControl, Verdict
from pymirrord.nodelay import no_delay
from pymirrord.protocol import agent_to_session as from_agent
from pymirrord.protocol import layer_to_session as from_layer
from pymirrord.protocol import session_to_agent as to_agent
from pymirrord.protocol import session_to_layer as to_layer
from pymirrord.protocol.framing import frame
from pymirrord.protocol.handover_channel import Kind
from pymirrord.protocol.outgoing_types import ResolveError, Transport
from pymirrord.protocol.types import SocketAddress
from pymirrord.session.handover import HandoverReceiver
from pymirrord.session.held_stream import HIGH_WATER, LOW_WATER, HeldStream
from pymirrord.session.outgoing_state import LayerId, OutgoingState
from pymirrord.session.tunnels import TunnelPool
from pymirrord.streams import open_stream, unsliced
from pymirrord.tunnel.pump import TunnelRelay, reset

AnswerWithSocket = Callable[[LayerId, asyncio.StreamWriter, bytes, socket.socket], Awaitable[None]]
"""Sends a framed answer to a layer with a socket riding on it (the session owns the layer's socket)."""
SendToAgent = Callable[[to_agent.SessionToAgent], Awaitable[None]]

CHUNK = 1024 * 1024
ANSWER_TIMEOUT = 30.0
"""How long a layer's request may wait for the agent; the layer itself waits a little longer."""
ACCEPT_TIMEOUT = 30.0
"""How long an interceptor waits for the app's socket to connect before giving the connection up."""
UDP_BACKLOG = 1024
"""Datagrams held for one UDP connection while its other end is not known or not keeping up."""

AGENT_MESSAGES = (
    from_agent.OutgoingConnectResult,
    from_agent.OutgoingRead,
    from_agent.OutgoingClosed,
    from_agent.DnsResult,
    from_agent.OutgoingWriteFlow,
)
LAYER_MESSAGES = (from_layer.ConnectRequest, from_layer.ConnectionDone, from_layer.ResolveRequest)


class _TcpRelay(HeldStream):
    """The session's end of one outgoing TCP connection, towards the app's socket."""

    def __init__(self, connection_id: int, listener: socket.socket | None = None) -> None:
        super().__init__()
        self.connection_id = connection_id
        self.listener = listener
        self.task: asyncio.Task[None] | None = None
        self.tunnel: tuple[socket.socket, bytes] | None = None
        """The tunnel that carries the connection's bytes (its socket, and bytes read behind its
        handshake)."""
        self.tunnel_relay: TunnelRelay | None = None


class _UdpInterceptor(asyncio.DatagramProtocol):
    """The session's end of one outgoing UDP connection: a loopback socket the app's socket connects to."""

    def __init__(self, relay: OutgoingRelay, connection_id: int) -> None:
        self.relay = relay
        self.connection_id = connection_id
        self.transport: asyncio.DatagramTransport | None = None
        self.app: Any = None  # the app's address, known from its first datagram
        self.to_app: list[bytes] = []
        self.to_agent: asyncio.Queue[bytes] = asyncio.Queue(UDP_BACKLOG)
        self.task: asyncio.Task[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # asyncio's own datagram transport does not subclass DatagramTransport on every version.
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: Any) -> None:
        if self.app is None:
            # The app's socket is connected to us, so its address never changes; strangers are ignored.
            self.app = addr
            for datagram in self.to_app:
                self._send_to_app(datagram)
            self.to_app.clear()
        elif addr != self.app:
            return
        with contextlib.suppress(asyncio.QueueFull):  # UDP may drop; a stuck agent must not grow memory
            self.to_agent.put_nowait(data)

    def from_agent(self, data: bytes) -> None:
        if self.app is None:
            if len(self.to_app) < UDP_BACKLOG:
                self.to_app.append(data)
            return
        self._send_to_app(data)

    def _send_to_app(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.sendto(data, self.app)

    def error_received(self, exc: Exception) -> None:
        pass  # an ICMP error towards the app's port: it closed its socket, ConnectionDone follows

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()
        if self.task is not None and self.task is not asyncio.current_task():
            self.task.cancel()


class OutgoingRelay:
    """Answers layers' connect and resolve requests through the agent and relays the connections."""

    def __init__(
        self, send: SendToAgent, on_log: Callable[[str], None], answer_with_socket: AnswerWithSocket
    ) -> None:
        self._send = send
        self._log = on_log
        self._answer_with_socket = answer_with_socket
        self.handover: HandoverReceiver | None = None
        """Set when the agent runs on this machine: connections then come as connected sockets."""
        self.tunnels: TunnelPool | None = None
        """The session's outgoing tunnels, when the agent takes tunnels."""
        self.hand_tunnels = True
        """A tunnel goes to the app in place of its socket (else the session relays it)."""
        self._state = OutgoingState()
        self._futures: dict[int, asyncio.Future[Any]] = {}
        self._tcp: dict[int, _TcpRelay] = {}
        self._flow = FlowControl(HIGH_WATER, LOW_WATER)
        self._udp: dict[int, _UdpInterceptor] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._lost = False

    @property
    def state(self) -> OutgoingState:
        return self._state

    # Layers ----------------------------------------------------------------------------------

    def on_layer_message(self, layer: LayerId, message: Any, writer: asyncio.StreamWriter) -> None:
        """Handles one of ``LAYER_MESSAGES``; answers go to ``writer`` once ready (the layer waits)."""
        if isinstance(message, from_layer.ConnectRequest):
            self._spawn(self._answer_connect(layer, writer, message))
        elif isinstance(message, from_layer.ResolveRequest):
            self._spawn(self._answer(writer, self._resolve(layer, message)))
        elif isinstance(message, from_layer.ConnectionDone):
            if self._tunneled(message.connection_id):
                return  # the app's close reaches the pod through the tunnel, after its last bytes
            self._release(message.connection_id)
            self._spawn(self._send_all(self._state.closed_by_app(message.connection_id, layer)))

    def _tunneled(self, connection_id: int) -> bool:
        """The app is connected to this connection's tunnel relay, which ends it by itself."""
        relay = self._tcp.get(connection_id)
        return (
            relay is not None
            and relay.tunnel is not None
            and relay.listener is None
            and relay.task is not None
        )

    def layer_gone(self, layer: LayerId) -> None:
        tunneled = {connection_id for connection_id in self._tcp if self._tunneled(connection_id)}
        gone, messages = self._state.layer_gone(layer)
        messages = [
            message
            for message in messages
            if not (isinstance(message, to_agent.OutgoingClose) and message.connection_id in tunneled)
        ]
        for connection_id in gone:
            if connection_id not in tunneled:
                self._release(connection_id)
        if messages and not self._lost:
            self._spawn(self._send_all(messages))

    async def _answer(
        self, writer: asyncio.StreamWriter, answer: Coroutine[Any, Any, to_layer.SessionToLayer]
    ) -> None:
        message = await answer
        if not writer.is_closing():
            writer.write(frame(to_layer.CODEC.encode(message)))

    async def _answer_connect(
        self, layer: LayerId, writer: asyncio.StreamWriter, request: from_layer.ConnectRequest
    ) -> None:
        answer, connected = await self._connect(layer, request)
        payload = frame(to_layer.CODEC.encode(answer))
        if connected is None:
            if not writer.is_closing():
                writer.write(unsliced(payload))
            return
        try:
            await self._answer_with_socket(layer, writer, payload, connected)
        finally:
            connected.close()  # the layer holds its own descriptor of it now

    async def _connect(
        self, layer: LayerId, request: from_layer.ConnectRequest
    ) -> tuple[to_layer.ConnectAnswer, socket.socket | None]:
        if self._lost:
            return _connect_failed("ENETDOWN", "pymirrord lost its agent"), None
        # A handed-over socket replaces the app's, so the two must be of one family.
        handover = self.handover is not None and (":" in request.remote.host) == request.ipv6_socket
        reserved = None
        if not handover and request.transport is Transport.TCP and self.tunnels is not None:
            reserved = await self.tunnels.reserve_soon()
        tunnel_id = reserved[0] if reserved is not None else 0
        request_id, message = self._state.connect(layer, request, handover=handover, tunnel=tunnel_id)
        future: asyncio.Future[from_agent.OutgoingConnectResult] = asyncio.get_running_loop().create_future()
        self._futures[request_id] = future
        try:
            await self._send(message)
            result = await asyncio.wait_for(future, ANSWER_TIMEOUT)
        except asyncio.TimeoutError:
            self._state.abandon_connect(request_id)
            _close_reserved(reserved)
            return _connect_failed("ETIMEDOUT", "the agent did not answer in time"), None
        except ConnectionError as error:
            _close_reserved(reserved)
            return _connect_failed("ENETDOWN", f"pymirrord lost its agent: {error}"), None
        finally:
            self._futures.pop(request_id, None)
        if reserved is not None and (result.error or result.tunnel != tunnel_id):
            _close_reserved(reserved)  # the agent did not take it: nobody else may
            reserved = None
        if result.error:
            return _connect_failed(result.error, result.message), None
        if result.handed_over and self.handover is not None:
            try:
                connected = await self.handover.receive((Kind.OUTGOING, request_id))
            except (TimeoutError, ConnectionError) as error:
                return _connect_failed("EIO", str(error)), None
            return to_layer.ConnectAnswer(0, None, result.local, "", "", handover=True), connected
        connection_id = result.connection_id
        relay = self._tcp.get(connection_id)
        if reserved is not None and relay is not None:
            tunnel, head = reserved[1].result()
            if self.hand_tunnels and not head and (tunnel.family == socket.AF_INET6) == request.ipv6_socket:
                # The app's socket becomes the tunnel itself: no byte of it passes the session.
                self._tcp.pop(connection_id, None)
                self._state.connections.pop(connection_id, None)
                return to_layer.ConnectAnswer(0, None, result.local, "", "", handover=True), tunnel
            relay.tunnel = (tunnel, head)
        elif reserved is not None:
            _close_reserved(reserved)  # already over
        try:
            if request.transport is Transport.UDP:
                interceptor = await self._open_udp(connection_id, request.ipv6_socket)
            else:
                interceptor = self._open_tcp(connection_id, request.ipv6_socket)
        except OSError as error:
            self._log(f"cannot open a local interceptor for an outgoing connection: {error}")
            self._release(connection_id)
            await self._send_all(self._state.closed_by_app(connection_id))
            return _connect_failed("EADDRNOTAVAIL", f"no local interceptor: {error}"), None
        return to_layer.ConnectAnswer(connection_id, interceptor, result.local, "", "", handover=False), None

    async def _resolve(self, layer: LayerId, request: from_layer.ResolveRequest) -> to_layer.ResolveAnswer:
        if self._lost:
            return to_layer.ResolveAnswer((), None, ResolveError.AGAIN, "pymirrord lost its agent")
        request_id, message = self._state.lookup(layer, request)
        future: asyncio.Future[from_agent.DnsResult] = asyncio.get_running_loop().create_future()
        self._futures[request_id] = future
        try:
            await self._send(message)
            result = await asyncio.wait_for(future, ANSWER_TIMEOUT)
        except asyncio.TimeoutError:
            self._state.lookup_answered(request_id)
            return to_layer.ResolveAnswer((), None, ResolveError.AGAIN, "the agent did not answer in time")
        except ConnectionError as error:
            return to_layer.ResolveAnswer((), None, ResolveError.AGAIN, f"pymirrord lost its agent: {error}")
        finally:
            self._futures.pop(request_id, None)
        return to_layer.ResolveAnswer(result.addresses, result.canonical_name, result.error, result.message)

    # Agent -----------------------------------------------------------------------------------

    async def on_agent_message(self, message: Any) -> None:
        """Handles one of ``AGENT_MESSAGES``."""
        if isinstance(message, from_agent.OutgoingRead):
            await self._from_remote(message.connection_id, message.data)
        elif isinstance(message, from_agent.OutgoingConnectResult) and message.handed_over:
            if not self._state.handed_over(message.request_id) and self.handover is not None:
                self.handover.discard((Kind.OUTGOING, message.request_id))  # nobody waits for it any more
            future = self._futures.get(message.request_id)
            if future is not None and not future.done():
                future.set_result(message)
        elif isinstance(message, from_agent.OutgoingConnectResult):
            pending, messages = self._state.connect_answered(
                message.request_id, message.connection_id, not message.error
            )
            if pending is not None and not message.error:
                # Registered now, before any OutgoingRead of the connection can be handled.
                if message.transport is Transport.UDP:
                    self._udp[message.connection_id] = _UdpInterceptor(self, message.connection_id)
                else:
                    self._tcp[message.connection_id] = _TcpRelay(message.connection_id)
            future = self._futures.get(message.request_id)
            if future is not None and not future.done():
                future.set_result(message)
            await self._send_all(messages)
        elif isinstance(message, from_agent.OutgoingClosed):
            self._closed_by_agent(message.connection_id, message.error)
        elif isinstance(message, from_agent.OutgoingWriteFlow):
            relay = self._tcp.get(message.connection_id)
            if relay is not None:
                relay.hold_writes(message.paused)
        elif isinstance(message, from_agent.DnsResult):
            self._state.lookup_answered(message.request_id)
            future = self._futures.get(message.request_id)
            if future is not None and not future.done():
                future.set_result(message)

    def agent_lost(self) -> None:
        self._lost = True
        for connection_id in self._state.agent_lost():
            self._release(connection_id, abort=True)
        for future in self._futures.values():
            if not future.done():
                future.set_exception(ConnectionError("the agent link is gone"))

    async def close(self) -> None:
        self.agent_lost()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _from_remote(self, connection_id: int, data: bytes) -> None:
        connection = self._state.from_remote(connection_id, len(data))
        if connection is None:
            return
        udp = self._udp.get(connection_id)
        if udp is not None:
            udp.from_agent(data)
            return
        relay = self._tcp.get(connection_id)
        if relay is None:
            return
        # Never waits for the app: the agent pump that runs this serves every connection of the session.
        relay.write(data)
        if self._flow.grew(connection_id, relay.backlog) is Verdict.PAUSE:
            await self._send(to_agent.OutgoingReadFlow(connection_id, True))
            relay.waiter = self._spawn(self._resume_when_drained(relay))

    async def _resume_when_drained(self, relay: _TcpRelay) -> None:
        try:
            await relay.until_drained()
        except OSError:
            return  # the relay's reader sees the failure too, and ends the connection
        if self._flow.shrank(relay.connection_id, relay.backlog) is Verdict.RESUME:
            await self._send(to_agent.OutgoingReadFlow(relay.connection_id, False))

    def _closed_by_agent(self, connection_id: int, error: str) -> None:
        connection = self._state.closed_by_agent(connection_id)
        if connection is None:
            return
        # A broken connection reaches the app as a reset; a finished one as a normal close once it drained.
        self._release(connection_id, abort=bool(error))

    # Interceptors ----------------------------------------------------------------------------

    def _open_tcp(self, connection_id: int, ipv6: bool) -> SocketAddress:
        listener, address = _loopback_socket(socket.SOCK_STREAM, ipv6)
        try:
            listener.listen(1)
            listener.setblocking(False)
        except OSError:
            listener.close()
            raise
        relay = self._tcp.get(connection_id)
        if relay is None:  # closed by the agent already: the app finds the connection ended
            relay = _TcpRelay(connection_id, listener)
        else:
            relay.listener = listener
        self._tcp[connection_id] = relay
        relay.task = self._spawn(self._serve_tcp(relay))
        return address

    async def _serve_tcp(self, relay: _TcpRelay) -> None:
        connection_id = relay.connection_id
        listener = relay.listener
        assert listener is not None
        loop = asyncio.get_running_loop()
        try:
            try:
                sock, _ = await asyncio.wait_for(loop.sock_accept(listener), ACCEPT_TIMEOUT)
            finally:
                listener.close()
                relay.listener = None
        except (OSError, asyncio.TimeoutError) as error:
            self._log(f"the app never connected to outgoing connection {connection_id}: {error!r}")
            self._release(connection_id)
            await self._send_all(self._state.closed_by_app(connection_id))
            return
        no_delay(sock)
        if relay.tunnel is not None:
            await self._serve_tunneled(relay, sock, *relay.tunnel)
            return
        reader, writer = await open_stream(sock, CHUNK)
        relay.connected(writer)
        if connection_id not in self._state.connections:
            writer.close()  # the agent ended it before the app connected
            self._tcp.pop(connection_id, None)
            return
        try:
            while True:
                data = await reader.read(CHUNK)
                await relay.writable.wait()  # the agent may ask to hold this connection's bytes for a while
                connection = self._state.from_app(connection_id, len(data))
                if connection is None:
                    return
                await self._send(to_agent.OutgoingWrite(connection_id, data))
                if not data:
                    break
            # The app half-closed; the remote peer may still answer until the app's socket goes away.
            await writer.wait_closed()
        except ConnectionError:
            pass
        if self._state.connections.get(connection_id) is not None:
            self._release(connection_id, abort=True)
            await self._send_all(self._state.closed_by_app(connection_id))

    async def _serve_tunneled(
        self, relay: _TcpRelay, sock: socket.socket, tunnel: socket.socket, head: bytes
    ) -> None:
        """App <-> tunnel until both ends closed; a failure resets both and closes the pod's side."""
        connection_id = relay.connection_id
        failure: str | None = "stopped"
        try:
            no_delay(tunnel)
            pump = TunnelRelay(
                sock,
                tunnel,
                head_back=head,
                on_moved=lambda forward, size: self._tunnel_moved(connection_id, forward, size),
            )
            relay.tunnel_relay = pump
            if connection_id in self._state.connections:
                pump.start()
                failure = (await pump.wait()).failure
        finally:
            relay.tunnel_relay = None
            for end in (sock, tunnel):
                if failure is not None:
                    reset(end)
                else:
                    end.close()
            self._tcp.pop(connection_id, None)
            if failure is not None and self._state.connections.get(connection_id) is not None:
                await self._send_all(self._state.closed_by_app(connection_id))

    def _tunnel_moved(self, connection_id: int, forward: bool, size: int) -> None:
        if forward:
            self._state.from_app(connection_id, size)
        else:
            self._state.from_remote(connection_id, size)

    async def _open_udp(self, connection_id: int, ipv6: bool) -> SocketAddress:
        sock, address = _loopback_socket(socket.SOCK_DGRAM, ipv6)
        interceptor = self._udp.get(connection_id)
        if interceptor is None:
            sock.close()
            raise OSError(0, "the connection ended before it could be used")
        loop = asyncio.get_running_loop()
        try:
            await loop.create_datagram_endpoint(lambda: interceptor, sock=sock)
        except BaseException:
            sock.close()
            raise
        interceptor.task = self._spawn(self._pump_udp(interceptor))
        return address

    async def _pump_udp(self, interceptor: _UdpInterceptor) -> None:
        while True:
            data = await interceptor.to_agent.get()
            if self._state.from_app(interceptor.connection_id, len(data)) is None:
                return
            await self._send(to_agent.OutgoingWrite(interceptor.connection_id, data))

    def _release(self, connection_id: int, *, abort: bool = False) -> None:
        """Closes the session's end of a connection (the app sees a reset with ``abort``)."""
        udp = self._udp.pop(connection_id, None)
        if udp is not None:
            udp.close()
        relay = self._tcp.pop(connection_id, None)
        self._flow.forget(connection_id)
        if relay is None:
            return
        if relay.tunnel is not None and relay.listener is None:
            # The app is connected: the tunnel's own ends of stream finish it, or a failure resets it.
            if abort and relay.tunnel_relay is not None:
                relay.tunnel_relay.abort("the connection failed in the pod")
            elif relay.tunnel_relay is None and relay.task is None:
                relay.tunnel[0].close()
            return
        relay.stop()
        if relay.task is not None and relay.task is not asyncio.current_task():
            relay.task.cancel()
        if relay.listener is not None:
            relay.listener.close()
        if relay.tunnel is not None and relay.tunnel_relay is None:
            relay.tunnel[0].close()
        if relay.writer is not None:
            if abort:
                with contextlib.suppress(OSError):
                    relay.writer.transport.abort()
            else:
                relay.writer.close()

    # Plumbing --------------------------------------------------------------------------------

    async def _send_all(self, messages: list[to_agent.SessionToAgent]) -> None:
        for message in messages:
            await self._send(message)

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task


def _close_reserved(reserved: tuple[int, asyncio.Task[tuple[socket.socket, bytes]]] | None) -> None:
    if reserved is not None:
        reserved[1].result()[0].close()


def _connect_failed(error: str, message: str) -> to_layer.ConnectAnswer:
    return to_layer.ConnectAnswer(0, None, None, error, message, handover=False)


def _loopback_socket(kind: socket.SocketKind, ipv6: bool) -> tuple[socket.socket, SocketAddress]:
    """A socket bound to a free loopback port that the app's socket (of the family given) can reach."""
    if ipv6:
        try:
            sock = socket.socket(socket.AF_INET6, kind)
        except OSError:
            pass
        else:
            try:
                sock.bind(("::1", 0))
            except OSError:
                sock.close()  # no IPv6 loopback here: a v4-mapped address reaches the IPv4 one
            else:
                return sock, SocketAddress("::1", sock.getsockname()[1])
    sock = socket.socket(socket.AF_INET, kind)
    try:
        sock.bind(("127.0.0.1", 0))
    except OSError:
        sock.close()
        raise
    port = sock.getsockname()[1]
    return sock, SocketAddress("::ffff:127.0.0.1" if ipv6 else "127.0.0.1", port)
