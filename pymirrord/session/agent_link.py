"""The session's websocket to the agent: connect with the token, agree on the protocol, then pump."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus, WebSocketException

from pymirrord import __version__
from pymirrord.protocol import PROTOCOL_VERSION
from pymirrord.protocol import agent_to_session as from_agent
from pymirrord.protocol import session_to_agent as to_agent
from pymirrord.protocol.errors import ProtocolError
from pymirrord.session.errors import AgentUnavailable

# Relayed chunks are at most a few hundred KiB; anything far larger is a broken peer.
_MAX_MESSAGE = 16 * 1024 * 1024


class AgentLink:
    """One open, handshaken websocket to an agent."""

    def __init__(self, websocket: ClientConnection, hello: from_agent.AgentHello) -> None:
        self._websocket = websocket
        self.hello = hello

    @classmethod
    async def open(cls, url: str, token: str, session_name: str, timeout: float) -> AgentLink:
        try:
            websocket = await connect(
                url,
                additional_headers={"Authorization": f"Bearer {token}"},
                compression=None,  # payloads are often already compressed; deflate costs more than it saves
                proxy=None,
                open_timeout=timeout,
                max_size=_MAX_MESSAGE,
                ping_interval=None,
            )
        except InvalidStatus as error:
            status = error.response.status_code
            hint = "the agent refused the session token" if status == 401 else "is it a pymirrord agent?"
            raise AgentUnavailable(f"the agent at {url} answered HTTP {status}", hint) from None
        except (OSError, TimeoutError, WebSocketException) as error:
            raise AgentUnavailable(
                f"cannot reach the agent at {url}: {error}", "check that the agent is running"
            ) from None
        try:
            await websocket.send(
                to_agent.CODEC.encode(to_agent.ClientHello(PROTOCOL_VERSION, __version__, session_name))
            )
            reply = from_agent.CODEC.decode(_as_bytes(await websocket.recv()))
        except (ConnectionClosed, ProtocolError) as error:
            await websocket.close()
            raise AgentUnavailable(f"the agent at {url} broke off the handshake: {error}") from None
        if isinstance(reply, from_agent.ErrorReport):
            await websocket.close()
            raise AgentUnavailable(f"the agent refused the session: {reply.message}", reply.hint)
        if not isinstance(reply, from_agent.AgentHello):
            await websocket.close()
            raise AgentUnavailable(f"the agent answered the handshake with {type(reply).__name__}")
        return cls(websocket, reply)

    async def send(self, message: to_agent.SessionToAgent) -> None:
        """Sends one message; to an agent that is gone it goes nowhere (the pump reports the loss)."""
        with contextlib.suppress(ConnectionClosed):
            await self._websocket.send(to_agent.CODEC.encode(message))

    async def messages(self) -> AsyncIterator[from_agent.AgentToSession]:
        """Every message until the agent closes the link; a malformed one raises ``ProtocolError``."""
        try:
            async for frame in self._websocket:
                yield from_agent.CODEC.decode(_as_bytes(frame))
        except ConnectionClosed:
            return

    async def close(self) -> None:
        await self._websocket.close()


def _as_bytes(frame: str | bytes) -> bytes:
    if isinstance(frame, str):
        raise ProtocolError("the agent sent a text frame; the protocol is binary")
    return frame
