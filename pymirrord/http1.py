"""HTTP/1.x message framing, sans-I/O: where each request and response starts and ends in a byte stream.

Used by the agent (client requests, the pod's responses, the local app's responses relayed by a session) and
by the session (the local app's responses). It never rewrites anything: every byte fed in comes out again,
unchanged and in order, inside exactly one event (``RequestHead``/``ResponseHead`` carry their raw head,
``Body`` its raw bytes, chunk-size lines and trailers included). So a request that reaches the pod or the
local app is the very bytes the client sent, and trailers are kept without being understood.

Readers are pull-based, like h11: ``feed`` bytes (``feed_eof`` at the end), then call ``next_event`` until it
returns ``NEED_DATA``. Bytes after a message's ``End`` stay buffered until asked for, so pipelined requests
wait their turn, and after an upgrade ``take_buffered`` hands the rest to a tunnel.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

from pymirrord.errors import PymirrordError

MAX_HEAD = 64 * 1024
"""The largest request or response head accepted (request line and headers)."""
MAX_CHUNK_LINE = 4096
"""The longest chunk-size line (with extensions) or trailer line accepted."""

_TOKEN_MATCH = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+").fullmatch
_FRAMING_HEADERS = frozenset((b"transfer-encoding", b"content-length", b"connection", b"upgrade"))
"""The headers the readers act on; the parse collects them on the way (names lowered, values joined)."""
H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


class FramingError(PymirrordError):
    """The bytes are not HTTP/1.x the reader can frame (bad request line, oversized head, bad chunk)."""


# The events are not frozen dataclasses only because building a frozen one costs twice as much, and the
# agent builds three per message it relays; nothing changes an event once made (one ``End`` is shared).


@dataclass(slots=True)
class RequestHead:
    method: str
    target: str
    version: str
    headers: tuple[tuple[bytes, bytes], ...]
    raw: bytes
    keep_alive: bool = True
    """The connection may carry another request after this one."""
    upgrade: bool = False
    """Asks to switch protocols (a websocket, h2c) or CONNECTs: after a 101 the connection is a tunnel."""

    def header(self, name: bytes) -> bytes | None:
        return _header(self.headers, name)


@dataclass(slots=True)
class ResponseHead:
    version: str
    status: int
    headers: tuple[tuple[bytes, bytes], ...]
    raw: bytes
    keep_alive: bool = True

    @property
    def interim(self) -> bool:
        """A 1xx other than 101: the real response follows (``100 Continue``)."""
        return 100 <= self.status < 200 and self.status != 101


@dataclass(slots=True)
class Body:
    raw: bytes


@dataclass(slots=True)
class End:
    """The message is complete; ``raw`` holds its last framing bytes (chunked end, trailers), if any."""

    raw: bytes = b""


_END = End()
"""The ``End`` of a message with no framing bytes of its own (most of them): one shared event."""


class _Need(enum.Enum):
    NEED_DATA = "need-data"


NEED_DATA = _Need.NEED_DATA
Event = RequestHead | ResponseHead | Body | End


def _header(headers: tuple[tuple[bytes, bytes], ...], name: bytes) -> bytes | None:
    values = [value for key, value in headers if key.lower() == name]
    return b", ".join(values) if values else None


def _token(name: bytes) -> bool:
    """Whether ``name`` is an HTTP token (a method or a header name)."""
    if name in _TOKENS_SEEN:
        return True
    if _TOKEN_MATCH(name) is None:
        return False
    if len(_TOKENS_SEEN) < _TOKENS_SEEN_MAX and len(name) <= _TOKEN_SEEN_LENGTH:
        _TOKENS_SEEN.add(name)
    return True


_TOKENS_SEEN: set[bytes] = set()
"""Methods and header names already checked: a connection repeats the same few on every message, and a set
lookup costs a fraction of the regex."""
_TOKENS_SEEN_MAX = 4096
_TOKEN_SEEN_LENGTH = 64
"""Longer names are checked every time: remembering thousands of them could hold megabytes."""


def _tokens(value: bytes | None) -> set[bytes]:
    if value is None:
        return set()
    return {item.strip().lower() for item in value.split(b",")}


def _keep_alive(version: str, connection: bytes | None) -> bool:
    if connection is None:
        return version != "HTTP/1.0"
    tokens = _tokens(connection)
    if version == "HTTP/1.0":
        return b"keep-alive" in tokens
    return b"close" not in tokens


Known = dict[bytes, bytes]


def _parse_headers(lines: list[bytes]) -> tuple[tuple[tuple[bytes, bytes], ...], Known]:
    """The header lines as (name, value) pairs, and the framing headers among them by lowered name."""
    headers: list[tuple[bytes, bytes]] = []
    known: Known = {}
    for line in lines:
        name, colon, value = line.partition(b":")
        if not colon or not _token(name):
            raise FramingError(f"malformed header line {line[:80]!r}")
        value = value.strip(b" \t")
        headers.append((name, value))
        lowered = name.lower()
        if lowered in _FRAMING_HEADERS:
            known[lowered] = known[lowered] + b", " + value if lowered in known else value
    return tuple(headers), known


class _BodyKind(enum.Enum):
    NONE = "none"
    LENGTH = "length"
    CHUNKED = "chunked"
    UNTIL_CLOSE = "until-close"
    TUNNEL = "tunnel"


def _framing(known: Known, *, request: bool) -> tuple[_BodyKind, int]:
    if not known:
        return (_BodyKind.NONE if request else _BodyKind.UNTIL_CLOSE), 0
    encoding = known.get(b"transfer-encoding")
    if encoding is not None:
        codings = [item.strip().lower() for item in encoding.split(b",")]
        if codings[-1] == b"chunked":
            return _BodyKind.CHUNKED, 0
        if request:
            raise FramingError("a request's transfer-encoding must end with chunked")
        return _BodyKind.UNTIL_CLOSE, 0
    length = known.get(b"content-length")
    if length is not None:
        if length.isdigit():  # the usual case: one plain value
            return _BodyKind.LENGTH, int(length)
        values = {item.strip() for item in length.split(b",")}
        if len(values) != 1 or not next(iter(values)).isdigit():
            raise FramingError(f"bad content-length {length[:40]!r}")
        return _BodyKind.LENGTH, int(next(iter(values)))
    return (_BodyKind.NONE if request else _BodyKind.UNTIL_CLOSE), 0


_SMALL_REST = 4096
"""Bytes left in a ``bytes`` buffer that may be copied into a new one; a larger rest moves to a bytearray,
so that many small takes from one large chunk (a chunked body's lines) are not quadratic."""


class _Reader:
    """Body framing shared by requests and responses."""

    def __init__(self, max_head: int = MAX_HEAD) -> None:
        # ``bytes`` while it holds one fed chunk (the usual case: a message arrives whole and leaves whole,
        # with no copy), a ``bytearray`` once bytes must be joined or a large rest kept (deleting from a
        # bytearray's front is cheap; slicing a rest off ``bytes`` copies it).
        self._buffer: bytes | bytearray = b""
        self._eof = False
        self._max_head = max_head
        self._in_message = False
        self._kind = _BodyKind.NONE
        self._remaining = 0
        self._chunk_state = "size"  # size | data | data-crlf | trailers
        self._tunnel = False

    def feed(self, data: bytes) -> None:
        if not data:
            return
        buffer = self._buffer
        if not buffer:
            self._buffer = data if type(data) is bytes else bytes(data)
        elif type(buffer) is bytes:
            self._buffer = bytearray(buffer) + data
        else:
            buffer += data

    def feed_eof(self) -> None:
        self._eof = True

    @property
    def at_eof(self) -> bool:
        """The peer ended its stream and every byte has been consumed."""
        return self._eof and not self._buffer

    @property
    def buffered(self) -> int:
        return len(self._buffer)

    @property
    def message_buffered(self) -> bool:
        """The current message's body (after its head was returned) is all fed already: none at all, or a
        content-length one whose bytes are here. Chunked bodies do not count (finding their end would mean
        reading them)."""
        if not self._in_message:
            return False
        if self._kind is _BodyKind.NONE:
            return True
        return self._kind is _BodyKind.LENGTH and self._remaining <= len(self._buffer)

    def take_buffered(self) -> bytes:
        """The bytes fed but not consumed (after an upgrade, or to hand a connection to a tunnel)."""
        buffer = self._buffer
        self._buffer = b""
        return buffer if type(buffer) is bytes else bytes(buffer)

    def _take(self, size: int) -> bytes:
        buffer = self._buffer
        if size >= len(buffer):
            self._buffer = b""
            return buffer if type(buffer) is bytes else bytes(buffer)
        if isinstance(buffer, bytes):
            if len(buffer) - size <= _SMALL_REST:
                self._buffer = buffer[size:]
                return buffer[:size]
            self._buffer = buffer = bytearray(buffer)
        data = bytes(buffer[:size])
        del buffer[:size]
        return data

    def _head_lines(self) -> tuple[bytes, list[bytes]] | None:
        end = self._buffer.find(b"\r\n\r\n")
        if end < 0:
            if len(self._buffer) > self._max_head:
                raise FramingError(f"the message head is larger than {self._max_head} bytes")
            if self._eof and self._buffer:
                raise FramingError("the stream ended inside a message head")
            return None
        if end + 4 > self._max_head:
            raise FramingError(f"the message head is larger than {self._max_head} bytes")
        raw = self._take(end + 4)
        lines = raw.split(b"\r\n")
        del lines[-2:]  # the empty line that ends the head
        return raw, lines

    def _start_body(self, kind: _BodyKind, length: int) -> None:
        self._in_message = True
        self._kind = kind
        self._remaining = length
        self._chunk_state = "size"

    def _body_event(self) -> Body | End | _Need:
        kind = self._kind
        if kind is _BodyKind.NONE or (kind is _BodyKind.LENGTH and self._remaining == 0):
            self._in_message = False
            return _END
        if kind is _BodyKind.LENGTH:
            if not self._buffer:
                if self._eof:
                    raise FramingError(f"the stream ended {self._remaining} bytes before the body's end")
                return NEED_DATA
            data = self._take(min(self._remaining, len(self._buffer)))
            self._remaining -= len(data)
            return Body(data)
        if kind in (_BodyKind.UNTIL_CLOSE, _BodyKind.TUNNEL):
            if self._buffer:
                return Body(self._take(len(self._buffer)))
            if self._eof:
                self._in_message = False
                return _END
            return NEED_DATA
        return self._chunked_event()

    def _line(self) -> bytes | None:
        end = self._buffer.find(b"\r\n")
        if end < 0:
            if len(self._buffer) > MAX_CHUNK_LINE:
                raise FramingError("a chunk-size or trailer line is too long")
            if self._eof:
                raise FramingError("the stream ended inside a chunked body")
            return None
        return self._take(end + 2)

    def _chunked_event(self) -> Body | End | _Need:
        # Consumes as much framing as is available and returns it as one Body, so chunk-size lines and
        # data travel together; End carries the terminating trailer section.
        out = bytearray()
        while True:
            if self._chunk_state == "size":
                line = self._line()
                if line is None:
                    break
                size_text = line[:-2].split(b";", 1)[0].strip()
                try:
                    size = int(size_text, 16)
                except ValueError:
                    raise FramingError(f"bad chunk size {size_text[:20]!r}") from None
                out += line
                if size == 0:
                    self._chunk_state = "trailers"
                else:
                    self._remaining = size
                    self._chunk_state = "data"
            elif self._chunk_state == "data":
                if not self._buffer:
                    break
                data = self._take(min(self._remaining, len(self._buffer)))
                out += data
                self._remaining -= len(data)
                if self._remaining == 0:
                    self._chunk_state = "data-crlf"
            elif self._chunk_state == "data-crlf":
                if len(self._buffer) < 2:
                    if self._eof:
                        raise FramingError("the stream ended inside a chunked body")
                    break
                if self._buffer[:2] != b"\r\n":
                    raise FramingError("a chunk's data is not followed by CRLF")
                out += self._take(2)
                self._chunk_state = "size"
            else:  # trailers: header lines up to an empty one
                line = self._line()
                if line is None:
                    break
                out += line
                if line == b"\r\n":
                    self._in_message = False
                    return End(bytes(out))
        if out:
            return Body(bytes(out))
        if self._eof:
            raise FramingError("the stream ended inside a chunked body")
        return NEED_DATA


_VERSIONS = {b"HTTP/1.1": "HTTP/1.1", b"HTTP/1.0": "HTTP/1.0"}


class RequestReader(_Reader):
    """Frames the requests a client sends on one connection."""

    def next_event(self) -> Event | _Need:
        if self._in_message:
            return self._body_event()
        if not self._buffer:
            return NEED_DATA  # at the end of the stream, a clean end between requests: ``at_eof`` tells
        parsed = self._head_lines()
        if parsed is None:
            return NEED_DATA
        raw, lines = parsed
        try:
            return self._request_head(raw, lines)
        except FramingError:
            # Not consumed: whoever takes the connection's bytes as they are from here gets these too.
            rest = self._buffer
            self._buffer = raw + rest if rest else raw
            raise

    def _request_head(self, raw: bytes, lines: list[bytes]) -> RequestHead:
        parts = lines[0].split(b" ")
        if len(parts) != 3 or parts[2] not in _VERSIONS or not parts[1] or not _token(parts[0]):
            raise FramingError(f"malformed request line {lines[0][:80]!r}")
        method = parts[0].decode("latin-1")
        target = parts[1].decode("latin-1")
        version = _VERSIONS[parts[2]]
        headers, known = _parse_headers(lines[1:])
        connection = known.get(b"connection")
        upgrade = method == "CONNECT" or (b"upgrade" in known and b"upgrade" in _tokens(connection))
        keep_alive = _keep_alive(version, connection)
        head = RequestHead(method, target, version, headers, raw, keep_alive, upgrade)
        kind, length = _framing(known, request=True)
        self._start_body(kind, length)
        return head


class ResponseReader(_Reader):
    """Frames the responses to requests sent on one connection; ``expect`` each request's method in order."""

    def __init__(self, max_head: int = MAX_HEAD) -> None:
        super().__init__(max_head)
        self._methods: list[str] = []
        self.final: ResponseHead | None = None
        """The last final (non-1xx) response head read."""
        self.close_delimited = False
        """The last final response's body ends only when the connection closes."""
        self.upgraded = False
        """A 101 (or a CONNECT's 2xx) arrived: everything after its head is the new protocol's."""

    def expect(self, method: str) -> None:
        self._methods.append(method)

    def next_event(self) -> Event | _Need:
        if self._in_message:
            return self._body_event()
        if self.upgraded:
            self._start_body(_BodyKind.TUNNEL, 0)
            return self._body_event()
        if not self._buffer:
            return NEED_DATA
        parsed = self._head_lines()
        if parsed is None:
            return NEED_DATA
        raw, lines = parsed
        parts = lines[0].split(b" ", 2)
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit():
            raise FramingError(f"malformed status line {lines[0][:80]!r}")
        version = parts[0].decode("latin-1")
        headers, known = _parse_headers(lines[1:])
        head = ResponseHead(
            version, int(parts[1]), headers, raw, _keep_alive(version, known.get(b"connection"))
        )
        method = self._methods[0] if self._methods else "GET"
        if head.interim:
            self._in_message = False
            return head
        if self._methods:
            self._methods.pop(0)
        self.final = head
        self.close_delimited = False
        if head.status == 101 or (method == "CONNECT" and 200 <= head.status < 300):
            self.upgraded = True
            self._in_message = False
            return head
        if method == "HEAD" or head.status in (204, 304):
            self._start_body(_BodyKind.NONE, 0)
        else:
            kind, length = _framing(known, request=False)
            self.close_delimited = kind is _BodyKind.UNTIL_CLOSE
            self._start_body(kind, length)
        return head

    @property
    def reusable(self) -> bool:
        """After the last response's end, the connection may carry another request."""
        final = self.final
        return final is not None and final.keep_alive and not self.close_delimited and not self.upgraded


class Detected(enum.Enum):
    HTTP1 = "http/1"
    H2_PRIOR_KNOWLEDGE = "h2c"
    NOT_HTTP = "not-http"
    UNDECIDED = "undecided"


DETECT_LIMIT = 8192
"""Bytes of a connection's start after which it is judged not HTTP if no request line has ended."""


def detect(prefix: bytes) -> Detected:
    """What a connection that started with ``prefix`` speaks, or UNDECIDED until more bytes arrive."""
    if prefix.startswith(H2_PREFACE):
        return Detected.H2_PRIOR_KNOWLEDGE
    if H2_PREFACE.startswith(prefix):
        return Detected.UNDECIDED
    end = prefix.find(b"\n")
    line = prefix if end < 0 else prefix[:end].rstrip(b"\r")
    method, space, rest = line.partition(b" ")
    if _TOKEN_MATCH(method) is None:
        return Detected.NOT_HTTP
    if end < 0:
        return Detected.UNDECIDED if len(prefix) < DETECT_LIMIT else Detected.NOT_HTTP
    target, space2, version = rest.partition(b" ")
    if space and space2 and target and version in (b"HTTP/1.1", b"HTTP/1.0"):
        return Detected.HTTP1
    return Detected.NOT_HTTP
