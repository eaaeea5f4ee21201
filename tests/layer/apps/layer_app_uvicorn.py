"""uvicorn (asyncio loop, h11) on port 80 with a bare ASGI app echoing the client and server it sees."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

import uvicorn

Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


async def app(scope: dict[str, Any], receive: Receive, send: Send) -> None:
    if scope["type"] != "http":
        return
    client = scope.get("client")
    print(f"request from {client}", flush=True)
    body = json.dumps({"client": list(client) if client else None, "server": list(scope["server"])}).encode()
    headers = [(b"content-type", b"application/json")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


if __name__ == "__main__":
    uvicorn.run(app, host="0.0.0.0", port=80, loop="asyncio", http="h11", log_level="info")
