"""Test app: makes the outgoing connections and lookups a JSON plan asks for, prints ``RESULT {json}``.

usage: outgoing_probe.py PLAN_JSON
PLAN_JSON is a list of ``[key, kind, args...]``; each result is stored under ``key``: the answer, or
``"error:ExceptionName:errno"``. Kinds: ``requests URL``, ``urllib URL``, ``asyncio HOST PORT`` (a raw HTTP
GET through asyncio streams), ``aiohttp URL``, ``udp HOST PORT DATA``, ``udp_sendto HOST PORT DATA``,
``resolve NAME``, ``gethostbyname NAME``, ``gethostbyname_ex NAME``, ``names HOST PORT`` (getpeername and
getsockname of a connected socket), ``kernel_peer HOST PORT`` (the kernel's own getpeername),
``nonblocking HOST PORT`` (connect_ex on a non-blocking socket).
"""

from __future__ import annotations

import asyncio
import json
import select
import socket
import sys
import urllib.request
from collections.abc import Callable
from typing import Any

TIMEOUT = 10


def http_requests(url: str) -> str:
    import requests

    text: str = requests.get(url, timeout=TIMEOUT).text
    return text


def http_urllib(url: str) -> str:
    with urllib.request.urlopen(url, timeout=TIMEOUT) as response:
        body: bytes = response.read()
    return body.decode()


def http_asyncio(host: str, port: str) -> str:
    async def get() -> str:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, int(port)), TIMEOUT)
        writer.write(f"GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
        data = await asyncio.wait_for(reader.read(), TIMEOUT)
        writer.close()
        return data.split(b"\r\n\r\n", 1)[1].decode()

    return asyncio.run(get())


def http_aiohttp(url: str) -> str:
    import aiohttp

    async def get() -> str:
        timeout = aiohttp.ClientTimeout(total=TIMEOUT)
        async with aiohttp.ClientSession(timeout=timeout) as session, session.get(url) as response:
            return await response.text()

    return asyncio.run(get())


def udp(host: str, port: str, data: str) -> str:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(TIMEOUT)
        sock.connect((host, int(port)))
        sock.send(data.encode())
        reply = sock.recv(65535).decode()
        return f"{reply} peer={sock.getpeername()[0]}:{sock.getpeername()[1]}"


def udp_sendto(host: str, port: str, data: str) -> str:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(TIMEOUT)
        sock.connect((host, int(port)))
        sock.sendto(data.encode(), (host, int(port)))
        reply, sender = sock.recvfrom(65535)
        return f"{reply.decode()} from={sender[0]}:{sender[1]}"


def resolve(name: str) -> list[str]:
    return sorted({str(info[4][0]) for info in socket.getaddrinfo(name, None)})


def names(host: str, port: str) -> dict[str, Any]:
    with socket.create_connection((host, int(port)), timeout=TIMEOUT) as sock:
        return {"peer": list(sock.getpeername()), "local": list(sock.getsockname())}


def kernel_peer(host: str, port: str) -> str:
    """The peer the kernel reports (not the layer's view): shows whether the socket is really the pod's."""
    import _socket

    with socket.create_connection((host, int(port)), timeout=TIMEOUT) as sock:
        return str(_socket.socket.getpeername(sock)[0])


def nonblocking(host: str, port: str) -> str:
    with socket.socket() as sock:
        sock.setblocking(False)
        code = sock.connect_ex((host, int(port)))
        if code not in (0, 115):  # EINPROGRESS
            return f"connect_ex={code}"
        select.select([], [sock], [], TIMEOUT)
        status = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        sock.setblocking(True)
        sock.settimeout(TIMEOUT)
        sock.sendall(f"GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
        body = data.split(b"\r\n\r\n", 1)[1].decode()
        return f"status={status} body={body}"


KINDS: dict[str, Callable[..., Any]] = {
    "requests": http_requests,
    "urllib": http_urllib,
    "asyncio": http_asyncio,
    "aiohttp": http_aiohttp,
    "udp": udp,
    "udp_sendto": udp_sendto,
    "resolve": resolve,
    "gethostbyname": socket.gethostbyname,
    "gethostbyname_ex": lambda name: list(socket.gethostbyname_ex(name)),
    "names": names,
    "kernel_peer": kernel_peer,
    "nonblocking": nonblocking,
}


def main() -> None:
    results: dict[str, Any] = {}
    for key, kind, *args in json.loads(sys.argv[1]):
        try:
            results[key] = KINDS[kind](*args)
        except Exception as error:
            results[key] = f"error:{type(error).__name__}:{getattr(error, 'errno', None)}"
    print("RESULT " + json.dumps(results), flush=True)


if __name__ == "__main__":
    main()
