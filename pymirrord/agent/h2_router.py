"""HTTP/2 with prior knowledge (h2c) on a filtered port, stream by stream (sans-I/O: no sockets, no asyncio).

One ``H2Router`` serves one client connection. It speaks HTTP/2 to the client (as a server) and to the pod's
app over one h2c connection of its own (as a client), both through the ``h2`` library. Each stream's request
headers (``:method``, ``:path``, the regular headers, and ``host`` from ``:authority`` when the client sent
no ``host``) are matched on their own, as soon as they arrive:

- no stealing session matches: the stream is opened on the pod connection and both directions are relayed
  frame by frame, within each side's flow-control windows (client data is acknowledged only once the pod's
  window took it, so a slow pod slows the client down, not the agent's memory);
- a session matches: its local app gets the stream as an HTTP/1.1 request (most local servers speak only
  HTTP/1.1; the session's side is the one used for HTTP/1 traffic, unchanged), written and read with ``h11``.
  The response's status, headers, body and trailers go back on the client's stream.

Independently of who serves it, a stream that mirroring sessions asked for is also copied to them: the same
HTTP/1.1 request, as ``Mirror*`` events, its body as it arrives from the client. A copy takes nothing from
either side's flow control and is never waited for, so it cannot slow or change what the client or the pod
sees; a request that will not complete (a reset, a lost connection) ends its copy with ``MirrorAbort``.

The shell feeds bytes and session answers in, and takes out bytes for the client and the pod and the
``Stolen*`` and ``Mirror*`` events for sessions (the shell fans copies out to each mirroring session).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions
import h2.settings
import h11

from pymirrord.http_filter import RequestHead as FilterRequest

Headers = list[tuple[bytes, bytes]]

_HOP_BY_HOP = frozenset(
    (b"connection", b"keep-alive", b"proxy-connection", b"transfer-encoding", b"upgrade", b"te")
)
REPLAY_LIMIT = 1024 * 1024
"""Request body bytes kept per stolen stream until its response starts, to send it to the pod instead."""


@dataclass(frozen=True)
class StolenStart:
    """Stream ``stream_id`` goes to a session: ``head`` is its HTTP/1.1 request head."""

    stream_id: int
    head: bytes


@dataclass(frozen=True)
class StolenBody:
    stream_id: int
    data: bytes


@dataclass(frozen=True)
class StolenEnd:
    stream_id: int


@dataclass(frozen=True)
class StolenAbort:
    """The client reset the stream (or the connection ended): the session drops the request."""

    stream_id: int


StolenEvent = StolenStart | StolenBody | StolenEnd | StolenAbort


@dataclass(frozen=True)
class MirrorStart:
    """Mirroring sessions get a copy of stream ``stream_id``: ``head`` is its HTTP/1.1 request head."""

    stream_id: int
    head: bytes


@dataclass(frozen=True)
class MirrorBody:
    """Framed HTTP/1.1 body bytes of a copy (chunked unless the client gave a ``content-length``)."""

    stream_id: int
    data: bytes


@dataclass(frozen=True)
class MirrorEnd:
    stream_id: int


@dataclass(frozen=True)
class MirrorAbort:
    """The request will not complete (a reset on either side, a connection lost): drop the copy. Without a
    ``MirrorStart`` before it: HTTP/1.1 cannot express the request, so there is no copy at all."""

    stream_id: int


MirrorEvent = MirrorStart | MirrorBody | MirrorEnd | MirrorAbort
SessionEvent = StolenEvent | MirrorEvent


@dataclass(frozen=True)
class StreamRoute:
    """What the shell decided for a stream's headers: a stealing session serves it (``steal``; otherwise the
    pod's app does), and whether mirroring sessions get a copy (``mirror``)."""

    steal: bool = False
    mirror: bool = False


Decide = Callable[[int, FilterRequest], StreamRoute]
"""Where the stream with these headers goes (the shell routes; the core only asks)."""


@dataclass
class _Outbound:
    """Bytes waiting for a stream's flow-control window on one side."""

    data: bytearray = field(default_factory=bytearray)
    end: bool = False
    trailers: Headers | None = None
    ack_to: int | None = None  # the client stream whose received data this frees, once sent


@dataclass
class _Stolen:
    """The agent's view of a stream a session serves."""

    request: Http1Request
    headers: Headers
    kept: bytearray | None = field(default_factory=bytearray)
    request_ended: bool = False
    responded: bool = False
    finished: bool = False


def _split(headers: Headers) -> tuple[dict[bytes, bytes], Headers]:
    pseudo: dict[bytes, bytes] = {}
    regular: Headers = []
    for name, value in headers:
        if name.startswith(b":"):
            pseudo[name] = value
        else:
            regular.append((name, value))
    return pseudo, regular


def filter_view(headers: Headers) -> FilterRequest:
    """What HTTP filters see of an h2 request: like an HTTP/1.1 request to the same server."""
    pseudo, regular = _split(headers)
    if not any(name == b"host" for name, _ in regular) and b":authority" in pseudo:
        regular = [(b"host", pseudo[b":authority"]), *regular]
    return FilterRequest(
        pseudo.get(b":method", b"").decode("latin-1"),
        pseudo.get(b":path", b"/").decode("latin-1"),
        tuple(regular),
    )


@dataclass
class Http1Request:
    """An h2 request as an HTTP/1.1 request: its head, and the ``h11`` connection that frames its body (and,
    for a stolen stream, reads the local app's response)."""

    connection: h11.Connection
    head: bytes
    chunked: bool

    def body(self, data: bytes) -> bytes:
        return self.connection.send(h11.Data(data=data)) or b""

    def end(self, trailers: Headers | None) -> bytes:
        # Only chunked framing carries trailers; next to a content-length they are dropped.
        return self.connection.send(h11.EndOfMessage(headers=trailers if self.chunked else None)) or b""


def to_http1(headers: Headers) -> Http1Request | None:
    """Convert an h2 request's headers; None when HTTP/1.1 cannot express them (h2 lets bytes into ``:path``
    and ``:method`` that an HTTP/1.1 request line may not hold, a space for one)."""
    pseudo, regular = _split(headers)
    request_headers: Headers = []
    if not any(name == b"host" for name, _ in regular):
        request_headers.append((b"host", pseudo.get(b":authority", b"localhost")))
    # HTTP/2 may split cookies over several fields; HTTP/1.1 servers expect one.
    cookies = [value for name, value in regular if name == b"cookie"]
    request_headers += [(n, v) for n, v in regular if n not in _HOP_BY_HOP and n != b"cookie"]
    if cookies:
        request_headers.append((b"cookie", b"; ".join(cookies)))
    chunked = not any(name == b"content-length" for name, _ in regular)
    if chunked:
        # The body's length is unknown until END_STREAM: chunked says so in HTTP/1.1. A request that
        # turns out to have no body still ends cleanly (a zero chunk).
        request_headers.append((b"transfer-encoding", b"chunked"))
    connection = h11.Connection(h11.CLIENT)
    try:
        head = connection.send(
            h11.Request(
                method=pseudo.get(b":method", b"GET"),
                target=pseudo.get(b":path", b"/"),
                headers=request_headers,
            )
        )
    except h11.LocalProtocolError:
        return None
    return Http1Request(connection, head or b"", chunked)


class H2Router:
    """One client's h2c connection, split between the pod's app and stealing sessions, and copied stream by
    stream for mirroring sessions."""

    def __init__(self, decide: Decide) -> None:
        self._decide = decide
        self.client = h2.connection.H2Connection(
            h2.config.H2Configuration(client_side=False, header_encoding=None)
        )
        self.pod = h2.connection.H2Connection(
            h2.config.H2Configuration(client_side=True, header_encoding=None)
        )
        self.client.initiate_connection()
        self.pod.local_settings.update({h2.settings.SettingCodes.ENABLE_PUSH: 0})
        self.pod.initiate_connection()
        self._to_pod: dict[int, int] = {}  # client stream -> pod stream
        self._from_pod: dict[int, int] = {}  # pod stream -> client stream
        self._stolen: dict[int, _Stolen] = {}
        self._copies: dict[int, Http1Request] = {}  # client stream -> its copy's framing
        self._out_client: dict[int, _Outbound] = {}
        self._out_pod: dict[int, _Outbound] = {}
        self.events: list[SessionEvent] = []
        """For sessions, in order; the shell empties it."""
        self.closed = False
        """The client's connection is over (GOAWAY either way, or a protocol error)."""

    # --- bytes in and out -----------------------------------------------------------------------------------

    def client_bytes(self) -> bytes:
        return self.client.data_to_send()

    def pod_bytes(self) -> bytes:
        return self.pod.data_to_send()

    def receive_client(self, data: bytes) -> None:
        try:
            events = self.client.receive_data(data)
        except h2.exceptions.ProtocolError:
            self._end_all()
            return
        for event in events:
            self._client_event(event)

    def receive_pod(self, data: bytes) -> None:
        try:
            events = self.pod.receive_data(data)
        except h2.exceptions.ProtocolError:
            self.pod_lost()
            return
        for event in events:
            self._pod_event(event)

    def pod_lost(self) -> None:
        """The pod's connection ended: its streams are reset for the client."""
        for client_stream in list(self._to_pod):
            self._reset_client(client_stream, h2.errors.ErrorCodes.REFUSED_STREAM)
        self._to_pod.clear()
        self._from_pod.clear()
        self._out_pod.clear()

    def client_gone(self) -> None:
        self._end_all()

    # --- the client's side ----------------------------------------------------------------------------------

    def _client_event(self, event: h2.events.Event) -> None:
        if isinstance(event, h2.events.RequestReceived) and event.stream_id is not None:
            headers = list(event.headers or [])
            route = self._decide(event.stream_id, filter_view(headers))
            if route.mirror:
                self._mirror(event.stream_id, headers)
            if not (route.steal and self._steal(event.stream_id, headers)):
                self._open_on_pod(event.stream_id, headers)
        elif isinstance(event, h2.events.DataReceived) and event.stream_id is not None:
            stream, data = event.stream_id, event.data or b""
            padding = (event.flow_controlled_length or 0) - len(data)
            if stream in self._copies:
                # Before the data waits for any window: a copy sees the client's bytes as they arrive.
                self._copy_body(stream, data)
            stolen = self._stolen.get(stream)
            if stolen is not None:
                self.client.acknowledge_received_data(event.flow_controlled_length or 0, stream)
                self._stolen_body(stream, stolen, data)
            elif stream in self._to_pod:
                if padding:
                    self.client.acknowledge_received_data(padding, stream)
                self._send_pod(self._to_pod[stream], data, ack_to=stream)
            else:
                self.client.acknowledge_received_data(event.flow_controlled_length or 0, stream)
        elif isinstance(event, h2.events.TrailersReceived) and event.stream_id is not None:
            stream = event.stream_id
            trailers = list(event.headers or [])
            self._copy_end(stream, trailers)
            stolen = self._stolen.get(stream)
            if stolen is not None:
                self._stolen_end(stream, stolen, trailers)
            elif stream in self._to_pod:
                self._send_pod(self._to_pod[stream], b"", end=True, trailers=trailers)
        elif isinstance(event, h2.events.StreamEnded) and event.stream_id is not None:
            stream = event.stream_id
            self._copy_end(stream, None)  # after trailers, the copy has ended already
            stolen = self._stolen.get(stream)
            if stolen is not None:
                if not stolen.request_ended:
                    self._stolen_end(stream, stolen, None)
            elif stream in self._to_pod:
                outbound = self._out_pod.setdefault(self._to_pod[stream], _Outbound())
                if outbound.trailers is None:
                    self._send_pod(self._to_pod[stream], b"", end=True)
        elif isinstance(event, h2.events.StreamReset) and event.stream_id is not None:
            self._client_reset(event.stream_id)
        elif isinstance(event, h2.events.WindowUpdated):
            self._flush_side(self.client, self._out_client, event.stream_id)
        elif isinstance(event, h2.events.ConnectionTerminated):
            self._end_all()

    def _client_reset(self, stream: int) -> None:
        self._out_client.pop(stream, None)
        self._copy_abort(stream)
        if self._stolen.pop(stream, None) is not None:
            self.events.append(StolenAbort(stream))
        pod_stream = self._to_pod.pop(stream, None)
        if pod_stream is not None:
            self._from_pod.pop(pod_stream, None)
            self._out_pod.pop(pod_stream, None)
            self._reset(self.pod, pod_stream, h2.errors.ErrorCodes.CANCEL)

    def _end_all(self) -> None:
        self.closed = True
        for stream in list(self._copies):
            self._copy_abort(stream)
        for stream in list(self._stolen):
            self.events.append(StolenAbort(stream))
        self._stolen.clear()
        for pod_stream in list(self._from_pod):
            self._reset(self.pod, pod_stream, h2.errors.ErrorCodes.CANCEL)
        self._to_pod.clear()
        self._from_pod.clear()

    # --- the pod's side -------------------------------------------------------------------------------------

    def _open_on_pod(self, stream: int, headers: Headers, end: bool = False) -> None:
        pod_stream = self.pod.get_next_available_stream_id()
        self._to_pod[stream] = pod_stream
        self._from_pod[pod_stream] = stream
        self.pod.send_headers(pod_stream, headers, end_stream=end)

    def _pod_event(self, event: h2.events.Event) -> None:
        stream = getattr(event, "stream_id", None)
        client_stream = self._from_pod.get(stream) if stream else None
        if isinstance(event, h2.events.ResponseReceived | h2.events.InformationalResponseReceived):
            if client_stream is not None:
                self.client.send_headers(client_stream, list(event.headers or []))
        elif isinstance(event, h2.events.DataReceived) and stream is not None:
            data = event.data or b""
            padding = (event.flow_controlled_length or 0) - len(data)
            if padding:
                self.pod.acknowledge_received_data(padding, stream)
            if client_stream is None:
                self.pod.acknowledge_received_data(len(data), stream)
            else:
                self._send_client(client_stream, data, ack_pod=stream)
        elif isinstance(event, h2.events.TrailersReceived) and client_stream is not None:
            self._send_client(client_stream, b"", end=True, trailers=list(event.headers or []))
        elif isinstance(event, h2.events.StreamEnded) and client_stream is not None:
            outbound = self._out_client.get(client_stream)
            if outbound is None or outbound.trailers is None:
                self._send_client(client_stream, b"", end=True)
        elif isinstance(event, h2.events.StreamReset) and stream is not None:
            self._from_pod.pop(stream, None)
            self._out_pod.pop(stream, None)
            if client_stream is not None:
                self._to_pod.pop(client_stream, None)
                self._reset_client(client_stream, h2.errors.ErrorCodes(event.error_code or 0))
        elif isinstance(event, h2.events.WindowUpdated):
            self._flush_side(self.pod, self._out_pod, event.stream_id)
        elif isinstance(event, h2.events.ConnectionTerminated):
            self.pod_lost()

    # --- sessions -------------------------------------------------------------------------------------------

    def _steal(self, stream: int, headers: Headers) -> bool:
        """Hand the stream to its session; False if HTTP/1.1 cannot carry it (the pod serves it then)."""
        request = to_http1(headers)
        if request is None:
            return False
        self._stolen[stream] = _Stolen(request, headers)
        self.events.append(StolenStart(stream, request.head))
        return True

    def _stolen_body(self, stream: int, stolen: _Stolen, data: bytes) -> None:
        if not data:
            return
        if stolen.kept is not None:
            stolen.kept += data
            if len(stolen.kept) > REPLAY_LIMIT:
                stolen.kept = None
        framed = stolen.request.body(data)
        if framed:
            self.events.append(StolenBody(stream, framed))

    def _stolen_end(self, stream: int, stolen: _Stolen, trailers: Headers | None) -> None:
        stolen.request_ended = True
        framed = stolen.request.end(trailers)
        if framed:
            self.events.append(StolenBody(stream, framed))
        self.events.append(StolenEnd(stream))

    # --- copies for mirroring sessions ---------------------------------------------------------------------

    def _mirror(self, stream: int, headers: Headers) -> None:
        request = to_http1(headers)
        if request is None:
            # No copy (mirroring never changes how the stream itself is served); the shell forgets it.
            self.events.append(MirrorAbort(stream))
            return
        self._copies[stream] = request
        self.events.append(MirrorStart(stream, request.head))

    def _copy_body(self, stream: int, data: bytes) -> None:
        if not data:
            return
        try:
            framed = self._copies[stream].body(data)
        except h11.LocalProtocolError:
            self._copy_abort(stream)  # more body than its content-length: h2 resets the stream anyway
            return
        if framed:
            self.events.append(MirrorBody(stream, framed))

    def _copy_end(self, stream: int, trailers: Headers | None) -> None:
        request = self._copies.pop(stream, None)
        if request is None:
            return
        try:
            framed = request.end(trailers)
        except h11.LocalProtocolError:
            self.events.append(MirrorAbort(stream))  # less body than its content-length
            return
        if framed:
            self.events.append(MirrorBody(stream, framed))
        self.events.append(MirrorEnd(stream))

    def _copy_abort(self, stream: int) -> None:
        if self._copies.pop(stream, None) is not None:
            self.events.append(MirrorAbort(stream))

    def drop_copy(self, stream: int) -> None:
        """No session wants the stream's copy any more (they all lag behind): stop making it."""
        self._copies.pop(stream, None)

    # --- answers from sessions ------------------------------------------------------------------------------

    def response_data(self, stream: int, data: bytes) -> None:
        """Bytes of the local app's HTTP/1.1 response for ``stream``."""
        stolen = self._stolen.get(stream)
        if stolen is None:
            return
        stolen.responded = True
        stolen.kept = None
        try:
            stolen.request.connection.receive_data(data)
            self._pump_response(stream, stolen)
        except h11.RemoteProtocolError:
            self._fail_stolen(stream)

    def response_end(self, stream: int, failure: str | None) -> bool:
        """The session finished the response (``failure``: it could not). True if the stream should go to
        the pod instead: nothing was answered and the whole request is still here (the shell then calls
        ``reroute``)."""
        stolen = self._stolen.get(stream)
        if stolen is None:
            return False
        if failure is not None and not stolen.responded and stolen.kept is not None and stolen.request_ended:
            return True
        if failure is None and not stolen.finished:
            try:
                stolen.request.connection.receive_data(b"")  # the end of a close-delimited body
                self._pump_response(stream, stolen)
            except h11.RemoteProtocolError:
                pass
        if not stolen.finished:
            self._fail_stolen(stream)
        return False

    def reroute(self, stream: int) -> None:
        """Send a stolen stream whose session failed before answering to the pod's app instead."""
        stolen = self._stolen.pop(stream)
        kept = bytes(stolen.kept or b"")
        self._open_on_pod(stream, stolen.headers, end=not kept)
        if kept:
            self._send_pod(self._to_pod[stream], kept, end=True)

    def _pump_response(self, stream: int, stolen: _Stolen) -> None:
        while True:
            event = stolen.request.connection.next_event()
            if event is h11.NEED_DATA or event is h11.PAUSED:
                return
            if isinstance(event, h11.Response):
                headers: Headers = [(b":status", str(event.status_code).encode())]
                headers += [(n, v) for n, v in event.headers if n not in _HOP_BY_HOP]
                self.client.send_headers(stream, headers)
            elif isinstance(event, h11.Data):
                self._send_client(stream, bytes(event.data), ack_pod=None)
            elif isinstance(event, h11.EndOfMessage):
                trailers = [(n, v) for n, v in event.headers] or None
                self._send_client(stream, b"", end=True, trailers=trailers)
                stolen.finished = True
                self._stolen.pop(stream, None)
                return
            elif isinstance(event, h11.ConnectionClosed):
                self._fail_stolen(stream)
                return
            # InformationalResponse (100 Continue): HTTP/2 clients need not wait for it; dropped.

    def _fail_stolen(self, stream: int) -> None:
        if self._stolen.pop(stream, None) is not None:
            self._out_client.pop(stream, None)
            self._reset_client(stream, h2.errors.ErrorCodes.INTERNAL_ERROR)

    def is_stolen(self, stream: int) -> bool:
        """A session still serves the stream."""
        return stream in self._stolen

    # --- flow control ---------------------------------------------------------------------------------------

    def _send_client(
        self,
        stream: int,
        data: bytes,
        *,
        ack_pod: int | None = None,
        end: bool = False,
        trailers: Headers | None = None,
    ) -> None:
        outbound = self._out_client.setdefault(stream, _Outbound())
        outbound.data += data
        outbound.end = outbound.end or end
        outbound.trailers = trailers if trailers is not None else outbound.trailers
        outbound.ack_to = ack_pod
        self._flush(self.client, self._out_client, stream, self.pod)

    def _send_pod(
        self,
        stream: int,
        data: bytes,
        *,
        ack_to: int | None = None,
        end: bool = False,
        trailers: Headers | None = None,
    ) -> None:
        outbound = self._out_pod.setdefault(stream, _Outbound())
        outbound.data += data
        outbound.end = outbound.end or end
        outbound.trailers = trailers if trailers is not None else outbound.trailers
        if ack_to is not None:
            outbound.ack_to = ack_to
        self._flush(self.pod, self._out_pod, stream, self.client)

    def pending_to_client(self) -> int:
        """Bytes held for the client by its flow control (the shell pauses sessions when it grows)."""
        return sum(len(outbound.data) for outbound in self._out_client.values())

    def _flush_side(
        self, connection: h2.connection.H2Connection, queue: dict[int, _Outbound], stream: int | None
    ) -> None:
        other = self.pod if connection is self.client else self.client
        streams = list(queue) if not stream else [stream]
        for item in streams:
            if item in queue:
                self._flush(connection, queue, item, other)

    def _flush(
        self,
        connection: h2.connection.H2Connection,
        queue: dict[int, _Outbound],
        stream: int,
        other: h2.connection.H2Connection,
    ) -> None:
        outbound = queue[stream]
        try:
            while outbound.data:
                size = min(
                    len(outbound.data),
                    connection.local_flow_control_window(stream),
                    connection.max_outbound_frame_size,
                )
                if size <= 0:
                    return
                chunk = bytes(outbound.data[:size])
                del outbound.data[:size]
                connection.send_data(stream, chunk)
                if outbound.ack_to is not None:
                    # The other side's window reopens only as its data leaves here.
                    other.acknowledge_received_data(size, outbound.ack_to)
            if outbound.trailers is not None:
                connection.send_headers(stream, outbound.trailers, end_stream=True)
                del queue[stream]
            elif outbound.end:
                connection.end_stream(stream)
                del queue[stream]
        except (h2.exceptions.StreamClosedError, h2.exceptions.ProtocolError, KeyError):
            queue.pop(stream, None)

    def _reset_client(self, stream: int, code: h2.errors.ErrorCodes) -> None:
        # The client's request stops here, whatever part of it was still to come: so does its copy.
        self._copy_abort(stream)
        self._out_client.pop(stream, None)
        self._reset(self.client, stream, code)

    @staticmethod
    def _reset(connection: h2.connection.H2Connection, stream: int, code: h2.errors.ErrorCodes) -> None:
        with contextlib.suppress(h2.exceptions.StreamClosedError, h2.exceptions.ProtocolError, KeyError):
            connection.reset_stream(stream, code)
