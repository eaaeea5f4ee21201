"""Requests that reached the pod as HTTP/2 streams, sent on to a local app that speaks h2c (sans-I/O).

The agent hands the session every stolen or mirrored request in HTTP/1.1 form: ``HttpRequestStart.head``
and the raw body bytes, HTTP/2 streams included (``HttpRequestStart.http2`` says which). A request that came
as an HTTP/2 stream most likely has an HTTP/2 server behind it locally too (a gRPC server speaks nothing
else), so the session sends such requests to the app over one h2c connection (prior knowledge), a stream
each. ``H2AppClient`` translates for one such connection:

- the HTTP/1.1 request, read with ``h11``, becomes HTTP/2 headers, data (within the app's flow-control
  windows) and trailers; ``te: trailers`` is added, as gRPC servers require it;
- the app's HTTP/2 response becomes HTTP/1.1 bytes, written with ``h11`` (chunked unless the app gave a
  ``content-length``, trailers kept), which travel to the agent like any local app's answer.

An app that does not answer the connection preface with HTTP/2 gets ``NotHttp2``: the shell then sends the
connection's requests over HTTP/1.1 instead.
"""

from __future__ import annotations

import collections
import contextlib
from dataclasses import dataclass, field

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions
import h11

Headers = list[tuple[bytes, bytes]]

_FRAME_HEADER = 9
_SETTINGS = 4
_NOT_FORWARDED = frozenset(
    (b"connection", b"keep-alive", b"proxy-connection", b"transfer-encoding", b"upgrade", b"host", b"te")
)


@dataclass(frozen=True)
class ResponseBytes:
    """HTTP/1.1 bytes of request ``request_id``'s response, in order."""

    request_id: int
    data: bytes


@dataclass(frozen=True)
class ResponseEnd:
    request_id: int


@dataclass(frozen=True)
class ResponseFailed:
    """The request failed (the agent sends it to the pod if none of its response went out yet)."""

    request_id: int
    reason: str


@dataclass(frozen=True)
class NotHttp2:
    """The app does not speak HTTP/2 on this connection; no request on it got a response byte."""

    reason: str


Event = ResponseBytes | ResponseEnd | ResponseFailed | NotHttp2


@dataclass(eq=False)  # compared by identity: two requests are never the same one
class _Stream:
    request_id: int
    request: h11.Connection = field(default_factory=lambda: h11.Connection(h11.SERVER))
    stream_id: int | None = None
    headers: Headers | None = None  # the request's HTTP/2 headers while it waits for a free stream
    pending: bytearray = field(default_factory=bytearray)  # request data the app's window has no room for
    trailers: Headers | None = None
    request_done: bool = False  # h11 saw the request's end
    sent_end: bool = False
    response_trailers: Headers = field(default_factory=list)
    length_delimited: bool = False


class H2AppClient:
    """One h2c connection to a local app: requests in (HTTP/1.1 bytes), responses out (HTTP/1.1 bytes)."""

    def __init__(self) -> None:
        config = h2.config.H2Configuration(client_side=True, header_encoding=None)
        self._h2 = h2.connection.H2Connection(config)
        self._h2.initiate_connection()
        self._requests: dict[int, _Stream] = {}
        self._streams: dict[int, _Stream] = {}
        self._answered = False  # the app spoke HTTP/2 at least once
        self._first = b""  # the app's first bytes, until they show a frame header
        self._events: list[Event] = []
        self._waiting: collections.deque[_Stream] = collections.deque()  # for the app's stream limit
        self.closed = False

    @property
    def active(self) -> int:
        return len(self._requests)

    def data_to_send(self) -> bytes:
        return self._h2.data_to_send()

    # --- requests ------------------------------------------------------------------------------------------

    def start(self, request_id: int, head: bytes) -> list[Event]:
        """A new request: its HTTP/1.1 head (its body follows through ``body``)."""
        self._requests[request_id] = _Stream(request_id)
        return self.body(request_id, head)

    def body(self, request_id: int, data: bytes) -> list[Event]:
        """More of the request's raw HTTP/1.1 bytes, framing included."""
        stream = self._requests.get(request_id)
        if stream is None or self.closed:
            return self._take_events()
        try:
            stream.request.receive_data(data)
            self._read_request(stream)
        except (h11.ProtocolError, h2.exceptions.ProtocolError) as error:
            self._fail(stream, f"the request cannot be sent over HTTP/2: {error}")
        return self._take_events()

    def cancel(self, request_id: int) -> None:
        """The agent dropped the request: its stream is reset."""
        stream = self._requests.pop(request_id, None)
        if stream is not None and stream in self._waiting:
            self._waiting.remove(stream)
        if stream is not None and stream.stream_id is not None:
            self._streams.pop(stream.stream_id, None)
            if not self.closed:
                with contextlib.suppress(h2.exceptions.ProtocolError):  # the stream had ended already
                    self._h2.reset_stream(stream.stream_id, h2.errors.ErrorCodes.CANCEL)

    def _read_request(self, stream: _Stream) -> None:
        while True:
            event = stream.request.next_event()
            if event is h11.NEED_DATA or event is h11.PAUSED:
                return
            if isinstance(event, h11.Request):
                self._open(stream, event)
            elif isinstance(event, h11.Data):
                stream.pending += event.data
                self._flush(stream)
            elif isinstance(event, h11.EndOfMessage):
                stream.request_done = True
                stream.trailers = list(event.headers) or None
                self._flush(stream)
                return

    def _open(self, stream: _Stream, request: h11.Request) -> None:
        fields = dict(request.headers)
        authority = fields.get(b"host", b"localhost")
        headers: Headers = [
            (b":method", request.method),
            (b":scheme", b"http"),
            (b":authority", authority),
            (b":path", request.target),
        ]
        headers += [(name, value) for name, value in request.headers if name not in _NOT_FORWARDED]
        headers.append((b"te", b"trailers"))
        stream.headers = headers
        self._waiting.append(stream)
        self._open_waiting()

    def _open_waiting(self) -> None:
        """Open the streams of waiting requests, as many as the app allows at once (the others wait for
        one of the open ones to end, rather than fail)."""
        limit = self._h2.remote_settings.max_concurrent_streams
        while self._waiting and not self.closed and self._h2.open_outbound_streams < limit:
            stream = self._waiting.popleft()
            assert stream.headers is not None
            stream_id = self._h2.get_next_available_stream_id()
            stream.stream_id = stream_id
            self._streams[stream_id] = stream
            self._h2.send_headers(stream_id, stream.headers)
            stream.headers = None
            self._flush(stream)

    def _flush(self, stream: _Stream) -> None:
        """Send what the windows allow of the request's data, then its end once all of it is out."""
        stream_id = stream.stream_id
        if stream_id is None or stream.sent_end or self.closed:
            return
        while stream.pending:
            room = min(
                self._h2.local_flow_control_window(stream_id),
                self._h2.max_outbound_frame_size,
                len(stream.pending),
            )
            if room <= 0:
                return
            self._h2.send_data(stream_id, bytes(stream.pending[:room]))
            del stream.pending[:room]
        if stream.request_done:
            stream.sent_end = True
            if stream.trailers:
                self._h2.send_headers(stream_id, stream.trailers, end_stream=True)
            else:
                self._h2.end_stream(stream_id)

    # --- the app's side ------------------------------------------------------------------------------------

    def receive(self, data: bytes) -> list[Event]:
        """Bytes from the app."""
        if self.closed:
            return []
        if not self._answered:
            # An HTTP/2 server's first frame is SETTINGS (type 4); anything else is not HTTP/2 (an HTTP/1.1
            # server answers the preface with an error response, which h2 would wait on as a huge frame).
            self._first += data
            if len(self._first) < _FRAME_HEADER:
                return []
            if self._first[3] != _SETTINGS:
                return self._broken(f"the app answered {self._first[:40]!r}, not HTTP/2")
            data, self._first = self._first, b""
        try:
            h2_events = self._h2.receive_data(data)
        except h2.exceptions.ProtocolError as error:
            return self._broken(f"the app's HTTP/2 is broken: {error}")
        self._answered = True
        for event in h2_events:
            self._on_event(event)
        return self._take_events()

    def connection_lost(self) -> list[Event]:
        """The app closed the connection (or it failed): every open request fails."""
        return self._broken("the app closed its HTTP/2 connection")

    def _broken(self, reason: str) -> list[Event]:
        self.closed = True
        if not self._answered:
            self._requests.clear()
            self._streams.clear()
            return [NotHttp2(reason)]
        for stream in list(self._requests.values()):
            self._fail(stream, reason)
        return self._take_events()

    def _on_event(self, event: h2.events.Event) -> None:
        if isinstance(event, (h2.events.WindowUpdated, h2.events.RemoteSettingsChanged)):
            for stream in list(self._streams.values()):
                self._flush(stream)
            self._open_waiting()
            return
        if isinstance(event, h2.events.ConnectionTerminated):
            self.closed = True
            for stream in list(self._requests.values()):
                self._fail(stream, f"the app ended its HTTP/2 connection ({event.error_code!r})")
            return
        stream_id: int | None = getattr(event, "stream_id", None)
        found = self._streams.get(stream_id) if stream_id is not None else None
        if found is None or stream_id is None:
            return
        stream = found
        if isinstance(event, h2.events.ResponseReceived):
            self._response_head(stream, event.headers or [])
        elif isinstance(event, h2.events.InformationalResponseReceived):
            pass  # 100 Continue and the like: over HTTP/2 nothing waits for them
        elif isinstance(event, h2.events.DataReceived):
            self._h2.acknowledge_received_data(event.flow_controlled_length, stream_id)
            if event.data:
                self._send11(stream, h11.Data(data=event.data))
        elif isinstance(event, h2.events.TrailersReceived):
            stream.response_trailers = list(event.headers or [])
        elif isinstance(event, h2.events.StreamEnded):
            trailers = [] if stream.length_delimited else stream.response_trailers
            if self._send11(stream, h11.EndOfMessage(headers=trailers)):
                self._events.append(ResponseEnd(stream.request_id))
                self._forget(stream)
        elif isinstance(event, h2.events.StreamReset):
            self._fail(stream, f"the app reset the stream ({event.error_code!r})")

    def _response_head(self, stream: _Stream, headers: Headers) -> None:
        status = next((value for name, value in headers if name == b":status"), b"")
        regular = [(name, value) for name, value in headers if not name.startswith(b":")]
        regular = [(name, value) for name, value in regular if name not in _NOT_FORWARDED]
        stream.length_delimited = any(name == b"content-length" for name, _ in regular)
        try:
            response = h11.Response(status_code=int(status), headers=regular)
        except (ValueError, h11.ProtocolError) as error:
            self._fail(stream, f"the app's response cannot be told in HTTP/1.1: {error}")
            return
        self._send11(stream, response)

    def _send11(self, stream: _Stream, event: h11.Response | h11.Data | h11.EndOfMessage) -> bool:
        """Write ``event`` of the response in HTTP/1.1; False (the request failed) if it cannot be."""
        try:
            data = stream.request.send(event)
        except h11.ProtocolError as error:
            self._fail(stream, f"the app's response cannot be told in HTTP/1.1: {error}")
            return False
        if data:
            self._events.append(ResponseBytes(stream.request_id, data))
        return True

    def _fail(self, stream: _Stream, reason: str) -> None:
        self._events.append(ResponseFailed(stream.request_id, reason))
        self._forget(stream)
        if stream.stream_id is not None and not self.closed:
            with contextlib.suppress(h2.exceptions.ProtocolError):  # the stream had ended already
                self._h2.reset_stream(stream.stream_id, h2.errors.ErrorCodes.CANCEL)

    def _forget(self, stream: _Stream) -> None:
        self._requests.pop(stream.request_id, None)
        if stream in self._waiting:
            self._waiting.remove(stream)
        if stream.stream_id is not None:
            self._streams.pop(stream.stream_id, None)
        self._open_waiting()

    def _take_events(self) -> list[Event]:
        events, self._events = self._events, []
        return events
