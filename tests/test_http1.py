"""HTTP/1 framing: every byte fed comes out unchanged; message ends are found for every framing."""

from __future__ import annotations

import pytest

from pymirrord.http1 import (
    NEED_DATA,
    Body,
    Detected,
    End,
    FramingError,
    RequestHead,
    RequestReader,
    ResponseHead,
    ResponseReader,
    detect,
)


def drain(reader: RequestReader | ResponseReader) -> list[object]:
    events: list[object] = []
    while (event := reader.next_event()) is not NEED_DATA:
        events.append(event)
    return events


def raw(events: list[object]) -> bytes:
    return b"".join(e.raw for e in events if isinstance(e, RequestHead | ResponseHead | Body | End))


def test_pipelined_chunked_request_with_trailers_byte_by_byte() -> None:
    first = b"POST /a HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nX-Sum: 1\r\n\r\n"
    second = b"GET /b HTTP/1.1\r\nHost: x\r\n\r\n"
    reader = RequestReader()
    events: list[object] = []
    stream = first + second
    for index in range(len(stream)):
        reader.feed(stream[index : index + 1])
        events += drain(reader)
        if any(isinstance(e, End) for e in events):
            break
    assert raw(events) == first
    assert isinstance(events[-1], End), "the trailer section ends the message"
    reader.feed(stream[index + 1 :])
    head = reader.next_event()
    assert isinstance(head, RequestHead) and head.target == "/b"


def test_response_framings() -> None:
    reader = ResponseReader()
    for method in ("HEAD", "GET", "GET"):
        reader.expect(method)
    data = (
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n"  # HEAD: no body despite the length
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: ws\r\n\r\nrest"
    )
    reader.feed(data)
    events = drain(reader)
    assert [type(e).__name__ for e in events] == [
        "ResponseHead",
        "End",
        "ResponseHead",
        "ResponseHead",
        "Body",
        "End",
        "ResponseHead",
        "Body",
    ]
    assert reader.upgraded and raw(events) == data


def test_malformed_and_oversized() -> None:
    reader = RequestReader()
    reader.feed(b"GET /x HTTP/1.1\r\nBad Header\r\n\r\n")
    with pytest.raises(FramingError):
        reader.next_event()
    big = RequestReader(max_head=100)
    big.feed(b"GET / HTTP/1.1\r\nX: " + b"a" * 200)
    with pytest.raises(FramingError):
        big.next_event()


def test_a_head_that_cannot_be_read_stays_to_be_passed_on_as_it_is() -> None:
    """After a good request, a head that fails to parse is not consumed: the connection's remaining bytes
    go to the pod's app unchanged, starting with it."""
    good = b"GET /a HTTP/1.1\r\nHost: a\r\n\r\n"
    for bad in (b"\x16\x03\x01 not http\r\n\r\n", b"GET /b HTTP/1.1\r\nBad Header\r\n\r\n"):
        reader = RequestReader()
        reader.feed(good + bad + b"more")
        assert isinstance(reader.next_event(), RequestHead)
        assert isinstance(reader.next_event(), End)
        with pytest.raises(FramingError):
            reader.next_event()
        assert reader.take_buffered() == bad + b"more"


@pytest.mark.parametrize(
    ("prefix", "kind"),
    [
        (b"", Detected.UNDECIDED),
        (b"GE", Detected.UNDECIDED),
        (b"GET / HTTP/1.1\r\n", Detected.HTTP1),
        (b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", Detected.H2_PRIOR_KNOWLEDGE),
        (b"\x16\x03\x01", Detected.NOT_HTTP),
        (b"HELLO there\r\n", Detected.NOT_HTTP),
    ],
)
def test_detect(prefix: bytes, kind: Detected) -> None:
    assert detect(prefix) is kind


@pytest.mark.parametrize(
    ("stream", "whole"),
    [
        (b"GET / HTTP/1.1\r\n\r\n", True),
        (b"POST / HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc", True),
        (b"POST / HTTP/1.1\r\nContent-Length: 3\r\n\r\nab", False),
        (b"POST / HTTP/1.1\r\nContent-Length: 3\r\n\r\nabcGET /next HTTP/1.1\r\n\r\n", True),
        (b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", False),
    ],
)
def test_message_buffered_tells_a_whole_request_after_its_head(stream: bytes, whole: bool) -> None:
    reader = RequestReader()
    assert not reader.message_buffered, "no message has started"
    reader.feed(stream)
    assert isinstance(reader.next_event(), RequestHead)
    assert reader.message_buffered is whole


PIPELINE = (
    b"POST /a HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello"
    b"POST /b HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
    b"GET /c HTTP/1.1\r\nConnection: close\r\n\r\n"
)


def _targets_and_bytes(reader: RequestReader, feeds: list[bytes]) -> tuple[list[str], bytes]:
    events: list[object] = []
    for data in feeds:
        reader.feed(data)
        events += drain(reader)
    return [e.target for e in events if isinstance(e, RequestHead)], raw(events)


@pytest.mark.parametrize("cut", range(0, len(PIPELINE) + 1, 7))
def test_requests_split_anywhere_come_out_whole_and_in_order(cut: int) -> None:
    # The reader keeps one fed chunk as it is and joins only when a second one arrives: every split
    # point must give the same events and bytes as one feed.
    targets, data = _targets_and_bytes(RequestReader(), [PIPELINE[:cut], PIPELINE[cut:]])
    assert targets == ["/a", "/b", "/c"]
    assert data == PIPELINE


def test_a_large_chunked_body_from_one_feed_comes_out_whole() -> None:
    # Thousands of small chunks in one large feed: each chunk-size line is a small take from a large rest.
    body = b"".join(b"4\r\nabcd\r\n" for _ in range(20_000)) + b"0\r\n\r\n"
    stream = (
        b"POST /big HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n" + body + b"GET /after HTTP/1.1\r\n\r\n"
    )
    targets, data = _targets_and_bytes(RequestReader(), [stream])
    assert targets == ["/big", "/after"]
    assert data == stream


def test_a_response_whole_in_one_feed_is_passed_on_without_a_copy() -> None:
    response = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
    reader = ResponseReader()
    reader.expect("GET")
    reader.feed(response)
    head, body, end = drain(reader)
    assert isinstance(head, ResponseHead) and isinstance(body, Body) and isinstance(end, End)
    assert head.raw + body.raw == response
    assert reader.reusable and reader.buffered == 0


def test_a_body_that_is_the_whole_feed_is_the_fed_object() -> None:
    reader = RequestReader()
    reader.feed(b"POST / HTTP/1.1\r\nContent-Length: 4\r\n\r\n")
    assert isinstance(reader.next_event(), RequestHead)
    chunk = b"data"
    reader.feed(chunk)
    body = reader.next_event()
    assert isinstance(body, Body) and body.raw is chunk


def test_long_header_names_are_checked_but_not_remembered() -> None:
    from pymirrord import http1

    name = b"X-" + b"a" * 500
    reader = RequestReader()
    reader.feed(b"GET / HTTP/1.1\r\n" + name + b": 1\r\n\r\n")
    head = reader.next_event()
    assert isinstance(head, RequestHead) and head.headers == ((name, b"1"),)
    assert name not in http1._TOKENS_SEEN
    bad = RequestReader()
    bad.feed(b"GET / HTTP/1.1\r\n" + name + b"(: 1\r\n\r\n")
    with pytest.raises(FramingError):
        bad.next_event()
