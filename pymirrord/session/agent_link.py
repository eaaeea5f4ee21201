"""The session's websocket to the agent: connect with the token, agree on the protocol, then pump.

Messages sent in one turn of the event loop leave in one websocket message when the agent agreed to
batches (``BATCH_SUBPROTOCOL``): a burst of requests and responses then costs one frame, one mask and
one wake-up of the agent instead of one each.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

from pymirrord import __version__
from pymirrord.protocol import PROTOCOL_VERSION
from pymirrord.protocol import agent_to_session as from_agent
from pymirrord.protocol import session_to_agent as to_agent
from pymirrord.protocol.batch import split_batch
from pymirrord.protocol.errors import ProtocolError
from pymirrord.session.errors import AgentUnavailable
from pymirrord.transport.connection import WebSocket, connect
from pymirrord.transport.errors import ConnectionClosed, HandshakeRejected, TransportError
from pymirrord.transport.handshake import BATCH_SUBPROTOCOL

# Relayed chunks are at most a few hundred KiB; anything far larger is a broken peer.
_MAX_MESSAGE = 16 * 1024 * 1024


class AgentLink:
    """One open, handshaken websocket to an agent."""

    def __init__(self, websocket: WebSocket, hello: from_agent.AgentHello) -> None:
        self._websocket = websocket
        self._batched = websocket.subprotocol == BATCH_SUBPROTOCOL
        self._pending: list[bytes] = []
        self._flush_scheduled = False
        self.hello = hello
        self.address: tuple[str, int] | None = None
        """Where the agent listens (for the session's tunnels)."""
        self.token = ""
        self.report_traffic = False
        """The agent reports the traffic of the connections it steals through tunnels (``TrafficReport``)."""

    @classmethod
    async def open(
        cls, url: str, token: str, session_name: str, timeout: float, *, report_traffic: bool = False
    ) -> AgentLink:
        parts = urlsplit(url)
        if parts.scheme != "ws" or not parts.hostname or parts.port is None:
            raise AgentUnavailable(f"cannot reach the agent at {url}: not a ws://HOST:PORT/ address")
        try:
            websocket = await connect(
                parts.hostname,
                parts.port,
                path=parts.path or "/",
                headers={"Authorization": f"Bearer {token}"},
                subprotocols=(BATCH_SUBPROTOCOL,),
                max_message=_MAX_MESSAGE,
                timeout=timeout,
            )
        except HandshakeRejected as error:
            hint = (
                "the agent refused the session token" if error.status == 401 else "is it a pymirrord agent?"
            )
            raise AgentUnavailable(f"the agent at {url} answered HTTP {error.status}", hint) from None
        except (OSError, asyncio.TimeoutError, TransportError) as error:
            reason = str(error) or "no answer in time"
            raise AgentUnavailable(
                f"cannot reach the agent at {url}: {reason}", "check that the agent is running"
            ) from None
        link = cls(websocket, from_agent.AgentHello(0, "", "", None, ""))  # the real one comes next
        try:
            link._send_now(
                [
                    to_agent.CODEC.encode(
                        to_agent.ClientHello(PROTOCOL_VERSION, __version__, session_name, report_traffic)
                    )
                ]
            )
            replies = link._decode(await asyncio.wait_for(websocket.recv(), timeout))
        except (ConnectionClosed, ProtocolError, asyncio.TimeoutError) as error:
            await websocket.close()
            raise AgentUnavailable(f"the agent at {url} broke off the handshake: {error}") from None
        reply = replies[0] if replies else None
        if isinstance(reply, from_agent.ErrorReport):
            await websocket.close()
            raise AgentUnavailable(f"the agent refused the session: {reply.message}", reply.hint)
        if not isinstance(reply, from_agent.AgentHello) or len(replies) != 1:
            await websocket.close()
            raise AgentUnavailable(f"the agent answered the handshake with {type(reply).__name__}")
        link.hello = reply
        link.address = (parts.hostname, parts.port)
        link.token = token
        link.report_traffic = report_traffic
        return link

    async def send(self, message: to_agent.SessionToAgent) -> None:
        """Sends one message; to an agent that is gone it goes nowhere (the pump reports the loss).

        It leaves with the others of this turn of the event loop; the wait is for a full socket only.
        """
        self.send_soon(message)
        with contextlib.suppress(ConnectionClosed):
            await self._websocket.drain()

    def send_soon(self, message: to_agent.SessionToAgent) -> None:
        """``send`` for callers that cannot wait: a small message, leaving with this turn's others."""
        self._pending.append(to_agent.CODEC.encode(message))
        if not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        pending, self._pending = self._pending, []
        if pending:
            self._send_now(pending)

    def _send_now(self, frames: list[bytes]) -> None:
        self._websocket.send_messages(frames, batched=self._batched)

    def _decode(self, frame: bytes | bytearray | str) -> list[from_agent.AgentToSession]:
        if isinstance(frame, str):
            raise ProtocolError("the agent sent a text frame; the protocol is binary")
        if not self._batched:
            return [from_agent.CODEC.decode(frame)]
        return [from_agent.CODEC.decode(part) for part in split_batch(frame)]

    async def messages(self) -> AsyncIterator[from_agent.AgentToSession]:
        """Every message until the agent closes the link; a malformed one raises ``ProtocolError``."""
        websocket = self._websocket
        try:
            while True:
                for frame in await websocket.recv_many():
                    for message in self._decode(frame):
                        yield message
        except ConnectionClosed:
            return

    async def close(self) -> None:
        self._flush()
        await self._websocket.close()
