"""The asyncio shell around ``h2_app.H2AppClient``: one h2c connection to a local app, and its requests.

``HttpRequests`` sends a request that reached the pod as an HTTP/2 stream through ``start`` and ``body``;
this pumps the bytes, sends the app's answers to the agent as they come (steal mode; a mirrored request's
answer is dropped), and resolves each request's ``outcome``: None once its response ended, the reason it
failed, or ``NOT_HTTP2`` when the app turned out not to speak HTTP/2 (nothing of its answer was sent, so
the caller can send the request over HTTP/1.1 instead).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Awaitable, Callable
from typing import Final

from pymirrord.protocol import session_to_agent as to_agent
from pymirrord.session.h2_app import (
    Event,
    H2AppClient,
    NotHttp2,
    ResponseBytes,
    ResponseEnd,
    ResponseFailed,
)
from pymirrord.session.held_stream import relieve
from pymirrord.streams import open_stream

NOT_HTTP2: Final = "the app does not speak HTTP/2"
_CHUNK = 1024 * 1024

Send = Callable[[to_agent.SessionToAgent], Awaitable[None]]
Outcome = asyncio.Future[str | None]


class H2AppLink:
    """One h2c connection to an app; ``open`` it, then ``start`` requests on it."""

    def __init__(self, send: Send) -> None:
        self._send = send
        self._client = H2AppClient()
        self._writer: asyncio.StreamWriter | None = None
        self._reader_task: asyncio.Task[None] | None = None
        self._outcomes: dict[int, Outcome] = {}
        self._steal: dict[int, bool] = {}

    @property
    def closed(self) -> bool:
        return self._client.closed

    async def open(self, sock: socket.socket) -> None:
        """Start speaking h2c on ``sock``, a new connection to the app (this link owns it now)."""
        try:
            reader, writer = await open_stream(sock, _CHUNK)
        except BaseException:
            sock.close()
            raise
        self._writer = writer
        self._flush()
        self._reader_task = asyncio.create_task(self._read(reader), name="pymirrord-h2-app")

    def start(self, request_id: int, head: bytes, *, steal: bool) -> Outcome:
        outcome: Outcome = asyncio.get_running_loop().create_future()
        self._outcomes[request_id] = outcome
        self._steal[request_id] = steal
        self._dispatch_now(self._client.start(request_id, head))
        self._flush()
        return outcome

    async def body(self, request_id: int, data: bytes) -> None:
        self._dispatch_now(self._client.body(request_id, data))
        self._flush()
        if self._writer is not None:
            with contextlib.suppress(ConnectionError, OSError):
                await relieve(self._writer)

    def cancel(self, request_id: int) -> None:
        self._forget(request_id)
        self._client.cancel(request_id)
        self._flush()

    async def close(self) -> None:
        if self._reader_task is not None:
            self._reader_task.cancel()
            await asyncio.gather(self._reader_task, return_exceptions=True)
        if self._writer is not None:
            self._writer.close()
        self._settle_all("the session is closing")

    # --- pumping -------------------------------------------------------------------------------------------

    def _flush(self) -> None:
        data = self._client.data_to_send()
        if data and self._writer is not None and not self._writer.is_closing():
            self._writer.write(data)

    async def _read(self, reader: asyncio.StreamReader) -> None:
        try:
            while data := await reader.read(_CHUNK):
                await self._dispatch(self._client.receive(data))
                self._flush()
        except (ConnectionError, OSError):
            pass
        await self._dispatch(self._client.connection_lost())
        if self._writer is not None:
            self._writer.close()

    def _dispatch_now(self, events: list[Event]) -> None:
        """Events that arise while a request is fed in are failures only (answers come from the app)."""
        for event in events:
            if isinstance(event, ResponseFailed):
                self._settle(event.request_id, event.reason)

    async def _dispatch(self, events: list[Event]) -> None:
        for event in events:
            if isinstance(event, ResponseBytes):
                if self._steal.get(event.request_id):
                    await self._send(to_agent.HttpResponseData(event.request_id, event.data))
            elif isinstance(event, ResponseEnd):
                if self._steal.get(event.request_id):
                    await self._send(to_agent.HttpResponseEnd(event.request_id))
                self._settle(event.request_id, None)
            elif isinstance(event, ResponseFailed):
                self._settle(event.request_id, event.reason)
            elif isinstance(event, NotHttp2):
                self._settle_all(NOT_HTTP2)

    def _settle(self, request_id: int, result: str | None) -> None:
        outcome = self._outcomes.get(request_id)
        if outcome is not None and not outcome.done():
            outcome.set_result(result)
        self._forget(request_id)

    def _settle_all(self, result: str) -> None:
        for request_id in list(self._outcomes):
            self._settle(request_id, result)

    def _forget(self, request_id: int) -> None:
        self._outcomes.pop(request_id, None)
        self._steal.pop(request_id, None)
