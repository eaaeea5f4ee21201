"""The agent's outgoing connections over real loopback sockets, with a recording session outbox."""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path

from pymirrord.agent.dns import Resolver
from pymirrord.agent.outgoing import Outgoing
from pymirrord.protocol import agent_to_session as to_session
from pymirrord.protocol.outgoing_types import Transport
from pymirrord.protocol.session_to_agent import OutgoingConnect
from pymirrord.protocol.types import SocketAddress

MIB = 1024 * 1024
SESSION = 1


class Outbox:
    """A session's outbox that keeps every message and wakes whoever waits for one."""

    def __init__(self) -> None:
        self.messages: list[to_session.AgentToSession] = []
        self.changed = asyncio.Event()

    def put(self, frame: bytes) -> None:
        self.messages.append(to_session.CODEC.decode(frame))
        self.changed.set()

    def offer(self, frame: bytes) -> bool:
        self.put(frame)
        return True

    async def wait_writable(self) -> None:
        return

    async def wait_for(self, message: to_session.AgentToSession) -> None:
        while message not in self.messages:
            self.changed.clear()
            await asyncio.wait_for(self.changed.wait(), 10)


def test_a_slow_remote_peer_holds_its_sessions_writes_without_waiting(tmp_path: Path) -> None:
    async def scenario() -> None:
        release = asyncio.Event()
        received: asyncio.Queue[tuple[int, str]] = asyncio.Queue()

        async def peer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await release.wait()
            digest = hashlib.sha256()
            size = 0
            while data := await reader.read(MIB):
                digest.update(data)
                size += len(data)
            received.put_nowait((size, digest.hexdigest()))
            writer.close()

        server = await asyncio.start_server(peer, "127.0.0.1", 0)
        remote = SocketAddress("127.0.0.1", server.sockets[0].getsockname()[1])
        outgoing = Outgoing(Resolver(lambda: tmp_path), bypass_mark=None)
        outbox = Outbox()
        outgoing.attach(SESSION, outbox)
        outgoing.connect(SESSION, OutgoingConnect(7, Transport.TCP, remote, 0, False))
        while not any(isinstance(m, to_session.OutgoingConnectResult) for m in outbox.messages):
            outbox.changed.clear()
            await asyncio.wait_for(outbox.changed.wait(), 10)
        result = outbox.messages[0]
        assert isinstance(result, to_session.OutgoingConnectResult) and not result.error
        connection_id = result.connection_id

        chunk, chunks = bytes(range(256)) * 4096, 24
        for _ in range(chunks):
            outgoing.write(SESSION, connection_id, chunk)  # returns at once, however slow the peer
        await outbox.wait_for(to_session.OutgoingWriteFlow(connection_id, True))
        assert to_session.OutgoingWriteFlow(connection_id, False) not in outbox.messages
        release.set()
        await outbox.wait_for(to_session.OutgoingWriteFlow(connection_id, False))
        outgoing.write(SESSION, connection_id, b"")
        size, digest = await asyncio.wait_for(received.get(), 10)
        assert (size, digest) == (chunks * len(chunk), hashlib.sha256(chunk * chunks).hexdigest())
        await outgoing.close_all()
        server.close()

    asyncio.run(asyncio.wait_for(scenario(), 60))
