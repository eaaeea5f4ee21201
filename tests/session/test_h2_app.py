"""HTTP/1.1 requests sent to an h2c app and its answers told back in HTTP/1.1, fed bytes by the test."""

from __future__ import annotations

import h2.config
import h2.connection
import h2.events
import h2.settings

from pymirrord.session.h2_app import (
    H2AppClient,
    NotHttp2,
    ResponseBytes,
    ResponseEnd,
    ResponseFailed,
)


class App:
    """The local app's side: an h2 server the test drives."""

    def __init__(self, max_streams: int | None = None) -> None:
        self.h2 = h2.connection.H2Connection(
            h2.config.H2Configuration(client_side=False, header_encoding=None)
        )
        self.h2.initiate_connection()
        if max_streams is not None:
            self.h2.update_settings({h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: max_streams})

    def receive(self, data: bytes) -> list[h2.events.Event]:
        events = self.h2.receive_data(data)
        for event in events:
            if isinstance(event, h2.events.DataReceived):
                self.h2.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
        return events


def pump(client: H2AppClient, app: App) -> tuple[list[h2.events.Event], list[object]]:
    """Move bytes both ways until neither side has any; the app's events and the client's."""
    app_events: list[h2.events.Event] = []
    client_events: list[object] = []
    while True:
        to_app = client.data_to_send()
        to_client = app.h2.data_to_send()
        if not to_app and not to_client:
            return app_events, client_events
        if to_app:
            app_events += app.receive(to_app)
        if to_client:
            client_events += client.receive(to_client)


def response_bytes(events: list[object], request_id: int) -> bytes:
    return b"".join(e.data for e in events if isinstance(e, ResponseBytes) and e.request_id == request_id)


def test_a_grpc_style_exchange_keeps_body_and_trailers() -> None:
    client, app = H2AppClient(), App()
    head = (
        b"POST /pkg.Svc/Call HTTP/1.1\r\nhost: pod:80\r\ncontent-type: application/grpc\r\n"
        b"x-user: me\r\ntransfer-encoding: chunked\r\n\r\n"
    )
    client.start(7, head)
    client.body(7, b"5\r\nhello\r\n")
    client.body(7, b"0\r\n\r\n")
    app_events, _ = pump(client, app)
    received = next(e for e in app_events if isinstance(e, h2.events.RequestReceived))
    headers = dict(received.headers or [])
    assert headers[b":method"] == b"POST" and headers[b":path"] == b"/pkg.Svc/Call"
    assert headers[b":authority"] == b"pod:80" and headers[b":scheme"] == b"http"
    assert headers[b"te"] == b"trailers" and headers[b"x-user"] == b"me"
    assert b"transfer-encoding" not in headers and b"host" not in headers
    body = b"".join(e.data for e in app_events if isinstance(e, h2.events.DataReceived))
    assert body == b"hello"
    assert any(isinstance(e, h2.events.StreamEnded) for e in app_events)

    stream = received.stream_id
    app.h2.send_headers(stream, [(b":status", b"200"), (b"content-type", b"application/grpc")])
    app.h2.send_data(stream, b"\x00\x00\x00\x00\x02ok")
    app.h2.send_headers(stream, [(b"grpc-status", b"0")], end_stream=True)
    _, events = pump(client, app)
    answer = response_bytes(events, 7)
    assert answer.startswith(b"HTTP/1.1 200 ")
    assert b"Transfer-Encoding: chunked\r\n" in answer
    assert answer.endswith(b"7\r\n\x00\x00\x00\x00\x02ok\r\n0\r\ngrpc-status: 0\r\n\r\n")
    assert events[-1] == ResponseEnd(7)
    assert client.active == 0


def test_large_bodies_wait_for_the_apps_window() -> None:
    client, app = H2AppClient(), App()
    size = 200_000  # beyond the default 65,535-byte window
    client.start(1, b"POST /up HTTP/1.1\r\nhost: a\r\ncontent-length: %d\r\n\r\n" % size)
    client.body(1, b"x" * size)
    app_events, _ = pump(client, app)
    body = b"".join(e.data for e in app_events if isinstance(e, h2.events.DataReceived))
    assert len(body) == size
    ended = [e for e in app_events if isinstance(e, h2.events.StreamEnded)]
    assert len(ended) == 1


def test_interleaved_requests_get_their_own_answers() -> None:
    client, app = H2AppClient(), App()
    client.start(1, b"GET /one HTTP/1.1\r\nhost: a\r\n\r\n")
    client.start(2, b"GET /two HTTP/1.1\r\nhost: a\r\n\r\n")
    app_events, _ = pump(client, app)
    streams = {
        dict(e.headers or [])[b":path"]: e.stream_id
        for e in app_events
        if isinstance(e, h2.events.RequestReceived)
    }
    app.h2.send_headers(streams[b"/two"], [(b":status", b"404"), (b"content-length", b"0")], end_stream=True)
    app.h2.send_headers(streams[b"/one"], [(b":status", b"200"), (b"content-length", b"1")])
    app.h2.send_data(streams[b"/one"], b"1", end_stream=True)
    _, events = pump(client, app)
    assert response_bytes(events, 2).startswith(b"HTTP/1.1 404 ")
    assert response_bytes(events, 1).endswith(b"content-length: 1\r\n\r\n1")
    assert {e.request_id for e in events if isinstance(e, ResponseEnd)} == {1, 2}


def test_an_app_that_is_not_http2_is_told_apart() -> None:
    client = H2AppClient()
    client.start(1, b"GET / HTTP/1.1\r\nhost: a\r\n\r\n")
    client.data_to_send()
    events = client.receive(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n")
    assert len(events) == 1 and isinstance(events[0], NotHttp2)


def test_a_reset_or_a_lost_connection_fails_the_open_requests() -> None:
    client, app = H2AppClient(), App()
    client.start(1, b"GET /reset HTTP/1.1\r\nhost: a\r\n\r\n")
    client.start(2, b"GET /lost HTTP/1.1\r\nhost: a\r\n\r\n")
    app_events, _ = pump(client, app)
    first = next(e for e in app_events if isinstance(e, h2.events.RequestReceived))
    app.h2.reset_stream(first.stream_id)
    _, events = pump(client, app)
    failed = events[0]
    assert isinstance(failed, ResponseFailed) and "reset" in failed.reason
    assert events == [ResponseFailed(1, failed.reason)]
    lost = client.connection_lost()
    assert len(lost) == 1 and isinstance(lost[0], ResponseFailed) and lost[0].request_id == 2


def test_requests_beyond_the_apps_stream_limit_wait_for_a_free_stream() -> None:
    client, app = H2AppClient(), App(max_streams=1)
    pump(client, app)  # the app's settings arrive before the requests, as on a real connection
    for request_id in (1, 2, 3):
        client.start(request_id, b"GET /%d HTTP/1.1\r\nhost: a\r\n\r\n" % request_id)
    answered: set[int] = set()
    app_events, _ = pump(client, app)
    for _ in range(3):
        opened = [e for e in app_events if isinstance(e, h2.events.RequestReceived)]
        assert len(opened) == 1, "one stream at a time, as the app asked"
        app.h2.send_headers(
            opened[0].stream_id, [(b":status", b"200"), (b"content-length", b"0")], end_stream=True
        )
        app_events, events = pump(client, app)  # the answer frees the stream: the next request opens
        answered |= {e.request_id for e in events if isinstance(e, ResponseEnd)}
        assert not [e for e in events if isinstance(e, ResponseFailed)]
    assert answered == {1, 2, 3}
