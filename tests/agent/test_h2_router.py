"""The h2c router fed with bytes: a client and a pod played by ``h2`` connections in memory."""

from __future__ import annotations

from collections.abc import Collection

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.settings
import h11

from pymirrord.agent.h2_router import (
    H2Router,
    MirrorAbort,
    MirrorBody,
    MirrorEnd,
    MirrorStart,
    SessionEvent,
    StolenBody,
    StolenEnd,
    StolenStart,
    StreamRoute,
)
from pymirrord.http_filter import RequestHead as FilterRequest

Headers = list[tuple[bytes, bytes]]


def _pair(
    steal: Collection[bytes] = (b"me",), mirror: Collection[bytes] = ()
) -> tuple[H2Router, h2.connection.H2Connection, h2.connection.H2Connection]:
    """A router whose streams a session steals when ``x-user`` is in ``steal``, and mirroring sessions copy
    when it is in ``mirror``; with an in-memory client and pod."""

    def decide(_stream: int, request: FilterRequest) -> StreamRoute:
        user = dict(request.headers).get(b"x-user", b"")
        return StreamRoute(steal=user in steal, mirror=user in mirror)

    router = H2Router(decide)
    client = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding=None))
    pod = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False, header_encoding=None))
    client.initiate_connection()
    pod.initiate_connection()
    return router, client, pod


def _exchange(
    router: H2Router, client: h2.connection.H2Connection, pod: h2.connection.H2Connection
) -> tuple[list[h2.events.Event], list[h2.events.Event]]:
    client_events: list[h2.events.Event] = []
    pod_events: list[h2.events.Event] = []
    for _ in range(5):
        router.receive_client(client.data_to_send())
        pod_events += pod.receive_data(router.pod_bytes())
        router.receive_pod(pod.data_to_send())
        client_events += client.receive_data(router.client_bytes())
    return client_events, pod_events


def _headers(user: bytes, path: bytes) -> list[tuple[bytes, bytes]]:
    return [
        (b":method", b"GET"),
        (b":path", path),
        (b":scheme", b"http"),
        (b":authority", b"a"),
        (b"x-user", user),
    ]


def test_streams_split_between_pod_and_session() -> None:
    router, client, pod = _pair()
    client.send_headers(1, _headers(b"me", b"/mine"), end_stream=True)
    client.send_headers(3, _headers(b"other", b"/theirs"), end_stream=True)
    _, pod_events = _exchange(router, client, pod)
    requests = [e for e in pod_events if isinstance(e, h2.events.RequestReceived)]
    assert [dict(e.headers or [])[b":path"] for e in requests] == [b"/theirs"]
    start, end = router.events[0], router.events[-1]
    assert isinstance(start, StolenStart) and start.stream_id == 1
    assert start.head.startswith(b"GET /mine HTTP/1.1\r\n") and b"host: a\r\n" in start.head
    assert isinstance(end, StolenEnd) and end.stream_id == 1
    assert all(isinstance(e, StolenBody) for e in router.events[1:-1])
    router.events.clear()
    # The pod answers its stream, the session answers the other (HTTP/1.1, chunked, with a trailer).
    pod_stream = requests[0].stream_id
    assert pod_stream is not None
    pod.send_headers(pod_stream, [(b":status", b"200")])
    pod.send_data(pod_stream, b"pod", end_stream=True)
    router.response_data(1, b"HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nlocal\r\n")
    router.response_data(1, b"0\r\nx-trailer: t\r\n\r\n")
    assert not router.response_end(1, None)
    client_events, _ = _exchange(router, client, pod)
    by_stream: dict[int, list[h2.events.Event]] = {}
    for event in client_events:
        by_stream.setdefault(getattr(event, "stream_id", 0), []).append(event)
    mine = by_stream[1]
    assert (
        dict(next(e for e in mine if isinstance(e, h2.events.ResponseReceived)).headers or [])[b":status"]
        == b"201"
    )
    assert b"".join(e.data or b"" for e in mine if isinstance(e, h2.events.DataReceived)) == b"local"
    trailers = next(e for e in mine if isinstance(e, h2.events.TrailersReceived))
    assert list(trailers.headers or []) == [(b"x-trailer", b"t")]
    theirs = by_stream[3]
    assert b"".join(e.data or b"" for e in theirs if isinstance(e, h2.events.DataReceived)) == b"pod"
    assert any(isinstance(e, h2.events.StreamEnded) for e in theirs)


def test_a_failed_session_sends_the_stream_to_the_pod() -> None:
    router, client, pod = _pair()
    client.send_headers(1, _headers(b"me", b"/mine"), end_stream=True)
    _exchange(router, client, pod)
    assert router.response_end(1, "the session left")
    router.reroute(1)
    _, pod_events = _exchange(router, client, pod)
    assert [
        dict(e.headers or [])[b":path"] for e in pod_events if isinstance(e, h2.events.RequestReceived)
    ] == [b"/mine"]


def test_filter_view_adds_host_from_authority() -> None:
    from pymirrord.agent.h2_router import filter_view

    view = filter_view(_headers(b"me", b"/p?q=1"))
    assert view == FilterRequest("GET", "/p?q=1", ((b"host", b"a"), (b"x-user", b"me")))


# --- copies for mirroring sessions -------------------------------------------------------------------------


def _send_body(client: h2.connection.H2Connection, stream: int, data: bytes, *, end: bool = False) -> None:
    for offset in range(0, len(data), 16384):
        client.send_data(stream, data[offset : offset + 16384])
    if end:
        client.end_stream(stream)


def _copy_events(router: H2Router) -> dict[int, list[SessionEvent]]:
    by_stream: dict[int, list[SessionEvent]] = {}
    for event in router.events:
        if isinstance(event, MirrorStart | MirrorBody | MirrorEnd | MirrorAbort):
            by_stream.setdefault(event.stream_id, []).append(event)
    return by_stream


def _read_copy(events: list[SessionEvent], *, complete: bool = True) -> tuple[h11.Request, bytes, Headers]:
    """A copy read the way a local HTTP/1.1 app reads it: the request, its body so far, its trailers."""
    start, *rest = events
    assert isinstance(start, MirrorStart), events
    if complete:
        assert rest and isinstance(rest[-1], MirrorEnd), events
        rest = rest[:-1]
    assert all(isinstance(event, MirrorBody) for event in rest), events
    server = h11.Connection(h11.SERVER)
    server.receive_data(start.head + b"".join(e.data for e in rest if isinstance(e, MirrorBody)))
    request = server.next_event()
    assert isinstance(request, h11.Request)
    body = b""
    while isinstance(event := server.next_event(), h11.Data):
        body += event.data
    if not complete:
        assert event is h11.NEED_DATA, event
        return request, body, []
    assert isinstance(event, h11.EndOfMessage), event
    return request, body, list(event.headers)


def _pod_requests(pod_events: list[h2.events.Event]) -> dict[bytes, tuple[int, bytes]]:
    """The pod's requests by path: its stream and the body it received."""
    paths: dict[int, bytes] = {}
    bodies: dict[int, bytes] = {}
    for event in pod_events:
        if isinstance(event, h2.events.RequestReceived) and event.stream_id is not None:
            paths[event.stream_id] = dict(event.headers or [])[b":path"]
            bodies[event.stream_id] = b""
        elif isinstance(event, h2.events.DataReceived) and event.stream_id is not None:
            bodies[event.stream_id] += event.data or b""
    return {path: (stream, bodies[stream]) for stream, path in paths.items()}


def _post(user: bytes, path: bytes, *extra: tuple[bytes, bytes]) -> Headers:
    return [(b":method", b"POST"), *_headers(user, path)[1:], *extra]


def test_mirrored_streams_are_copied_and_the_pod_still_serves_them() -> None:
    router, client, pod = _pair(steal=(), mirror=(b"me",))
    client.send_headers(1, _headers(b"me", b"/get/mine"), end_stream=True)
    client.send_headers(3, _headers(b"other", b"/get/theirs"), end_stream=True)
    client.send_headers(5, _post(b"me", b"/post/mine", (b"cookie", b"a=1"), (b"cookie", b"b=2")))
    client.send_headers(7, _post(b"other", b"/post/theirs"))
    # Interleaved bodies: each stream's pieces alternate with the other's.
    for piece in (b"one-", b"two-", b"three"):
        client.send_data(5, b"mine:" + piece)
        client.send_data(7, b"theirs:" + piece)
    client.end_stream(5)
    client.end_stream(7)
    _, pod_events = _exchange(router, client, pod)
    served = _pod_requests(pod_events)
    assert set(served) == {b"/get/mine", b"/get/theirs", b"/post/mine", b"/post/theirs"}
    assert served[b"/post/mine"][1] == b"mine:one-mine:two-mine:three"
    assert served[b"/post/theirs"][1] == b"theirs:one-theirs:two-theirs:three"
    copies = _copy_events(router)
    assert sorted(copies) == [1, 5], "only the matching streams are copied"
    assert not [e for e in router.events if isinstance(e, StolenStart | StolenBody | StolenEnd)]
    request, body, _ = _read_copy(copies[1])
    assert (request.method, request.target, body) == (b"GET", b"/get/mine", b"")
    assert (b"host", b"a") in request.headers and (b"x-user", b"me") in request.headers
    request, body, _ = _read_copy(copies[5])
    assert (request.method, request.target) == (b"POST", b"/post/mine")
    assert body == b"mine:one-mine:two-mine:three"
    assert (b"cookie", b"a=1; b=2") in request.headers
    # The pod answers every stream, and the client gets each answer on its own stream.
    for path, (pod_stream, _) in served.items():
        pod.send_headers(pod_stream, [(b":status", b"200")])
        pod.send_data(pod_stream, b"pod:" + path, end_stream=True)
    client_events, _ = _exchange(router, client, pod)
    answers: dict[int, bytes] = {}
    for event in client_events:
        if isinstance(event, h2.events.DataReceived) and event.stream_id is not None:
            answers[event.stream_id] = answers.get(event.stream_id, b"") + (event.data or b"")
    assert answers == {
        1: b"pod:/get/mine",
        3: b"pod:/get/theirs",
        5: b"pod:/post/mine",
        7: b"pod:/post/theirs",
    }


def test_a_copy_gets_the_body_as_it_arrives_not_as_the_pod_takes_it() -> None:
    router, client, pod = _pair(steal=(), mirror=(b"me",))
    pod.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 100})  # a pod that reads slowly
    _exchange(router, client, pod)
    client.send_headers(1, _post(b"me", b"/up"))
    body = bytes(range(256)) * 200
    _send_body(client, 1, body)
    _, pod_events = _exchange(router, client, pod)
    assert len(_pod_requests(pod_events)[b"/up"][1]) == 100, "the pod's window holds the rest back"
    _, copied, _ = _read_copy(_copy_events(router)[1], complete=False)
    assert copied == body, "the copy already has the whole body"


def test_a_stolen_stream_is_copied_too() -> None:
    router, client, pod = _pair(steal=(b"me",), mirror=(b"me",))
    client.send_headers(1, _post(b"me", b"/both"))
    client.send_data(1, b"payload")
    client.send_headers(1, [(b"x-checksum", b"c")], end_stream=True)
    _, pod_events = _exchange(router, client, pod)
    assert not _pod_requests(pod_events)
    stolen = [e for e in router.events if isinstance(e, StolenStart | StolenBody | StolenEnd)]
    assert isinstance(stolen[0], StolenStart) and isinstance(stolen[-1], StolenEnd)
    copy = _copy_events(router)[1]
    request, body, trailers = _read_copy(copy)
    assert (request.target, body, trailers) == (b"/both", b"payload", [(b"x-checksum", b"c")])
    assert isinstance(copy[0], MirrorStart) and copy[0].head == stolen[0].head, "one conversion for both"


def test_trailers_next_to_a_content_length_are_dropped_from_the_http1_request() -> None:
    # HTTP/1.1 carries trailers only in chunked bodies; the request itself must still get through whole.
    router, client, pod = _pair(steal=(b"me",), mirror=(b"me",))
    client.send_headers(1, _post(b"me", b"/sized", (b"content-length", b"5")))
    client.send_data(1, b"hello")
    client.send_headers(1, [(b"x-checksum", b"c")], end_stream=True)
    _exchange(router, client, pod)
    request, body, trailers = _read_copy(_copy_events(router)[1])
    assert (body, trailers) == (b"hello", [])
    assert (b"content-length", b"5") in request.headers
    stolen = [e for e in router.events if isinstance(e, StolenStart | StolenBody | StolenEnd)]
    assert isinstance(stolen[-1], StolenEnd)


def test_a_copy_is_aborted_when_its_request_will_not_complete() -> None:
    router, client, pod = _pair(steal=(), mirror=(b"me",))
    client.send_headers(1, _post(b"me", b"/reset-by-client"))
    client.send_headers(3, _post(b"me", b"/reset-by-pod"))
    client.send_headers(5, _post(b"me", b"/connection-ends"))
    client.send_headers(7, _headers(b"me", b"/complete"), end_stream=True)
    for stream in (1, 3, 5):
        client.send_data(stream, b"part")
    _, pod_events = _exchange(router, client, pod)
    client.reset_stream(1, h2.errors.ErrorCodes.CANCEL)
    pod.reset_stream(_pod_requests(pod_events)[b"/reset-by-pod"][0], h2.errors.ErrorCodes.REFUSED_STREAM)
    _exchange(router, client, pod)
    router.client_gone()
    copies = _copy_events(router)
    for stream in (1, 3, 5):
        assert isinstance(copies[stream][0], MirrorStart)
        assert isinstance(copies[stream][-1], MirrorAbort), copies[stream]
        assert not [e for e in copies[stream] if isinstance(e, MirrorEnd)]
    assert isinstance(copies[7][-1], MirrorEnd), "a finished copy is not aborted afterwards"


def test_a_dropped_copy_makes_no_more_events() -> None:
    router, client, pod = _pair(steal=(), mirror=(b"me",))
    client.send_headers(1, _post(b"me", b"/x"))
    _, pod_events = _exchange(router, client, pod)
    assert [type(e) for e in router.events] == [MirrorStart]
    router.events.clear()
    router.drop_copy(1)
    client.send_data(1, b"more", end_stream=True)
    pod_events += _exchange(router, client, pod)[1]
    assert router.events == []
    assert _pod_requests(pod_events)[b"/x"][1] == b"more", "the pod still gets all of it"


def test_a_request_http1_cannot_carry_goes_to_the_pod_without_a_copy() -> None:
    # h2 lets a space into :path; an HTTP/1.1 request line cannot hold one.
    router, client, pod = _pair(steal=(b"me",), mirror=(b"me",))
    client.send_headers(1, _headers(b"me", b"/a b"), end_stream=True)
    _, pod_events = _exchange(router, client, pod)
    assert b"/a b" in _pod_requests(pod_events)
    assert router.events == [MirrorAbort(1)], "no copy, and nothing for the stealing session"
    assert not router.is_stolen(1)
