"""The h2c link to a local app, against small asyncio servers on 127.0.0.1:0."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable

import h2.config
import h2.connection
import h2.events

from pymirrord.protocol import session_to_agent as to_agent
from pymirrord.session.h2_app_link import NOT_HTTP2, H2AppLink

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def h2_app(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Answers every stream with 200, its path as the body, and a trailer."""
    connection = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False))
    connection.initiate_connection()
    writer.write(connection.data_to_send())
    paths: dict[int, str] = {}
    while data := await reader.read(65536):
        for event in connection.receive_data(data):
            if isinstance(event, h2.events.RequestReceived):
                paths[event.stream_id] = dict(event.headers or [])[b":path"].decode()
            elif isinstance(event, h2.events.StreamEnded):
                body = paths.pop(event.stream_id).encode()
                connection.send_headers(event.stream_id, [(":status", "200")])
                connection.send_data(event.stream_id, body)
                connection.send_headers(event.stream_id, [("x-done", "yes")], end_stream=True)
        writer.write(connection.data_to_send())
    writer.close()


async def http1_app(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Answers whatever it is sent with a 400, as an HTTP/1.1-only server does to the h2 preface."""
    await reader.read(65536)
    writer.write(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
    writer.close()


async def linked(handler: Handler) -> tuple[H2AppLink, list[to_agent.SessionToAgent], asyncio.Server]:
    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    sent: list[to_agent.SessionToAgent] = []

    async def send(message: to_agent.SessionToAgent) -> None:
        sent.append(message)

    link = H2AppLink(send)
    await link.open(socket.create_connection(server.sockets[0].getsockname()))
    return link, sent, server


def test_answers_go_to_the_agent_in_http1_form_and_copies_answer_nothing() -> None:
    async def scenario() -> None:
        link, sent, server = await linked(h2_app)
        stolen = link.start(1, b"GET /stolen HTTP/1.1\r\nhost: a\r\n\r\n", steal=True)
        copied = link.start(2, b"GET /copied HTTP/1.1\r\nhost: a\r\n\r\n", steal=False)
        assert await asyncio.wait_for(stolen, 5) is None
        assert await asyncio.wait_for(copied, 5) is None
        answer = b"".join(m.data for m in sent if isinstance(m, to_agent.HttpResponseData))
        assert answer.startswith(b"HTTP/1.1 200 ")
        assert answer.endswith(b"7\r\n/stolen\r\n0\r\nx-done: yes\r\n\r\n")
        assert sent[-1] == to_agent.HttpResponseEnd(1)
        assert all(getattr(m, "request_id", 1) == 1 for m in sent), "a copy's answer is dropped"
        await link.close()
        server.close()

    asyncio.run(scenario())


def test_an_http1_app_is_told_apart_before_anything_is_sent() -> None:
    async def scenario() -> None:
        link, sent, server = await linked(http1_app)
        outcome = link.start(1, b"GET / HTTP/1.1\r\nhost: a\r\n\r\n", steal=True)
        assert await asyncio.wait_for(outcome, 5) == NOT_HTTP2
        assert sent == [] and link.closed, "nothing of an answer went to the agent"
        await link.close()
        server.close()

    asyncio.run(scenario())
