"""Forks: the child listens on port 81 and exits; then the parent listens on port 82.

Each listen must reach the session over the process's own connection: the child's new one, and the
parent's original one, which the child's exit must not have disturbed.
"""

from __future__ import annotations

import os
import socket


def listen(port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("0.0.0.0", port))
    sock.listen()
    return sock


def main() -> None:
    print(f"parent {os.getpid()}", flush=True)
    child = os.fork()
    if child == 0:
        listen(81)
        print(f"child {os.getpid()} listening", flush=True)
        os._exit(0)
    _pid, status = os.waitpid(child, 0)
    listener = listen(82)
    print(f"parent listening, child exited with {os.waitstatus_to_exitcode(status)}", flush=True)
    listener.close()


if __name__ == "__main__":
    main()
