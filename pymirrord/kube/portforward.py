"""Port-forward through the Kubernetes API: a local TCP listener whose connections reach a port inside a pod.

Each local connection gets its own websocket to ``/api/v1/namespaces/NS/pods/POD/portforward?ports=PORT``
speaking the ``v4.channel.k8s.io`` subprotocol, the same one the API server and kubelet speak to
``kubectl``'s websocket transport and to the official Python client:

- every binary message starts with a channel byte; for the i-th requested port, channel ``2i`` carries data
  both ways and channel ``2i+1`` carries errors from the server;
- the first message the server sends on each of the two channels is the port number, 2 bytes little-endian;
- a message on the error channel (for example "connection refused" when nothing listens on the port) ends the
  stream; the server closes the websocket when the pod side closes the connection.

``PortForwardStream`` is that framing, sans-I/O; ``PortForwarder`` pumps bytes between local sockets and
websockets, with the API client's credentials and TLS settings.

The protocol has no half-close. Where the session counts its tunnels' ends (``count_ends``), the
forwarder counts each local connection's bytes both ways: a local end of stream is reported with its
count instead of closing the websocket, and ``end_downstream`` half-closes the local connection once the
count the agent announced has reached it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus, WebSocketException

from pymirrord.kube.client import status_message
from pymirrord.kube.errors import Forbidden, PortForwardFailed

log = logging.getLogger("pymirrord.kube.portforward")

SUBPROTOCOL = "v4.channel.k8s.io"
DATA_CHANNEL = 0
ERROR_CHANNEL = 1
_CHUNK = 256 * 1024


class FramingError(Exception):
    """The server sent something the port-forward protocol does not allow."""


@dataclass(frozen=True)
class Data:
    """Bytes from the pod's port."""

    data: bytes


@dataclass(frozen=True)
class Opened:
    """Both channels announced the port: the stream is connected."""

    port: int


@dataclass(frozen=True)
class Failed:
    """The server reported an error for the port (the stream ends)."""

    message: str


Event = Data | Opened | Failed


class PortForwardStream:
    """The framing of one port on one websocket (the first and only port: channels 0 and 1)."""

    def __init__(self, port: int) -> None:
        if not 0 < port < 65536:
            raise ValueError(f"invalid port {port}")
        self.port = port
        self._announced = {DATA_CHANNEL: False, ERROR_CHANNEL: False}
        self._error = b""
        self.failed = False

    @property
    def opened(self) -> bool:
        return all(self._announced.values())

    def encode(self, data: bytes) -> bytes:
        """A message carrying ``data`` towards the pod."""
        return bytes((DATA_CHANNEL,)) + data

    def receive(self, message: bytes) -> list[Event]:
        """The events in one message from the server; ``FramingError`` for anything malformed."""
        if not message:
            raise FramingError("empty message (no channel byte)")
        channel, payload = message[0], message[1:]
        if channel not in self._announced:
            raise FramingError(
                f"message on channel {channel}; only 0 (data) and 1 (error) exist for one port"
            )
        events: list[Event] = []
        if not self._announced[channel]:
            if len(payload) < 2:
                raise FramingError(
                    f"the first message on channel {channel} has {len(payload)} bytes, not a port"
                )
            port = int.from_bytes(payload[:2], "little")
            if port != self.port:
                raise FramingError(f"channel {channel} announced port {port}, expected {self.port}")
            self._announced[channel] = True
            payload = payload[2:]
            if self.opened:
                events.append(Opened(port))
        if not payload:
            return events
        if channel == DATA_CHANNEL:
            events.append(Data(payload))
        else:
            self._error += payload
            self.failed = True
            events.append(Failed(self._error.decode("utf-8", "replace")))
        return events


@dataclass(frozen=True)
class Endpoint:
    """How to reach the API server: URL, headers and TLS, taken from a ``kubernetes`` Configuration."""

    base_url: str
    headers: dict[str, str]
    ssl_context: ssl.SSLContext | None
    server_hostname: str | None = None
    proxy: str | None = None

    @classmethod
    def from_configuration(cls, configuration: Any) -> Endpoint:
        headers: dict[str, str] = {}
        # auth_settings() calls the refresh hook, so an expiring token (exec plugins, OIDC) is fresh here.
        for setting in configuration.auth_settings().values():
            if setting.get("in") == "header" and setting.get("value"):
                headers[str(setting["key"])] = str(setting["value"])
        host = str(configuration.host).rstrip("/")
        context: ssl.SSLContext | None = None
        if host.startswith("https://"):
            if configuration.verify_ssl:
                context = ssl.create_default_context(cafile=configuration.ssl_ca_cert or None)
                if getattr(configuration, "assert_hostname", None) is False:
                    context.check_hostname = False
            else:
                context = ssl.create_default_context()
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
            if configuration.cert_file:
                context.load_cert_chain(configuration.cert_file, configuration.key_file or None)
        return cls(
            base_url=host,
            headers=headers,
            ssl_context=context,
            server_hostname=getattr(configuration, "tls_server_name", None) or None,
            proxy=getattr(configuration, "proxy", None) or None,
        )

    def portforward_url(self, namespace: str, pod: str, port: int) -> str:
        parts = urlsplit(self.base_url)
        scheme = "wss" if parts.scheme == "https" else "ws"
        path = f"{parts.path}/api/v1/namespaces/{quote(namespace)}/pods/{quote(pod)}/portforward"
        return urlunsplit((scheme, parts.netloc, path, f"ports={port}", ""))


@dataclass
class _Local:
    """One local connection's counts, for counted ends."""

    writer: asyncio.StreamWriter
    up: int = 0
    down: int = 0
    down_end: int | None = None
    counted_end: bool = False
    """The local end of stream was reported as counted: the websocket stays open for the other way."""


class PortForwarder:
    """A listener on 127.0.0.1 (a free port) forwarding every connection to ``pod``'s ``port``."""

    def __init__(
        self, endpoint: Endpoint, namespace: str, pod: str, port: int, *, timeout: float = 30.0
    ) -> None:
        self.endpoint = endpoint
        self.namespace = namespace
        self.pod = pod
        self.port = port
        self.timeout = timeout
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.last_error: str | None = None
        self._on_local_end: Callable[[tuple[str, int], int], bool] | None = None
        self._on_closed: Callable[[tuple[str, int]], None] | None = None
        self._locals: dict[tuple[str, int], _Local] = {}

    def count_ends(
        self,
        on_local_end: Callable[[tuple[str, int], int], bool],
        on_closed: Callable[[tuple[str, int]], None],
    ) -> None:
        """A local connection's end of stream goes to ``on_local_end`` (its peer address and the bytes it
        sent); where that answers True, the websocket stays open for the other way. ``on_closed`` hears
        when a local connection is over."""
        self._on_local_end = on_local_end
        self._on_closed = on_closed

    def end_downstream(self, peer: tuple[str, int], total: int) -> None:
        """Half-close the local connection ``peer`` once ``total`` bytes have been written to it."""
        local = self._locals.get(peer)
        if local is None:
            return  # it is gone already: nothing to end
        local.down_end = total
        self._end_if_reached(local)

    @staticmethod
    def _end_if_reached(local: _Local) -> None:
        if local.down_end is not None and local.down >= local.down_end and local.writer.can_write_eof():
            with contextlib.suppress(OSError, RuntimeError):
                local.writer.write_eof()

    @property
    def local_port(self) -> int:
        assert self._server is not None, "start() first"
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    @property
    def url(self) -> str:
        """The agent's websocket URL through this forward."""
        return f"ws://127.0.0.1:{self.local_port}/"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)

    async def probe(self) -> None:
        """Check that something accepts connections on the pod's port; ``PortForwardFailed`` says why not.

        The server announces the port before it connects to it, so the announcement proves nothing: the probe
        sends an HTTP request and waits for the first byte of any answer (the agent's websocket server answers
        a plain request with an HTTP error), or for the error the server reports instead.
        """
        websocket, stream = await self._open()
        what = f"port {self.port} of pod/{self.pod}"
        request = b"GET / HTTP/1.1\r\nHost: pymirrord-probe\r\nConnection: close\r\n\r\n"

        async def answered() -> None:
            with contextlib.suppress(ConnectionClosed):
                # The server may have reported an error and closed already: that error is still to be read.
                await websocket.send(stream.encode(request))
            while True:
                message = await websocket.recv()
                if isinstance(message, str):
                    raise PortForwardFailed(f"the port-forward to {what} sent a text message")
                for event in stream.receive(message):
                    if isinstance(event, Failed):
                        raise PortForwardFailed(f"port-forward to {what} failed: {event.message}")
                    if isinstance(event, Data):
                        return

        try:
            await asyncio.wait_for(answered(), self.timeout)
        except TimeoutError:
            raise PortForwardFailed(f"nothing answered on {what} within {self.timeout:g} s") from None
        except ConnectionClosed:
            raise PortForwardFailed(f"the port-forward to {what} closed before anything answered") from None
        except FramingError as error:
            raise PortForwardFailed(f"the port-forward to {what} broke the protocol: {error}") from None
        finally:
            await websocket.close()

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await self._server.wait_closed()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    async def _open(self) -> tuple[ClientConnection, PortForwardStream]:
        url = self.endpoint.portforward_url(self.namespace, self.pod, self.port)
        what = f"port {self.port} of pod/{self.pod} in namespace {self.namespace}"
        try:
            websocket = await connect(
                url,
                subprotocols=[SUBPROTOCOL],  # type: ignore[list-item]
                additional_headers=self.endpoint.headers,
                ssl=self.endpoint.ssl_context,
                server_hostname=self.endpoint.server_hostname,
                proxy=self.endpoint.proxy,
                compression=None,
                open_timeout=self.timeout,
                ping_interval=None,
                max_size=None,
                user_agent_header="pymirrord",
            )
        except InvalidStatus as error:
            status = error.response.status_code
            message = status_message(error.response.body) or f"HTTP {status}"
            if status == 403:
                raise Forbidden(
                    f"not allowed to port-forward to {what}: {message}",
                    "pymirrord needs `create pods/portforward` (and `get pods/portforward`); "
                    "see docs/kubernetes.md",
                    status=403,
                    reason="Forbidden",
                ) from None
            raise PortForwardFailed(f"cannot port-forward to {what}: {message}") from None
        except (OSError, TimeoutError, WebSocketException) as error:
            raise PortForwardFailed(f"cannot port-forward to {what}: {error}") from None
        if websocket.subprotocol != SUBPROTOCOL:
            await websocket.close()
            raise PortForwardFailed(
                f"the API server answered the port-forward to {what} with subprotocol "
                f"{websocket.subprotocol!r}, not {SUBPROTOCOL}"
            )
        return websocket, PortForwardStream(self.port)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            await self._forward(reader, writer)
        except asyncio.CancelledError:
            # close() cancels connections; ending quietly keeps asyncio's server callback from logging it.
            pass
        finally:
            writer.close()
            self._tasks.discard(task)

    async def _forward(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            websocket, stream = await self._open()
        except PortForwardFailed as error:
            self.last_error = error.message
            log.warning("%s", error.message)
            return
        try:
            await self._pump(reader, writer, websocket, stream)
        except PortForwardFailed as error:
            self.last_error = error.message
            log.warning("%s", error.message)
        finally:
            with contextlib.suppress(Exception):
                await websocket.close()

    async def _pump(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        websocket: ClientConnection,
        stream: PortForwardStream,
    ) -> None:
        peername = writer.get_extra_info("peername")
        peer = (str(peername[0]), int(peername[1])) if peername else ("", 0)
        local = _Local(writer)
        if self._on_local_end is not None:
            self._locals[peer] = local

        async def upstream() -> None:
            while data := await reader.read(_CHUNK):
                local.up += len(data)
                await websocket.send(stream.encode(data))
            if self._on_local_end is not None and self._on_local_end(peer, local.up):
                local.counted_end = True  # the end travels as a message; the agent closes the tunnel later
                return
            # v4 has no half-close: the local side is done, so the stream is.
            await websocket.close()

        async def downstream() -> None:
            async for message in websocket:
                if isinstance(message, str):
                    raise PortForwardFailed("the port-forward sent a text message")
                try:
                    events = stream.receive(message)
                except FramingError as error:
                    raise PortForwardFailed(f"the port-forward broke the protocol: {error}") from None
                for event in events:
                    if isinstance(event, Data):
                        if local.down_end is not None and local.down + len(event.data) > local.down_end:
                            raise PortForwardFailed("the agent sent past the end it announced")
                        writer.write(event.data)
                        local.down += len(event.data)
                        self._end_if_reached(local)
                        await writer.drain()
                    elif isinstance(event, Failed):
                        raise PortForwardFailed(f"port-forward to pod/{self.pod}: {event.message}")

        up = asyncio.create_task(upstream())
        down = asyncio.create_task(downstream())
        try:
            await asyncio.wait({up, down}, return_when=asyncio.FIRST_COMPLETED)
            if up.done() and not down.done() and up.exception() is None:
                if local.counted_end:
                    await asyncio.wait({down})  # a counted end: the other way carries on
                else:
                    # The local side ended and the websocket is closed: the reader ends by itself.
                    await asyncio.wait({down}, timeout=5.0)
            for finished in (up, down):
                if finished.done() and not finished.cancelled():
                    error = finished.exception()
                    if isinstance(error, PortForwardFailed):
                        raise error
        finally:
            if self._locals.pop(peer, None) is not None and self._on_closed is not None:
                self._on_closed(peer)
            for pending in (up, down):
                pending.cancel()
            for pending in (up, down):
                # Their outcome was read above; what is left is the noise of cancelling them.
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await pending
