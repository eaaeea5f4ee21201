"""Finding HTTP request heads in the client bytes of a relayed connection, without I/O.

The sessions view shows the last requests a session saw. The relay that moves a connection's client bytes
(the agent's for a stolen connection's tunnel, the session's for a mirrored copy) hands every chunk
here; request heads are parsed as they complete, bodies with a ``Content-Length`` are skipped, and anything
that is not HTTP/1 (TLS, a binary protocol, chunked uploads) makes the sniffer stop looking at that
connection: it never slows the relay down or holds on to more than one head.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MAX_HEAD = 64 * 1024
_REQUEST_LINE = re.compile(rb"^([!#$%&'*+.^_`|~0-9A-Za-z-]+) (\S+) HTTP/1\.[01]$")


@dataclass(frozen=True)
class SniffedRequest:
    method: str
    target: str
    headers: tuple[tuple[str, str], ...]


class RequestSniffer:
    """Feed it a connection's client bytes in order; it returns each request head as it completes."""

    def __init__(self) -> None:
        self._buffer = b""
        self._skip = 0
        self.stopped = False

    def feed(self, data: bytes) -> list[SniffedRequest]:
        if self.stopped or not data:
            return []
        found: list[SniffedRequest] = []
        while data:
            if self._skip:
                taken = min(self._skip, len(data))
                self._skip -= taken
                data = data[taken:]
                continue
            self._buffer += data
            data = b""
            end = self._buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(self._buffer) > MAX_HEAD or not self._looks_like_http(self._buffer):
                    self._stop()
                return found
            head, rest = self._buffer[:end], self._buffer[end + 4 :]
            self._buffer = b""
            request = self._parse(head)
            if request is None:
                self._stop()
                return found
            found.append(request)
            length = self._body_length(request)
            if length is None:
                self._stop()
                return found
            self._skip = length
            data = rest
        return found

    def _stop(self) -> None:
        self.stopped = True
        self._buffer = b""

    @staticmethod
    def _looks_like_http(buffer: bytes) -> bool:
        first = buffer.split(b"\r\n", 1)[0]
        return bool(re.match(rb"^[A-Za-z-]{0,20}( |$)", first))

    @staticmethod
    def _parse(head: bytes) -> SniffedRequest | None:
        lines = head.split(b"\r\n")
        match = _REQUEST_LINE.match(lines[0])
        if match is None:
            return None
        headers = []
        for line in lines[1:]:
            name, colon, value = line.partition(b":")
            if not colon:
                return None
            headers.append((name.decode("latin-1").strip(), value.decode("latin-1").strip()))
        return SniffedRequest(
            match.group(1).decode("ascii"), match.group(2).decode("latin-1"), tuple(headers)
        )

    @staticmethod
    def _body_length(request: SniffedRequest) -> int | None:
        """The body length to skip; None when it cannot be known from the head (chunked)."""
        length = 0
        for name, value in request.headers:
            lowered = name.lower()
            if lowered == "transfer-encoding" and "chunked" in value.lower():
                return None
            if lowered == "content-length":
                if not value.isdigit():
                    return None
                length = int(value)
        return length
