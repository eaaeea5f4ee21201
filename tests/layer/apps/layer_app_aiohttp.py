"""aiohttp on port 80, through web.run_app or an explicit AppRunner (``--runner``): echoes the peer."""

from __future__ import annotations

import asyncio
import sys

from aiohttp import web


async def index(request: web.Request) -> web.Response:
    transport = request.transport
    peer = transport.get_extra_info("peername") if transport is not None else None
    print(f"request from {request.remote}", flush=True)
    return web.json_response({"remote": request.remote, "peer": list(peer[:2]) if peer else None})


def make_app() -> web.Application:
    app = web.Application()
    app.router.add_get("/", index)
    return app


async def with_runner() -> None:
    runner = web.AppRunner(make_app())
    await runner.setup()
    site = web.TCPSite(runner, host="0.0.0.0", port=80)
    await site.start()
    print(f"serving on {site.name}", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()


if __name__ == "__main__":
    if "--runner" in sys.argv:
        asyncio.run(with_runner())
    else:
        web.run_app(make_app(), host="0.0.0.0", port=80, print=lambda text: print(text, flush=True))
