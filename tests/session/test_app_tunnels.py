"""Offering a tunnel to the app on a connection the session opens to it: taken by the layer, or not."""

from __future__ import annotations

import asyncio
import socket

from pymirrord.session.app_tunnels import offer_taken


def _connected() -> tuple[socket.socket, socket.socket]:
    ours, apps = socket.socketpair()
    ours.setblocking(False)
    return ours, apps


def test_a_tunnel_the_layer_took_is_taken() -> None:
    """The layer's ``PeerQuery`` takes the offer, and the accepted connection it replaced closes."""

    async def scenario() -> None:
        ours, apps = _connected()
        tunnel = socket.socket()
        offers = {7: tunnel}
        waiting = asyncio.ensure_future(offer_taken(offers, 7, ours))
        assert offers.pop(7) is tunnel  # what the PeerQuery answer does
        apps.close()  # the layer put the tunnel in place of the accepted socket
        assert await asyncio.wait_for(waiting, 5) == (True, b"")
        for sock in (ours, tunnel):
            sock.close()

    asyncio.run(scenario())


def test_an_app_that_writes_first_keeps_its_connection_and_the_offer_is_withdrawn() -> None:
    async def scenario() -> None:
        ours, apps = _connected()
        tunnel = socket.socket()
        offers = {7: tunnel}
        apps.sendall(b"hello first")
        assert await asyncio.wait_for(offer_taken(offers, 7, ours), 5) == (False, b"hello first")
        assert offers == {}
        for sock in (ours, apps, tunnel):
            sock.close()

    asyncio.run(scenario())
