from __future__ import annotations

from pymirrord.http_sniffer import RequestSniffer


def test_keep_alive_requests_with_bodies_split_anywhere() -> None:
    stream = (
        b"POST /user HTTP/1.1\r\nContent-Length: 5\r\nX-A: b\r\n\r\nhello"
        b"GET /users?x=1 HTTP/1.1\r\nHost: a\r\n\r\n"
    )
    for cut in range(1, len(stream)):
        sniffer = RequestSniffer()
        found = sniffer.feed(stream[:cut]) + sniffer.feed(stream[cut:])
        assert [(r.method, r.target) for r in found] == [("POST", "/user"), ("GET", "/users?x=1")], cut
    assert found[0].headers == (("Content-Length", "5"), ("X-A", "b"))


def test_gives_up_on_what_it_cannot_follow() -> None:
    tls = RequestSniffer()
    assert tls.feed(b"\x16\x03\x01\x02\x00") == [] and tls.stopped
    chunked = RequestSniffer()
    assert len(chunked.feed(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello")) == 1
    assert chunked.stopped and chunked.feed(b"GET / HTTP/1.1\r\n\r\n") == []
