"""The opening handshake between ``ClientHandshake`` and ``ServerHandshake``, fed as bytes."""

from __future__ import annotations

import pytest

from pymirrord.transport.errors import HandshakeRejected, WebSocketProtocolError
from pymirrord.transport.handshake import (
    BATCH_SUBPROTOCOL,
    ClientHandshake,
    ServerHandshake,
    accept_key,
)


def test_the_rfc_example_key() -> None:
    assert accept_key("dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


def test_a_client_and_a_server_agree_and_keep_what_came_behind() -> None:
    client = ClientHandshake("agent:80", "/", {"Authorization": "Bearer t"}, (BATCH_SUBPROTOCOL,))
    server = ServerHandshake()
    request = None
    for byte in range(len(client.request)):  # one byte at a time
        request = server.feed(
            client.request[byte : byte + 1] + (b"FRAME" if byte == len(client.request) - 1 else b"")
        )
    assert request is not None
    assert request.headers["authorization"] == "Bearer t"
    assert request.subprotocols == (BATCH_SUBPROTOCOL,)
    assert request.rest == b"FRAME"
    answer = server.accept(request, BATCH_SUBPROTOCOL)
    assert answer.startswith(b"HTTP/1.1 101 Switching Protocols\r\n")
    accepted = client.feed(answer + b"NEXT")
    assert accepted is not None
    assert accepted.subprotocol == BATCH_SUBPROTOCOL
    assert accepted.rest == b"NEXT"


def test_a_refusal_reaches_the_client_with_its_status_and_body() -> None:
    client = ClientHandshake("agent:80", "/", {})
    refusal = ServerHandshake.reject(401, "need a token\n", {"WWW-Authenticate": "Bearer"})
    assert b"WWW-Authenticate: Bearer" in refusal
    with pytest.raises(HandshakeRejected) as caught:
        client.feed(refusal)
    assert caught.value.status == 401
    assert caught.value.body == b"need a token\n"


def test_a_wrong_accept_key_or_an_unoffered_subprotocol_is_refused() -> None:
    client = ClientHandshake("agent:80", "/", {})
    server = ServerHandshake()
    request = server.feed(client.request)
    assert request is not None
    forged = server.accept(request, None).replace(accept_key(request.key).encode(), b"x" * 28)
    with pytest.raises(WebSocketProtocolError, match="Sec-WebSocket-Accept"):
        client.feed(forged)
    client = ClientHandshake("agent:80", "/", {})
    server = ServerHandshake()
    request = server.feed(client.request)
    assert request is not None
    with pytest.raises(WebSocketProtocolError, match="did not offer"):
        client.feed(server.accept(request, "something-else"))


@pytest.mark.parametrize(
    ("request_bytes", "text"),
    [
        (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n", "is a GET"),
        (b"GET / HTTP/1.1\r\nHost: a\r\n\r\n", "not a websocket upgrade"),
        (
            b"GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
            "Sec-WebSocket-Key",
        ),
        (b"NOT HTTP AT ALL\r\n\r\n", "not a valid HTTP request"),
    ],
)
def test_requests_that_are_not_websocket_upgrades_are_refused(request_bytes: bytes, text: str) -> None:
    with pytest.raises(WebSocketProtocolError, match=text):
        ServerHandshake().feed(request_bytes)


def test_a_peer_that_hangs_up_mid_handshake_is_an_error() -> None:
    server = ServerHandshake()
    assert server.feed(b"GET / HTTP/1.1\r\n") is None
    with pytest.raises(WebSocketProtocolError, match="closed the connection"):
        server.feed(b"")
    client = ClientHandshake("agent:80", "/", {})
    with pytest.raises(WebSocketProtocolError, match="closed the connection"):
        client.feed(b"")
