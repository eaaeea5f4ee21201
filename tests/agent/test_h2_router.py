"""The h2c router fed with bytes: a client and a pod played by ``h2`` connections in memory."""

from __future__ import annotations

import h2.config
import h2.connection
import h2.events

from pymirrord.agent.h2_router import H2Router, StolenBody, StolenEnd, StolenStart
from pymirrord.http_filter import RequestHead as FilterRequest


def _pair() -> tuple[H2Router, h2.connection.H2Connection, h2.connection.H2Connection]:
    router = H2Router(lambda _stream, request: dict(request.headers).get(b"x-user") == b"me")
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
