"""The agent's websocket server: authentication, the version handshake, and each session's messages.

Sessions authenticate with ``Authorization: Bearer <token>``; anything else gets HTTP 401 before a websocket
exists. A session's first message must be ``ClientHello`` with our protocol version. After that its port
subscriptions change the redirect rules (through ``PortRules``, run off the event loop because iptables
blocks) and its connection messages go to ``Incoming``. When a session goes away, everything it held is
dropped: its subscriptions, the rules of ports nobody else subscribes, the connections it stole.

Messages to a session pass through its ``Outbox``, a queue drained by one writer task, so that nothing that
produces messages (the redirect listener above all) ever waits on a websocket, except stolen data, which
waits on purpose to pace the client.
"""

from __future__ import annotations

import asyncio
import collections
import hmac
import http
import itertools
import logging
import socket
from collections.abc import Callable
from typing import Protocol

from pymirrord import __version__
from pymirrord.agent.environ import ProcessEnvironment
from pymirrord.agent.errors import AgentError
from pymirrord.agent.handover import HandoverChannels
from pymirrord.agent.incoming import Incoming
from pymirrord.agent.outgoing import Outgoing
from pymirrord.agent.subscriptions import AddRedirect, RuleAction, Subscriptions
from pymirrord.nodelay import no_delay
from pymirrord.protocol import PROTOCOL_VERSION
from pymirrord.protocol import agent_to_session as to_session
from pymirrord.protocol import session_to_agent as from_session
from pymirrord.protocol.batch import split_batch
from pymirrord.protocol.errors import ProtocolError
from pymirrord.protocol.http_types import HttpFilterSpec
from pymirrord.protocol.outgoing_types import ResolveError
from pymirrord.protocol.types import LogLevel, Mode
from pymirrord.remote_env import select_variables
from pymirrord.transport.connection import WebSocket, WebSocketServer
from pymirrord.transport.errors import ConnectionClosed
from pymirrord.transport.handshake import BATCH_SUBPROTOCOL, STREAM_SUBPROTOCOL, UpgradeRequest
from pymirrord.tunnel import ENDS_HEADER as TUNNEL_ENDS_HEADER
from pymirrord.tunnel import ID_HEADER as TUNNEL_ID_HEADER
from pymirrord.tunnel import KEY_HEADER as TUNNEL_KEY_HEADER
from pymirrord.tunnel import USE_HEADER as TUNNEL_USE_HEADER

log = logging.getLogger(__name__)

HELLO_TIMEOUT = 10.0
"""How long a session may take to send ``ClientHello`` after the websocket opens."""
MAX_MESSAGE = 16 * 1024 * 1024
"""The largest message a session may send (its ``ConnectionWrite`` chunks are far smaller)."""
MIRROR_QUEUE_LIMIT = 64 * 1024 * 1024
"""Bytes queued for one session beyond which mirrored copies are refused (and that copy dropped)."""
STEAL_RESUME_BELOW = 1024 * 1024
"""Stolen connections stop reading their client while a session's queue holds more than this."""
WEBSOCKET_WRITE_LIMIT = 1024 * 1024
"""High-water mark of the websocket's own send buffer."""
BATCH_BYTES = 1024 * 1024
"""Queued messages past this size wait for the next websocket message."""
PING_INTERVAL = 20.0
PING_TIMEOUT = 20.0
"""A session that answers no ping within this long is gone (its machine slept or lost the network): it is
dropped like one that disconnected, so its rules and stolen ports are released."""
CLOSE_TIMEOUT = 3.0
"""Seconds to wait for a session to acknowledge a close; a stuck session must not hold up the shutdown."""
CLOSE_PROTOCOL_ERROR = 1002
TARGETLESS_REFUSAL = (
    "this agent is targetless: it serves outgoing connections and DNS only, and cannot mirror or steal "
    'port {port}; pick a target (--target deployment/NAME, pod/NAME, ... or "target" in the config) '
    "to receive its incoming traffic"
)


class PortRules(Protocol):
    """The redirect rules of the agent's namespace (``iptables.RedirectRules``); both calls block."""

    def add_port(self, port: int) -> None: ...

    def remove_port(self, port: int) -> bool: ...


EnvironmentSource = Callable[[], ProcessEnvironment]
"""Reads the target process's environment now (blocking: it reads ``/proc``)."""


class Outbox:
    """One session's outgoing messages, sent in order.

    ``put`` always queues; ``offer`` refuses once ``limit`` bytes are queued; ``wait_writable`` waits until at
    most ``resume_below`` bytes are queued. What is queued during one turn of the event loop leaves at the end
    of that turn in one ``send`` (one websocket message when the session agreed to batches), with no task to
    wake in between. While the websocket is full (``ready`` says no) messages wait, and ``resume`` sends them
    on. After ``close`` everything is discarded.
    """

    def __init__(
        self,
        send: Callable[[list[bytes]], None],
        ready: Callable[[], bool],
        *,
        limit: int = MIRROR_QUEUE_LIMIT,
        resume_below: int = STEAL_RESUME_BELOW,
    ) -> None:
        self._send = send
        self._ready = ready
        self._limit = limit
        self._resume_below = resume_below
        self._frames: collections.deque[bytes] = collections.deque()
        self._size = 0
        self._closed = False
        self._scheduled = False
        self._loop = asyncio.get_running_loop()
        self._writable = asyncio.Event()
        self._writable.set()
        self._empty = asyncio.Event()
        self._empty.set()

    @property
    def queued_bytes(self) -> int:
        return self._size

    @property
    def closed(self) -> bool:
        return self._closed

    def put(self, frame: bytes) -> None:
        if self._closed:
            return
        self._frames.append(frame)
        self._size += len(frame)
        self._empty.clear()
        if self._size > self._resume_below:
            self._writable.clear()
        self.resume()

    def offer(self, frame: bytes) -> bool:
        if self._closed:
            return True  # nobody will read it; there is nothing to warn about either
        if self._size + len(frame) > self._limit:
            return False
        self.put(frame)
        return True

    async def wait_writable(self) -> None:
        while not self._closed and self._size > self._resume_below:
            await self._writable.wait()

    async def flush(self) -> None:
        """Wait until everything queued so far has been handed to the websocket (or the outbox closed)."""
        await self._empty.wait()

    def resume(self) -> None:
        """Send what waits at the end of this turn (the websocket has room again, or something was queued)."""
        if not self._scheduled and not self._closed and self._frames:
            self._scheduled = True
            self._loop.call_soon(self._send_queued)

    def close(self) -> None:
        self._closed = True
        self._frames.clear()
        self._size = 0
        self._writable.set()
        self._empty.set()

    def _send_queued(self) -> None:
        self._scheduled = False
        if self._closed or not self._ready():
            return
        taken: list[bytes] = []
        size = 0
        # A burst goes out at once, but not so much that one write holds the loop for long.
        while self._frames and size < BATCH_BYTES:
            frame = self._frames.popleft()
            taken.append(frame)
            size += len(frame)
        self._size -= size
        if self._size <= self._resume_below:
            self._writable.set()
        self._send(taken)
        if self._frames:
            self.resume()
        else:
            self._empty.set()


class _Session:
    def __init__(self, session_id: int, name: str, peer: str, connection: WebSocket) -> None:
        self.id = session_id
        self.name = name
        self.peer = peer
        self.connection = connection
        self.batched = connection.subprotocol == BATCH_SUBPROTOCOL
        self.outbox = Outbox(self._send_frames, lambda: connection.writable)
        connection.on_writable = self.outbox.resume

    def __str__(self) -> str:
        return f"session {self.id} ({self.name!r} from {self.peer})"

    def send(self, message: to_session.AgentToSession) -> None:
        self.outbox.put(to_session.CODEC.encode(message))

    def _send_frames(self, frames: list[bytes]) -> None:
        self.connection.send_messages(frames, batched=self.batched)


def _peer(connection: WebSocket) -> str:
    return _address_text(connection.remote_address)


class AgentServer:
    """Serves sessions on a websocket; one instance per agent.

    Without ``rules`` the agent is targetless: nothing can be redirected to it, so port subscriptions are
    refused (outgoing connections and lookups are served as usual).
    """

    def __init__(
        self,
        *,
        token: str,
        target: str,
        rules: PortRules | None,
        subscriptions: Subscriptions,
        incoming: Incoming,
        handover: HandoverChannels | None = None,
        outgoing: Outgoing | None = None,
        ping_interval: float = PING_INTERVAL,
        environment: EnvironmentSource | None = None,
    ) -> None:
        if not token:
            raise ValueError("the agent needs a non-empty token")
        self._expected_authorization = f"Bearer {token}".encode()
        self._target = target
        self._rules = rules
        self._subscriptions = subscriptions
        self._incoming = incoming
        self._handover = handover
        self._outgoing = outgoing
        if outgoing is not None:
            outgoing.tunnels = incoming.tunnels
        self._ping_interval = ping_interval
        self._environment = environment
        self._sessions: dict[int, _Session] = {}
        self._session_ids = itertools.count(1)
        # Subscription changes and their rule changes happen one at a time, in order.
        self._rules_lock = asyncio.Lock()
        self._activity = asyncio.Event()
        self._server: WebSocketServer | None = None

    @property
    def session_count(self) -> int:
        return len(self._sessions)

    async def start(self, sock: socket.socket) -> None:
        """Serve on ``sock``, a listening TCP socket (made before entering the target's namespace)."""
        self._server = WebSocketServer(
            self._handle,
            authenticate=self._authenticate,
            subprotocols=(BATCH_SUBPROTOCOL, STREAM_SUBPROTOCOL),
            max_message=MAX_MESSAGE,
            write_limit=WEBSOCKET_WRITE_LIMIT,
            close_timeout=CLOSE_TIMEOUT,
        )
        await self._server.start(sock)

    async def close(self) -> None:
        """Close every session (dropping its subscriptions and rules) and stop listening."""
        if self._server is None:
            return
        self._server.close()
        await self._server.wait_closed()

    async def wait_idle(self, timeout: float) -> None:
        """Return once no session has been connected for ``timeout`` seconds."""
        while True:
            self._activity.clear()
            if self._sessions:
                await self._activity.wait()
                continue
            try:
                await asyncio.wait_for(self._activity.wait(), timeout)
            except asyncio.TimeoutError:
                return

    # --- handshake -----------------------------------------------------------------------------------------

    def _authenticate(self, request: UpgradeRequest, peer: object) -> tuple[int, str, dict[str, str]] | None:
        header = request.headers.get("authorization")
        if header is not None and hmac.compare_digest(header.encode(), self._expected_authorization):
            return None
        problem = "no token" if header is None else "a wrong token"
        log.warning("rejected a websocket connection from %s: %s (HTTP 401)", _address_text(peer), problem)
        return (
            http.HTTPStatus.UNAUTHORIZED,
            "pymirrord agent: a valid 'Authorization: Bearer <token>' is required\n",
            {"WWW-Authenticate": 'Bearer realm="pymirrord-agent"'},
        )

    async def _hello(self, connection: WebSocket, peer: str) -> from_session.ClientHello | None:
        """The session's ``ClientHello``, or None after reporting why the session is refused."""
        try:
            frame = await asyncio.wait_for(connection.recv(), HELLO_TIMEOUT)
        except ConnectionClosed:
            log.info("a session from %s left before its handshake", peer)
            return None
        except asyncio.TimeoutError:
            await self._refuse(
                connection,
                "handshake-timeout",
                f"no ClientHello within {HELLO_TIMEOUT:g} s",
                "the session must send ClientHello right after connecting",
            )
            return None
        try:
            # The session waits for our answer before it sends more, so a batch holds the hello alone.
            messages = _decode_all(frame, connection.subprotocol == BATCH_SUBPROTOCOL)
            message = messages[0] if len(messages) == 1 else None
        except ProtocolError as exc:
            await self._refuse(connection, "bad-message", str(exc), "the session must send ClientHello first")
            return None
        if not isinstance(message, from_session.ClientHello):
            await self._refuse(
                connection,
                "handshake",
                f"expected ClientHello first, got {type(message).__name__ if message else 'a batch'}",
                "the session must send ClientHello first",
            )
            return None
        if message.protocol_version != PROTOCOL_VERSION:
            log.warning(
                "refused %s from %s: protocol version %d, ours is %d",
                message.session_name,
                peer,
                message.protocol_version,
                PROTOCOL_VERSION,
            )
            await self._refuse(
                connection,
                "version-mismatch",
                f"the session speaks protocol version {message.protocol_version} "
                f"(pymirrord {message.client_version}), this agent speaks {PROTOCOL_VERSION} "
                f"(pymirrord {__version__})",
                "use the same pymirrord version for the session and the agent",
            )
            return None
        return message

    async def _refuse(self, connection: WebSocket, code: str, message: str, hint: str) -> None:
        report = to_session.CODEC.encode(to_session.ErrorReport(code, message, hint))
        connection.send_messages([report], batched=connection.subprotocol == BATCH_SUBPROTOCOL)
        await connection.close(CLOSE_PROTOCOL_ERROR, code)

    # --- a session's life ----------------------------------------------------------------------------------

    async def _handle(self, connection: WebSocket) -> None:
        # Messages are small and come in bursts: without this, the second of two waits for the session's
        # delayed ACK (the listening socket is ours, so asyncio did not turn Nagle off).
        raw = connection.socket
        if raw is not None:
            no_delay(raw)
        if connection.subprotocol == STREAM_SUBPROTOCOL:
            await self._add_tunnel(connection)
            return
        connection.keep_alive(self._ping_interval, PING_TIMEOUT)
        peer = _peer(connection)
        hello = await self._hello(connection, peer)
        if hello is None:
            return
        session = _Session(next(self._session_ids), hello.session_name, peer, connection)
        self._sessions[session.id] = session
        self._activity.set()
        self._incoming.attach(session.id, session.outbox, report_traffic=hello.report_traffic)
        if self._outgoing is not None:
            self._outgoing.attach(session.id, session.outbox)
        log.info("%s connected (pymirrord %s)", session, hello.client_version)
        if self._handover is not None:
            path, key = self._handover.path, self._handover.key_for(session.id)
        else:
            path, key = None, ""
        tunnel_key = self._incoming.tunnels.key_for(session.id, session.send)
        session.send(
            to_session.AgentHello(PROTOCOL_VERSION, __version__, self._target, path, key, tunnel_key)
        )
        try:
            await self._serve_session(session)
        except ConnectionClosed:
            pass
        except asyncio.TimeoutError:
            pass
        finally:
            await self._drop(session)
            session.outbox.close()
            log.info("%s disconnected", session)

    async def _add_tunnel(self, connection: WebSocket) -> None:
        """A session's tunnel: kept idle for the session's next stolen connection."""
        request = connection.request
        headers = request.headers if request is not None else {}
        try:
            tunnel_id = int(headers.get(TUNNEL_ID_HEADER, ""))
        except ValueError:
            tunnel_id = 0
        peer = _peer(connection)
        try:
            sock, rest = await connection.detach()
        except ConnectionClosed:
            return
        key, use = headers.get(TUNNEL_KEY_HEADER, ""), headers.get(TUNNEL_USE_HEADER, "incoming")
        counted = headers.get(TUNNEL_ENDS_HEADER, "") == "counted"
        if not self._incoming.tunnels.add(key, tunnel_id, use, sock, rest, counted=counted):
            log.warning("a tunnel from %s names no live session; closed", peer)
            sock.close()

    async def _serve_session(self, session: _Session) -> None:
        connection = session.connection
        while True:
            for frame in await connection.recv_many():
                try:
                    messages = _decode_all(frame, session.batched)
                except ProtocolError as exc:
                    session.send(
                        to_session.ErrorReport(
                            "bad-message", str(exc), "the session and the agent disagree on the protocol"
                        )
                    )
                    await asyncio.wait_for(session.outbox.flush(), 5)
                    await connection.close(CLOSE_PROTOCOL_ERROR, "bad message")
                    return
                for message in messages:
                    await self._dispatch(session, message)

    async def _drop(self, session: _Session) -> None:
        self._incoming.session_gone(session.id)
        if self._outgoing is not None:
            self._outgoing.session_gone(session.id)
        if self._handover is not None:
            self._handover.forget(session.id)
        self._incoming.tunnels.forget(session.id)
        try:
            async with self._rules_lock:
                await self._apply_rules(self._subscriptions.session_gone(session.id))
        finally:
            # Counted as gone only now, so that "no session" also means "none of their rules left".
            self._sessions.pop(session.id, None)
            self._activity.set()

    async def _dispatch(self, session: _Session, message: from_session.SessionToAgent) -> None:
        if isinstance(message, from_session.ConnectionWrite):
            self._incoming.session_write(session.id, message.connection_id, message.data)
        elif isinstance(message, from_session.ClientReadFlow):
            self._incoming.session_read_flow(session.id, message.connection_id, message.paused)
        elif isinstance(message, from_session.ConnectionClose):
            self._incoming.session_close(session.id, message.connection_id)
        elif isinstance(message, from_session.ConnectionUnsubscribe):
            self._incoming.session_unsubscribe(session.id, message.connection_id)
        elif isinstance(message, from_session.TunnelEnd):
            self._incoming.tunnels.end_heard(session.id, message.tunnel_id, message.length)
        elif isinstance(message, from_session.HttpAppTunnel):
            self._incoming.app_tunnel(session.id, message.port, message.tunnel_id, notify=message.notify)
        elif isinstance(message, from_session.Ping):
            session.send(to_session.Pong(message.nonce))
        elif isinstance(message, _OUTGOING_MESSAGES):
            await self._dispatch_outgoing(session, message)
        elif isinstance(message, from_session.HttpResponseData):
            await self._incoming.http.response_data(session.id, message.request_id, message.data)
        elif isinstance(message, from_session.HttpRequestFlow):
            self._incoming.http.request_flow(session.id, message.request_id, message.paused)
        elif isinstance(message, from_session.HttpResponseEnd):
            self._incoming.http.response_end(session.id, message.request_id)
        elif isinstance(message, from_session.HttpResponseFailed):
            self._incoming.http.response_end(session.id, message.request_id, message.reason)
        elif isinstance(message, from_session.PortSubscribe):
            await self._subscribe(session, message.port, message.mode, message.handover, message.http_filter)
        elif isinstance(message, from_session.PortUnsubscribe):
            async with self._rules_lock:
                await self._apply_rules(self._subscriptions.unsubscribe(session.id, message.port))
            self._incoming.http.port_gone(session.id, message.port)
            log.info("%s: port %d unsubscribed", session, message.port)
        elif isinstance(message, from_session.EnvRequest):
            await self._send_environment(session, message)
        elif isinstance(message, from_session.ClientHello):
            session.send(
                to_session.Log(LogLevel.WARNING, "ClientHello sent twice; the second one is ignored")
            )

    async def _send_environment(self, session: _Session, request: from_session.EnvRequest) -> None:
        if self._environment is None:
            read = ProcessEnvironment(
                {}, "", "this agent is targetless: there is no target environment to copy"
            )
        else:
            read = await asyncio.to_thread(self._environment)
        chosen = select_variables(read.variables, request.include, request.exclude)
        variables = tuple(to_session.EnvVariable(name, value) for name, value in sorted(chosen.items()))
        session.send(to_session.EnvResult(request.request_id, variables, read.source, read.warning))
        # Names and counts only: values are often secrets.
        log.info(
            "%s: %d of the %d environment variables of %s sent",
            session,
            len(variables),
            len(read.variables),
            read.source or "no process",
        )
        if read.warning:
            log.warning("%s: %s", session, read.warning)

    async def _dispatch_outgoing(self, session: _Session, message: from_session.SessionToAgent) -> None:
        outgoing = self._outgoing
        if outgoing is None:
            if isinstance(message, from_session.OutgoingConnect):
                session.send(
                    to_session.OutgoingConnectResult(
                        message.request_id,
                        message.transport,
                        0,
                        None,
                        "EOPNOTSUPP",
                        "this agent makes no outgoing connections",
                        handed_over=False,
                    )
                )
            elif isinstance(message, from_session.DnsLookup):
                session.send(
                    to_session.DnsResult(message.request_id, (), None, ResolveError.FAIL, "no lookups here")
                )
            return
        if isinstance(message, from_session.OutgoingWrite):
            outgoing.write(session.id, message.connection_id, message.data)
        elif isinstance(message, from_session.OutgoingReadFlow):
            outgoing.read_flow(session.id, message.connection_id, message.paused)
        elif isinstance(message, from_session.OutgoingConnect):
            outgoing.connect(session.id, message)
        elif isinstance(message, from_session.OutgoingClose):
            outgoing.close(session.id, message.connection_id)
        elif isinstance(message, from_session.DnsLookup):
            outgoing.lookup(session.id, message)

    async def _subscribe(
        self,
        session: _Session,
        port: int,
        mode: Mode,
        handover: bool,
        http_filter: HttpFilterSpec | None = None,
    ) -> None:
        if self._rules is None:
            refusal = TARGETLESS_REFUSAL.format(port=port)
            session.send(to_session.PortSubscribeResult(port, mode, refusal))
            log.info("%s: port %d refused: the agent is targetless", session, port)
            return
        async with self._rules_lock:
            outcome = self._subscriptions.subscribe(session.id, port, mode, handover, http_filter)
            error = outcome.error
            if error is None:
                try:
                    await self._apply_rules(outcome.actions)
                except AgentError as exc:
                    error = f"could not redirect port {port}: {exc.render()}"
                    await self._apply_rules(self._subscriptions.unsubscribe(session.id, port))
            session.send(to_session.PortSubscribeResult(port, mode, error))
        if error is None:
            log.info("%s: port %d %s", session, port, "stolen" if mode is Mode.STEAL else "mirrored")
        else:
            log.warning("%s: port %d not subscribed: %s", session, port, error)

    async def _apply_rules(self, actions: tuple[RuleAction, ...]) -> None:
        if self._rules is None:
            return  # targetless: no subscription was ever accepted, so there is no rule to change
        for action in actions:
            if isinstance(action, AddRedirect):
                await asyncio.to_thread(self._rules.add_port, action.port)
            elif not await asyncio.to_thread(self._rules.remove_port, action.port):
                log.warning(
                    "the redirect of port %d may not be fully removed; see `iptables -t nat -S`", action.port
                )
        self._incoming.watch_captured(self._subscriptions.captured_ports)


_OUTGOING_MESSAGES = (
    from_session.OutgoingWrite,
    from_session.OutgoingReadFlow,
    from_session.OutgoingConnect,
    from_session.OutgoingClose,
    from_session.DnsLookup,
)


def _decode(frame: str | bytes | bytearray) -> from_session.SessionToAgent:
    if isinstance(frame, str):
        raise ProtocolError("got a text frame; every message is a binary frame")
    return from_session.CODEC.decode(frame)


def _decode_all(frame: str | bytes | bytearray, batched: bool) -> list[from_session.SessionToAgent]:
    if not batched:
        return [_decode(frame)]
    if isinstance(frame, str):
        raise ProtocolError("got a text frame; every message is a binary frame")
    return [from_session.CODEC.decode(part) for part in split_batch(frame)]


def _address_text(address: object) -> str:
    if isinstance(address, tuple) and len(address) >= 2:
        return f"{address[0]}:{address[1]}"
    return str(address)
