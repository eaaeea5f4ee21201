"""Tunnels the app accepts in place of a connection the session opens to it (the I/O shell).

A stolen connection's tunnel, and a tunnel to the app for the HTTP requests a filter matches, reach the app
the same way: the session connects to the app's listener, the app's layer asks who is behind that connection
(``PeerQuery``), and takes the tunnel with the answer, putting it in place of the connection it accepted.
The app then reads the agent's bytes itself; they never pass the session. Where the layer does not ask (the
app accepts where pymirrord cannot see), the session relays between the tunnel and its connection instead.

``AppTunnels`` gives the agent tunnels for HTTP requests (``HttpAppTunnel``), taken from the session's pool
of outgoing tunnels.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable

from pymirrord.nodelay import no_delay
from pymirrord.protocol import session_to_agent as to_agent
from pymirrord.protocol.types import SocketAddress
from pymirrord.session.tunnels import TunnelPool
from pymirrord.tunnel.pump import TunnelRelay, reset

TUNNEL_OFFER_TIMEOUT = 2.0
"""How long a tunnel offered to the app waits for its layer to take it before the session relays it."""

Send = Callable[[to_agent.SessionToAgent], Awaitable[None]]


async def offer_taken(
    offers: dict[int, socket.socket], key: int, placeholder: socket.socket
) -> tuple[bool, bytes]:
    """Waits for the app's layer to take the tunnel offered under ``key`` (its ``PeerQuery`` pops it from
    ``offers``) on the connection whose session end is ``placeholder``: True once it did; False, with what
    the app wrote on the connection itself, if it did not ask in time (its accept is not one the layer
    sees) or wrote first. The offer is withdrawn either way."""
    loop = asyncio.get_running_loop()
    sent = b""
    try:
        # Ends when the layer has put the tunnel in place of the accepted connection (our end of that
        # connection then reads its end), or when the app sent something on the connection itself.
        sent = await asyncio.wait_for(loop.sock_recv(placeholder, 65536), TUNNEL_OFFER_TIMEOUT)
    except asyncio.TimeoutError:
        pass
    except OSError:
        return offers.pop(key, None) is None, b""
    if offers.pop(key, None) is not None or sent:
        return False, sent
    return True, b""


class AppTunnels:
    """Gives the agent tunnels that lead to the app, for the requests its filter matches.

    ``notify``: the agent is asked to tell of the requests it writes to them (``HttpRequestsServed``: the
    session's observer counts requests).
    """

    def __init__(
        self, pool: TunnelPool | None, send: Send, on_log: Callable[[str], None], *, notify: bool
    ) -> None:
        self._pool = pool
        self._send = send
        self._log = on_log
        self._notify = notify
        self._offers: dict[int, socket.socket] = {}  # by the local port of the connection it is offered on

    def take_offer(self, local_port: int) -> socket.socket | None:
        """The tunnel offered on the connection from ``local_port`` (the layer asks with ``PeerQuery``);
        the caller passes a duplicate of it on, and the offer is gone."""
        return self._offers.pop(local_port, None)

    async def give(self, port: int, address: SocketAddress) -> None:
        """Gives the agent a tunnel for the requests that match on ``port`` once the app at ``address``
        accepted it, and relays it where the app's layer did not take it."""
        reserved = await self._pool.reserve_soon() if self._pool is not None else None
        if reserved is None:
            return  # none open right now: the agent asks again when it wants one
        tunnel_id, opened = reserved
        tunnel, head = opened.result()
        loop = asyncio.get_running_loop()
        family = socket.AF_INET6 if ":" in address.host else socket.AF_INET
        app = socket.socket(family, socket.SOCK_STREAM)
        app.setblocking(False)
        local_port = 0
        failed = True
        try:
            app.bind(("::1" if family == socket.AF_INET6 else "127.0.0.1", 0))
            local_port = app.getsockname()[1]
            offered = not head and tunnel.family == family
            if offered:
                self._offers[local_port] = tunnel
            await loop.sock_connect(app, (address.host, address.port))
            taken, sent = await offer_taken(self._offers, local_port, app) if offered else (False, b"")
            await self._send(to_agent.HttpAppTunnel(port, tunnel_id, self._notify))
            if taken:
                failed = False
                return
            no_delay(app)
            no_delay(tunnel)
            relay = TunnelRelay(app, tunnel, head_forward=sent, head_back=head)
            relay.start()
            outcome = await relay.wait()
            failed = outcome.failure is not None
        except OSError as error:
            self._log(f"could not give the agent a tunnel to the app at {address}: {error}")
        finally:
            self._offers.pop(local_port, None)
            for end in (app, tunnel):
                if failed:
                    reset(end)
                else:
                    end.close()
