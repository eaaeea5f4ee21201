"""Bench app: a TCP server that reads each client to its end into one reused buffer, then answers the count.

usage: peer_sink.py HOST PORT    (port 0: any; prints ``ready PORT`` once listening)
The far peer of the outgoing benchmark's uploads. It allocates nothing per read, so its speed does not
depend on the allocator's state: an asyncio sink (``sink.py``) switched between 6.3 and 2.0 GB/s at a
random point of a run as glibc's heap changed under it, and the paths measured after the switch were
compared with a direct figure measured before it.
"""

from __future__ import annotations

import socket

from source import serve_threads

BUFFER = 1 << 20


def serve(connection: socket.socket) -> None:
    with connection:
        buffer = bytearray(BUFFER)
        total = 0
        while count := connection.recv_into(buffer):
            total += count
        connection.sendall(str(total).encode())


if __name__ == "__main__":
    serve_threads(serve)
