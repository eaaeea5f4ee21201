"""A small Debug Adapter Protocol client: drives ``python -m debugpy.adapter`` over stdio, as VS Code does.

VS Code starts the adapter itself (with its own environment, not the launch's) and sends ``launch`` with the
debug configuration, ``env`` included; the adapter starts the debuggee with that environment and the debuggee
connects back to the adapter over loopback.
"""

from __future__ import annotations

import itertools
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from pymirrord.server.rpc_client import frame, read_message


class DapClient:
    def __init__(self, argv: Sequence[str], env: Mapping[str, str] | None = None) -> None:
        self.process = subprocess.Popen(
            list(argv), stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=dict(env) if env else None
        )
        self._seq = itertools.count(1)
        self._lock = threading.Condition()
        self._responses: dict[int, dict[str, Any]] = {}
        self.events: list[dict[str, Any]] = []
        self._closed = False
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        while (message := read_message(self.process.stdout)) is not None:
            with self._lock:
                if message["type"] == "response":
                    self._responses[message["request_seq"]] = message
                elif message["type"] == "event":
                    self.events.append(message)
                self._lock.notify_all()
        with self._lock:
            self._closed = True
            self._lock.notify_all()

    def send(self, command: str, arguments: Mapping[str, Any] | None = None) -> int:
        seq = next(self._seq)
        assert self.process.stdin is not None
        message = {"seq": seq, "type": "request", "command": command, "arguments": dict(arguments or {})}
        self.process.stdin.write(frame(message))
        self.process.stdin.flush()
        return seq

    def response(self, seq: int, timeout: float = 30.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        with self._lock:
            while seq not in self._responses:
                left = deadline - time.monotonic()
                if left <= 0 or self._closed:
                    raise TimeoutError(f"no DAP response to request {seq}")
                self._lock.wait(left)
            response = self._responses.pop(seq)
        if not response.get("success"):
            raise AssertionError(f"DAP request failed: {response}")
        return response

    def request(self, command: str, arguments: Mapping[str, Any] | None = None) -> dict[str, Any]:
        return self.response(self.send(command, arguments))

    def event(self, name: str, predicate: Callable[[Any], bool] | None = None, timeout: float = 30.0) -> Any:
        deadline = time.monotonic() + timeout
        with self._lock:
            while True:
                for event in self.events:
                    if event["event"] == name and (predicate is None or predicate(event.get("body"))):
                        return event.get("body")
                left = deadline - time.monotonic()
                if left <= 0 or self._closed:
                    output = "".join(
                        e["body"].get("output", "") for e in self.events if e["event"] == "output"
                    )
                    raise TimeoutError(
                        f"no DAP {name} event within {timeout:g} s; debuggee output:\n{output}"
                    )
                self._lock.wait(left)

    def output(self, text: str, timeout: float = 30.0) -> str:
        body = self.event("output", lambda b: text in b.get("output", ""), timeout)
        return str(body["output"])

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
