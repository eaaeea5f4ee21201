"""The session: one agent link shared by every layer of a run, and the relays between them.

Layers (the app and its child processes) connect to a unix socket that only this user can open.
When the agent hands over a connection, the session connects to the app's real listener from a
local port it has recorded first (so the layer can ask who the real client is) and pumps bytes
both ways. All decisions live in ``SessionState``; this module only moves bytes and messages.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import os
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from pymirrord.console import say
from pymirrord.flow import FlowControl, Verdict
from pymirrord.nodelay import no_delay
from pymirrord.protocol import PROTOCOL_VERSION
from pymirrord.protocol import agent_to_session as from_agent
from pymirrord.protocol import layer_to_session as from_layer
from pymirrord.protocol import session_to_agent as to_agent
from pymirrord.protocol import session_to_layer as to_layer
from pymirrord.protocol.errors import ProtocolError
from pymirrord.protocol.framing import FrameDecoder, frame
from pymirrord.protocol.handover_channel import Kind
from pymirrord.protocol.types import LogLevel, Mode, SocketAddress
from pymirrord.session.agent_link import AgentLink
from pymirrord.session.app_tunnels import AppTunnels, offer_taken
from pymirrord.session.handover import HandoverReceiver, send_with_socket
from pymirrord.session.held_stream import COPY_LIMIT, HIGH_WATER, LOW_WATER, HeldStream
from pymirrord.session.http_requests import AGENT_MESSAGES as HTTP_FROM_AGENT
from pymirrord.session.http_requests import HttpRequests
from pymirrord.session.outgoing import AGENT_MESSAGES as OUTGOING_FROM_AGENT
from pymirrord.session.outgoing import LAYER_MESSAGES as OUTGOING_FROM_LAYER
from pymirrord.session.outgoing import OutgoingRelay
from pymirrord.session.state import (
    Action,
    OpenToApp,
    PortServed,
    ReplyToLayer,
    SendToAgent,
    SessionState,
)
from pymirrord.session.tunnel_ends import ForwardedEnds, TunnelEnds
from pymirrord.session.tunnels import TunnelError, TunnelPool, tunnels_wanted
from pymirrord.streams import open_stream
from pymirrord.tunnel.pump import TunnelRelay, reset

_CHUNK = 1024 * 1024


@dataclass(frozen=True)
class SessionEvent:
    """Something a user of the session may want to show: ``kind`` is ``port``, ``log`` or ``agent-lost``."""

    kind: str
    message: str
    port: int | None = None
    mode: Mode | None = None


EventSink = Callable[[SessionEvent], None]


@dataclass(frozen=True)
class ConnectionEvent:
    """News of an incoming connection relayed to the app: ``kind`` is ``opened`` (with ``port``, ``mode`` and
    ``client``), ``data`` (bytes the client sent, ``data``) or ``closed``."""

    kind: str
    connection_id: int
    port: int | None = None
    mode: Mode | None = None
    client: SocketAddress | None = None
    data: bytes = b""


@dataclass(frozen=True)
class RequestEvent:
    """An HTTP request the agent routed to this session by its filter; ``matched`` names the matching part."""

    request_id: int
    port: int
    mode: Mode
    client: SocketAddress
    method: str
    path: str
    matched: str


class SessionObserver:
    """What a user of the session that shows its activity (the editor helper) is told; each hook does nothing
    unless overridden. Hooks run on the session's event loop and must not block.

    ``layer_connected`` comes when a process's layer has said hello, ``layer_gone`` when that layer has
    disconnected (once per connected layer).
    """

    def layer_connected(self, pid: int, parent_pid: int) -> None:
        pass

    def layer_gone(self, pid: int) -> None:
        pass

    def connection(self, event: ConnectionEvent) -> None:
        pass

    def request(self, event: RequestEvent) -> None:
        pass

    def requests_served(self, count: int, last: Sequence[RequestEvent]) -> None:
        """``count`` requests the agent wrote to the app's connections itself, of which ``last`` are the
        latest (all of them when ``count`` is no larger); each is one more request for ``request``'s
        count, but only ``last`` are described."""

    def requests_seen(self, count: int, last: Sequence[tuple[int, str, str]]) -> None:
        """``count`` HTTP requests the agent found in the client bytes of stolen connections it relays
        through tunnels (``shows_traffic`` observers only), of which ``last`` are the latest, as
        ``(connection_id, method, target)``: in place of the ``data`` events of those connections."""

    def wants_data(self, connection_id: int) -> bool:
        """Whether ``connection`` should still get the ``data`` events of connection ``connection_id`` (asked
        after each one): False lets a tunneled connection's bytes move without passing through Python."""
        return True


def shows_traffic(observer: SessionObserver | None) -> bool:
    """Whether ``observer`` looks at what connections carry (their ``data`` events): the agent then reports
    the traffic of the connections it steals through tunnels, which reach the app without the session."""
    return observer is not None and type(observer).connection is not SessionObserver.connection


def print_events(event: SessionEvent) -> None:
    """The terminal's event sink: one ``pymirrord: ...`` line on stderr per event."""
    say(event.message)


class _AppConnection(HeldStream):
    """The relay's end of one connection towards the local app.

    It ends when both sides are done: the agent said the connection is closed, and the app finished
    sending (EOF). Until then bytes still flow, so a client that is quicker than the app (a mirrored
    request the pod already answered) still reaches the app whole.
    """

    def __init__(self, connection_id: int) -> None:
        super().__init__()
        self.connection_id = connection_id
        self.task: asyncio.Task[None] | None = None
        self.agent_closed = False
        self.app_done = False


class Session:
    def __init__(
        self,
        link: AgentLink,
        mode: Mode,
        socket_path: str,
        on_event: EventSink,
        handover: bool = False,
        *,
        observer: SessionObserver | None = None,
        tunnels: bool = True,
        forwarded: ForwardedEnds | None = None,
    ) -> None:
        """``handover``: the agent runs on this machine, so stolen connections may come as sockets.
        ``observer`` hears of processes, connections and requests as they come and go. ``tunnels``:
        connections may get tunnels. ``forwarded``: the agent is reached through a port-forward that
        carries no half-close, so tunnels are counted (``pymirrord.session.tunnel_ends``)."""
        self._observer = observer or SessionObserver()
        self._layer_pids: dict[int, int] = {}  # layer -> pid, for layers that said hello
        self._link = link
        self._state = SessionState(mode)
        self._handover_wanted = handover and link.hello.handover_path is not None
        self._handover: HandoverReceiver | None = None
        self._socket_path = socket_path
        self._on_event = on_event
        self._outgoing = OutgoingRelay(
            link.send, lambda text: on_event(SessionEvent("log", text)), self._answer_with_socket
        )
        self._http = HttpRequests(
            link.send, self._app_address, lambda text: on_event(SessionEvent("log", text))
        )
        self._layer_ids = itertools.count(1)
        self._layers: dict[int, asyncio.StreamWriter] = {}
        self._apps: dict[int, _AppConnection] = {}
        self._flow = FlowControl(HIGH_WATER, LOW_WATER, COPY_LIMIT)
        self._server: asyncio.Server | None = None
        self._layer_sockets: dict[int, socket.socket] = {}  # for answers that carry a socket
        self._handing: set[asyncio.Task[None]] = set()
        self._tunnels: TunnelPool | None = None
        self._tunnels_wanted = tunnels
        self._forwarded = forwarded
        self._tunnel_ends: TunnelEnds | None = None
        self._tunnel_relays: dict[int, TunnelRelay] = {}
        self._tunnel_sockets: dict[int, socket.socket] = {}  # tunnels offered to the app, by connection
        self._tunnel_offer_ignored = False
        self._app_tunnels: AppTunnels | None = None
        self._tunnel_pending: set[int] = set()  # tunneled connections not yet handed over or relayed
        self._tunnel_closed: set[int] = set()  # ... of which the agent said they are over
        self._pump: asyncio.Task[None] | None = None
        self.agent_lost = asyncio.Event()

    @property
    def state(self) -> SessionState:
        return self._state

    @property
    def socket_path(self) -> str:
        return self._socket_path

    async def start(self) -> None:
        # The socket's directory is private (0700); the umask makes the socket itself owner-only too.
        old_umask = os.umask(0o177)
        try:
            self._server = await asyncio.start_unix_server(self._serve_layer, path=self._socket_path)
        finally:
            os.umask(old_umask)
        if self._handover_wanted:
            hello = self._link.hello
            assert hello.handover_path is not None
            try:
                self._handover = HandoverReceiver.open(hello.handover_path, hello.handover_key)
                self._state.handover = True
                self._outgoing.handover = self._handover
                receiver = self._handover
                self._http.hand_over = lambda port, sock: receiver.give(Kind.APP, port, sock)
            except OSError as error:
                self._on_event(SessionEvent("log", f"stolen connections are relayed: {error}"))
        hello = self._link.hello
        if (
            hello.tunnel_key
            and self._link.address is not None
            and self._handover is None
            and self._tunnels_wanted
            and tunnels_wanted()
        ):
            host, port = self._link.address
            if self._forwarded is not None:
                self._tunnel_ends = TunnelEnds(self._forwarded, self._link.send_soon)
            for use, first_id in (("incoming", 1), ("outgoing", 2)):
                pool = TunnelPool(
                    host,
                    port,
                    token=self._link.token,
                    key=hello.tunnel_key,
                    on_log=lambda text: self._on_event(SessionEvent("log", text)),
                    use=use,
                    first_id=first_id,
                    ends=self._tunnel_ends,
                )
                pool.start()
                if use == "incoming":
                    self._tunnels = pool
                else:
                    self._outgoing.tunnels = pool
            # A tunnel the app accepted takes matching requests past the session: an observer that counts
            # them hears of them from the agent instead (``HttpRequestsServed``).
            notify = type(self._observer).requests_served is not SessionObserver.requests_served
            self._app_tunnels = AppTunnels(
                self._outgoing.tunnels,
                self._link.send,
                lambda text: self._on_event(SessionEvent("log", text)),
                notify=notify,
            )
            self._http.app_tunnel = self._app_tunnels.give
        self._pump = asyncio.create_task(self._pump_agent(), name="pymirrord-agent-pump")

    def _app_address(self, port: int) -> SocketAddress | None:
        listener = self._state.listeners.get(port)
        return None if listener is None else listener.address

    async def close(self) -> None:
        for relay in list(self._tunnel_relays.values()):
            relay.abort("the session is closing")
        for pool in (self._tunnels, self._outgoing.tunnels):
            if pool is not None:
                await pool.close()
        await self._outgoing.close()
        await self._http.close()
        if self._server is not None:
            self._server.close()
        for writer in list(self._layers.values()):
            writer.close()
        for app in list(self._apps.values()):
            self._abort_app(app)
        for task in list(self._handing):
            task.cancel()
        await asyncio.gather(*self._handing, return_exceptions=True)
        for raw in self._layer_sockets.values():
            raw.close()  # an editor's helper lives long: its sessions must not leak descriptors
        self._layer_sockets.clear()
        if self._pump is not None:
            self._pump.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._pump
        if self._handover is not None:
            self._handover.close()
        with contextlib.suppress(Exception):
            await self._link.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._socket_path)

    # Actions ---------------------------------------------------------------------------------

    async def _apply(self, actions: list[Action]) -> None:
        for action in actions:
            if isinstance(action, SendToAgent):
                await self._link.send(action.message)
            elif isinstance(action, ReplyToLayer):
                writer = self._layers.get(action.layer)
                if writer is not None and not writer.is_closing():
                    writer.write(frame(to_layer.CODEC.encode(action.message)))
            elif isinstance(action, OpenToApp) and action.tunnel:
                self._tunnel_pending.add(action.connection_id)
                task = asyncio.create_task(
                    self._tunnel_to_app(action.connection_id, action.address, action.tunnel)
                )
                self._handing.add(task)
                task.add_done_callback(self._handing.discard)
            elif isinstance(action, OpenToApp) and action.handed_over:
                task = asyncio.create_task(self._hand_to_app(action.connection_id, action.address))
                self._handing.add(task)
                task.add_done_callback(self._handing.discard)
            elif isinstance(action, OpenToApp):
                app = _AppConnection(action.connection_id)
                self._apps[action.connection_id] = app
                app.task = asyncio.create_task(self._relay(action.connection_id, action.address, app))
            elif isinstance(action, PortServed):
                verb = "mirrored" if action.mode is Mode.MIRROR else "stolen"
                self._on_event(SessionEvent("port", f"port {action.port} {verb}", action.port, action.mode))

    # Agent -> session -------------------------------------------------------------------------

    async def _pump_agent(self) -> None:
        reason = "the agent closed the connection"
        try:
            async for message in self._link.messages():
                await self._on_agent_message(message)
        except ProtocolError as error:
            reason = f"the agent sent a malformed message: {error}"
        except OSError as error:
            reason = f"the connection to the agent broke: {error}"
        self._on_event(SessionEvent("agent-lost", f"lost the agent: {reason}"))
        for app in list(self._apps.values()):
            self._abort_app(app)
        for relay in list(self._tunnel_relays.values()):
            relay.abort("lost the agent")
        self._outgoing.agent_lost()
        await self._http.close()
        self.agent_lost.set()

    async def _on_agent_message(self, message: from_agent.AgentToSession) -> None:
        self._observe_agent_message(message)
        if isinstance(message, OUTGOING_FROM_AGENT):
            await self._outgoing.on_agent_message(message)
        elif isinstance(message, HTTP_FROM_AGENT):
            await self._http.on_agent_message(message)
        elif isinstance(message, from_agent.ConnectionRead):
            await self._to_app(message.connection_id, message.data)
        elif isinstance(message, from_agent.TrafficReport):
            # Bytes of tunnels that reached the app past this session: counted as if they had passed.
            for traffic in message.connections:
                self._state.tunnel_moved(traffic.connection_id, True, traffic.to_app)
                self._state.tunnel_moved(traffic.connection_id, False, traffic.from_app)
        elif isinstance(message, from_agent.TunnelEnd):
            if self._tunnel_ends is not None:
                self._tunnel_ends.agent_ended(message.tunnel_id, message.length)
        elif isinstance(message, from_agent.ConnectionWriteFlow):
            app = self._apps.get(message.connection_id)
            if app is not None:
                app.hold_writes(message.paused)
        elif isinstance(message, from_agent.NewConnection):
            await self._apply(
                self._state.new_connection(
                    message.connection_id,
                    message.port,
                    message.mode,
                    message.client,
                    message.local,
                    handed_over=message.handed_over,
                    tunnel=message.tunnel,
                )
            )
        elif isinstance(message, from_agent.ConnectionClosed):
            app = self._apps.get(message.connection_id)
            if app is None and message.connection_id in self._tunnel_pending:
                # Its tunnel still holds what the client sent: the app takes it all the same.
                self._tunnel_closed.add(message.connection_id)
                return
            if app is None:
                self._state.forget(message.connection_id)
                return
            app.agent_closed = True
            app.hold_writes(False)  # nothing the app sends goes anywhere now: let its relay read to the end
            if app.app_done:
                self._finish_app(app)
            elif not app.pending or app.pending[-1]:
                app.write(b"")  # the client is gone: the app reads to the end, then EOF
        elif isinstance(message, from_agent.PortSubscribeResult):
            await self._apply(self._state.subscribe_result(message.port, message.mode, message.error))
        elif isinstance(message, from_agent.Log):
            if message.level in (LogLevel.WARNING, LogLevel.ERROR):
                self._on_event(SessionEvent("log", f"agent: {message.message}"))
        elif isinstance(message, from_agent.ErrorReport):
            text = f"agent error: {message.message}" + (f" ({message.hint})" if message.hint else "")
            self._on_event(SessionEvent("log", text))

    def _observe_agent_message(self, message: from_agent.AgentToSession) -> None:
        observer = self._observer
        if isinstance(message, from_agent.NewConnection):
            opened = ConnectionEvent(
                "opened", message.connection_id, message.port, message.mode, message.client
            )
            observer.connection(opened)
        elif isinstance(message, from_agent.ConnectionRead):
            observer.connection(ConnectionEvent("data", message.connection_id, data=message.data))
        elif isinstance(message, from_agent.ConnectionClosed):
            observer.connection(ConnectionEvent("closed", message.connection_id))
        elif isinstance(message, from_agent.HttpRequestStart):
            request = RequestEvent(
                message.request_id,
                message.port,
                message.mode,
                message.client,
                message.method,
                message.target,
                message.matched,
            )
            observer.request(request)
        elif isinstance(message, from_agent.TrafficReport):
            if message.requests:
                seen = [(request.connection_id, request.method, request.target) for request in message.last]
                observer.requests_seen(message.requests, seen)
        elif isinstance(message, from_agent.HttpRequestsServed):
            last = [
                RequestEvent(
                    served.request_id,
                    served.port,
                    Mode.STEAL,
                    served.client,
                    served.method,
                    served.target,
                    served.matched,
                )
                for served in message.last
            ]
            observer.requests_served(message.count, last)

    async def _to_app(self, connection_id: int, data: bytes) -> None:
        if not self._state.from_client(connection_id, len(data)):
            return
        app = self._apps.get(connection_id)
        if app is None:
            return
        # Never waits for the app: this runs on the one task that serves every connection of the session.
        app.write(data)
        connection = self._state.connections.get(connection_id)
        copy = connection is not None and connection.mode is Mode.MIRROR
        verdict = self._flow.grew(connection_id, app.backlog, copy=copy)
        if verdict is Verdict.PAUSE:
            await self._link.send(to_agent.ClientReadFlow(connection_id, True))
            app.waiter = asyncio.create_task(self._resume_when_drained(app))
        elif verdict is Verdict.DROP:
            limit = COPY_LIMIT // (1024 * 1024)
            text = f"mirrored connection {connection_id} dropped: the app fell more than {limit} MiB behind"
            self._on_event(SessionEvent("log", text))
            await self._apply(self._state.app_closed(connection_id))
            self._abort_app(app)

    async def _resume_when_drained(self, app: _AppConnection) -> None:
        try:
            await app.until_drained()
        except OSError:
            return  # the relay sees the failure too, and ends the connection
        if self._flow.shrank(app.connection_id, app.backlog) is Verdict.RESUME:
            await self._link.send(to_agent.ClientReadFlow(app.connection_id, False))

    # Session <-> app ---------------------------------------------------------------------------

    async def _relay(self, connection_id: int, address: SocketAddress, app: _AppConnection) -> None:
        loop = asyncio.get_running_loop()
        family = socket.AF_INET6 if ":" in address.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setblocking(False)
        try:
            sock.bind(("::1" if family == socket.AF_INET6 else "127.0.0.1", 0))
            self._state.app_connecting(connection_id, sock.getsockname()[1])
            await loop.sock_connect(sock, (address.host, address.port))
            no_delay(sock)
            reader, writer = await open_stream(sock, _CHUNK)
        except OSError as error:
            sock.close()
            self._apps.pop(connection_id, None)
            self._flow.forget(connection_id)
            app.stop()
            self._on_event(SessionEvent("log", f"cannot reach the app at {address}: {error}"))
            await self._apply(self._state.app_unreachable(connection_id))
            return
        app.connected(writer)
        try:
            while True:
                chunk = await reader.read(_CHUNK)
                await app.writable.wait()  # the agent may ask to hold this connection's bytes for a while
                await self._apply(self._state.from_app(connection_id, chunk))
                if not chunk:
                    break
        except ConnectionError:
            await self._apply(self._state.app_closed(connection_id))
            self._abort_app(app)
            return
        app.app_done = True
        if app.agent_closed:
            self._finish_app(app)

    async def _tunnel_to_app(self, connection_id: int, address: SocketAddress, tunnel_id: int) -> None:
        """Offers a connection that comes through a tunnel to the app in place of the connection it accepts,
        or relays it between the tunnel and the app until both sides have closed; the client's bytes pass
        the observer on the way, unless the agent reports them (a stolen connection, ``TrafficReport``)."""
        try:
            if self._tunnels is None:
                raise TunnelError(f"the agent picked tunnel {tunnel_id}, but this session opened none")
            tunnel, head = await self._tunnels.take(tunnel_id)
        except TunnelError as error:
            self._tunnel_pending.discard(connection_id)
            self._tunnel_closed.discard(connection_id)
            self._on_event(SessionEvent("log", f"connection {connection_id} lost: {error}"))
            await self._apply(self._state.app_unreachable(connection_id))
            return
        loop = asyncio.get_running_loop()
        family = socket.AF_INET6 if ":" in address.host else socket.AF_INET
        app = socket.socket(family, socket.SOCK_STREAM)
        app.setblocking(False)
        connection = self._state.connections.get(connection_id)
        reported = self._link.report_traffic and connection is not None and connection.mode is Mode.STEAL
        tap = None if reported else self._client_bytes_tap(connection_id)
        failed = True
        try:
            offered = tap is None and not head and tunnel.family == family
            if offered:
                # Offered to the app in place of the connection it accepts: the layer asks who is behind
                # it (``PeerQuery``) and takes the tunnel with the answer.
                self._tunnel_sockets[connection_id] = tunnel
            try:
                app.bind(("::1" if family == socket.AF_INET6 else "127.0.0.1", 0))
                self._state.app_connecting(connection_id, app.getsockname()[1])
                await loop.sock_connect(app, (address.host, address.port))
            except OSError as error:
                self._on_event(SessionEvent("log", f"cannot reach the app at {address}: {error}"))
                await self._apply(self._state.app_unreachable(connection_id))
                return
            sent = b""
            if offered:
                # The layer may have taken it already, while we connected.
                taken, sent = await self._tunnel_taken(connection_id, app)
                if taken:
                    failed = False
                    return
            no_delay(app)
            no_delay(tunnel)
            relay = TunnelRelay(
                app,
                tunnel,
                head_forward=sent,
                head_back=head,
                tap_back=tap,
                on_moved=None
                if reported
                else lambda forward, size: self._state.tunnel_moved(connection_id, not forward, size),
            )
            self._tunnel_relays[connection_id] = relay
            relay.start()
            outcome = await relay.wait()
            failed = outcome.failure is not None
        finally:
            self._tunnel_relays.pop(connection_id, None)
            self._tunnel_sockets.pop(connection_id, None)
            self._tunnel_pending.discard(connection_id)
            if connection_id in self._tunnel_closed:
                self._tunnel_closed.discard(connection_id)
                self._state.forget(connection_id)
            for end in (app, tunnel):
                if failed:
                    reset(end)
                else:
                    end.close()

    async def _tunnel_taken(self, connection_id: int, placeholder: socket.socket) -> tuple[bool, bytes]:
        """Waits for the app's layer to take the tunnel offered for ``connection_id`` (``offer_taken``);
        if it does not, the session relays the tunnel itself, starting with the bytes returned."""
        taken, sent = await offer_taken(self._tunnel_sockets, connection_id, placeholder)
        if taken:
            self._state.forget(connection_id)
            return True, b""
        if not self._tunnel_offer_ignored and connection_id in self._state.connections:
            self._tunnel_offer_ignored = True
            self._on_event(
                SessionEvent("log", "the app accepts connections where pymirrord cannot see: relaying them")
            )
        return False, sent

    def _client_bytes_tap(self, connection_id: int) -> Callable[[bytes], bool] | None:
        """What sees a tunneled connection's client bytes: the observer, if it looks at them."""
        observer = self._observer
        if not shows_traffic(observer):
            return None

        def tap(data: bytes) -> bool:
            observer.connection(ConnectionEvent("data", connection_id, data=data))
            return observer.wants_data(connection_id)

        return tap

    async def _hand_to_app(self, connection_id: int, address: SocketAddress) -> None:
        """Makes the app accept a placeholder connection, whose accept then yields the client's socket.

        The app's layer asks who is behind the placeholder (``PeerQuery``) and gets the client's socket
        with the answer; it puts that socket in place of the placeholder, which closes our end.
        """
        assert self._handover is not None
        loop = asyncio.get_running_loop()
        placeholder = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        placeholder.setblocking(False)
        try:
            self._handover.expect((Kind.INCOMING, connection_id))
            await self._handover.wait_for((Kind.INCOMING, connection_id))
            placeholder.bind(("127.0.0.1", 0))
            self._state.app_connecting(connection_id, placeholder.getsockname()[1])
            await loop.sock_connect(placeholder, (address.host, address.port))
            # Ends when the layer has swapped in the client's socket, or the app went away.
            with contextlib.suppress(OSError):
                await loop.sock_recv(placeholder, 1)
        except (OSError, TimeoutError) as error:
            message = f"could not hand connection {connection_id} to the app: {error}"
            self._on_event(SessionEvent("log", message))
        finally:
            placeholder.close()
            # Closes the client's socket if the app never took it.
            self._handover.discard((Kind.INCOMING, connection_id))
            self._state.forget(connection_id)

    def _finish_app(self, app: _AppConnection) -> None:
        """Both sides are done: let the last bytes drain to the app, then close."""
        self._state.forget(app.connection_id)
        self._apps.pop(app.connection_id, None)
        self._flow.forget(app.connection_id)
        app.stop()
        if app.writer is not None:
            app.writer.close()

    def _abort_app(self, app: _AppConnection) -> None:
        """Ends the connection at once; the app sees a reset rather than a clean end."""
        self._state.forget(app.connection_id)
        self._apps.pop(app.connection_id, None)
        self._flow.forget(app.connection_id)
        app.stop()
        if app.task is not None and app.task is not asyncio.current_task():
            app.task.cancel()
        if app.writer is not None:
            with contextlib.suppress(OSError):
                app.writer.transport.abort()

    # Layers -------------------------------------------------------------------------------------

    async def _serve_layer(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        layer = next(self._layer_ids)
        self._layers[layer] = writer
        decoder = FrameDecoder()
        try:
            while data := await reader.read(65536):
                for payload in decoder.feed(data):
                    await self._on_layer_message(layer, from_layer.CODEC.decode(payload), writer)
        except ProtocolError as error:
            self._on_event(SessionEvent("log", f"dropped a layer that broke the protocol: {error}"))
        except ConnectionError:
            pass
        finally:
            del self._layers[layer]
            pid = self._layer_pids.pop(layer, None)
            if pid is not None:
                self._observer.layer_gone(pid)
            self._outgoing.layer_gone(layer)
            raw = self._layer_sockets.pop(layer, None)
            if raw is not None:
                raw.close()
            writer.close()
            if not self.agent_lost.is_set():
                with contextlib.suppress(OSError, ConnectionError):
                    await self._apply(self._state.layer_gone(layer))

    async def _answer_with_socket(
        self, layer: int, writer: asyncio.StreamWriter, payload: bytes, attached: socket.socket
    ) -> None:
        """Sends a framed answer to a layer with ``attached`` riding on it (streams lack ``sendmsg``)."""
        await writer.drain()  # nothing of ours may be queued ahead of the answer that carries it
        raw = self._layer_sockets.get(layer)
        if raw is None:
            transport_socket = writer.get_extra_info("socket")
            raw = self._layer_sockets[layer] = socket.socket(fileno=os.dup(transport_socket.fileno()))
        await send_with_socket(raw, payload, attached)

    async def _on_layer_message(
        self, layer: int, message: from_layer.LayerToSession, writer: asyncio.StreamWriter
    ) -> None:
        if isinstance(message, OUTGOING_FROM_LAYER):
            self._outgoing.on_layer_message(layer, message, writer)
        elif isinstance(message, from_layer.PeerQuery):
            answer = self._state.peer_of(message.port)
            connection_id = self._state.connection_at(message.port)
            client_socket = None
            offers = self._app_tunnels
            app_tunnel = offers.take_offer(message.port) if offers is not None else None
            if app_tunnel is not None:
                # The agent's own connection to the app: no client behind it to name.
                client_socket = socket.socket(fileno=os.dup(app_tunnel.fileno()))
            elif self._handover is not None and connection_id is not None:
                client_socket = self._handover.take((Kind.INCOMING, connection_id))
            elif connection_id is not None:
                tunnel = self._tunnel_sockets.pop(connection_id, None)
                client_socket = None if tunnel is None else socket.socket(fileno=os.dup(tunnel.fileno()))
            if client_socket is None:
                writer.write(frame(to_layer.CODEC.encode(answer)))
                return
            try:
                payload = frame(to_layer.CODEC.encode(dataclasses.replace(answer, handover=True)))
                await self._answer_with_socket(layer, writer, payload, client_socket)
            finally:
                client_socket.close()
        elif isinstance(message, from_layer.ListenRequest):
            await self._apply(self._state.layer_listen(layer, message.port, message.address))
        elif isinstance(message, from_layer.ListenClosed):
            await self._apply(self._state.layer_closed_listener(layer, message.port, message.address))
        elif isinstance(message, from_layer.LayerHello):
            if message.protocol_version != PROTOCOL_VERSION:
                raise ProtocolError(
                    f"layer in pid {message.pid} speaks protocol {message.protocol_version},"
                    f" the session {PROTOCOL_VERSION}"
                )
            writer.write(frame(to_layer.CODEC.encode(to_layer.SessionHello(PROTOCOL_VERSION))))
            if layer not in self._layer_pids:
                self._layer_pids[layer] = message.pid
                self._observer.layer_connected(message.pid, message.parent_pid)
