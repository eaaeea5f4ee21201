"""A small synchronous JSON-RPC client for the helper over stdio: for scripts, tests and the benchmark.

It starts ``pymirrord lsp`` (or any argv), frames messages with ``Content-Length`` headers, collects
notifications, and answers the few requests a helper sends to its client (progress tokens, applied edits,
message choices) the way a simple editor would.
"""

from __future__ import annotations

import itertools
import json
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import IO, Any


class RpcError(Exception):
    """An error response: ``code``, ``message`` and ``data`` as the helper sent them."""

    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.data = data


def read_message(stream: IO[bytes]) -> dict[str, Any] | None:
    """One framed message, or None at the end of the stream."""
    length = None
    while True:
        line = stream.readline()
        if not line:
            return None
        line = line.strip()
        if not line:
            break
        name, _, value = line.decode("ascii").partition(":")
        if name.lower() == "content-length":
            length = int(value.strip())
    if length is None:
        raise ValueError("a message without Content-Length")
    body = stream.read(length)
    message: dict[str, Any] = json.loads(body)
    return message


def frame(message: Mapping[str, Any]) -> bytes:
    body = json.dumps(message).encode("utf-8")
    return b"Content-Length: %d\r\n\r\n%s" % (len(body), body)


class HelperClient:
    """One helper process and the conversation with it."""

    def __init__(
        self,
        argv: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        cwd: str | None = None,
        choose: Callable[[list[str]], str | None] | None = None,
    ) -> None:
        self.process = subprocess.Popen(
            list(argv),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=dict(env) if env is not None else None,
            cwd=cwd,
        )
        self._ids = itertools.count(1)
        self._lock = threading.Condition()
        self._responses: dict[int | str, dict[str, Any]] = {}
        self.notifications: list[dict[str, Any]] = []
        self.applied_edits: list[dict[str, Any]] = []
        self.server_requests: list[dict[str, Any]] = []
        self.stderr_lines: list[str] = []
        self._choose = choose or (lambda titles: titles[0] if titles else None)
        self._closed = False
        threading.Thread(target=self._read, daemon=True).start()
        threading.Thread(target=self._read_stderr, daemon=True).start()

    # Transport --------------------------------------------------------------------------------------------

    def _send(self, message: Mapping[str, Any]) -> None:
        assert self.process.stdin is not None
        with self._lock:
            self.process.stdin.write(frame({"jsonrpc": "2.0", **message}))
            self.process.stdin.flush()

    def _read(self) -> None:
        assert self.process.stdout is not None
        while True:
            try:
                message = read_message(self.process.stdout)
            except (ValueError, OSError):
                message = None
            if message is None:
                with self._lock:
                    self._closed = True
                    self._lock.notify_all()
                return
            if "method" in message and "id" in message:
                self._answer(message)
                continue
            with self._lock:
                if "method" in message:
                    self.notifications.append(message)
                else:
                    self._responses[message["id"]] = message
                self._lock.notify_all()

    def _read_stderr(self) -> None:
        assert self.process.stderr is not None
        for raw in self.process.stderr:
            self.stderr_lines.append(raw.decode("utf-8", "replace").rstrip())

    def _answer(self, request: dict[str, Any]) -> None:
        """Answer a request from the helper as a plain editor would."""
        method = request["method"]
        with self._lock:
            self.server_requests.append(request)
        result: Any = None
        if method == "workspace/applyEdit":
            with self._lock:
                self.applied_edits.append(request["params"]["edit"])
            result = {"applied": True}
        elif method == "window/showMessageRequest":
            titles = [item["title"] for item in request["params"].get("actions") or []]
            chosen = self._choose(titles)
            result = {"title": chosen} if chosen is not None else None
        self._send({"id": request["id"], "result": result})

    # Requests ---------------------------------------------------------------------------------------------

    def send_request(self, method: str, params: Any = None) -> int:
        request_id = next(self._ids)
        self._send({"id": request_id, "method": method, "params": params})
        return request_id

    def wait_response(self, request_id: int, timeout: float = 30.0) -> Any:
        deadline = time.monotonic() + timeout
        with self._lock:
            while request_id not in self._responses:
                left = deadline - time.monotonic()
                if left <= 0 or self._closed:
                    raise TimeoutError(self._why(f"no answer to request {request_id} within {timeout:g} s"))
                self._lock.wait(left)
            response = self._responses.pop(request_id)
        if "error" in response:
            error = response["error"]
            raise RpcError(error["code"], error["message"], error.get("data"))
        return response.get("result")

    def request(self, method: str, params: Any = None, timeout: float = 30.0) -> Any:
        return self.wait_response(self.send_request(method, params), timeout)

    def notify(self, method: str, params: Any = None) -> None:
        self._send({"method": method, "params": params})

    def cancel(self, request_id: int) -> None:
        self.notify("$/cancelRequest", {"id": request_id})

    def wait_notification(
        self, method: str, predicate: Callable[[Any], bool] | None = None, timeout: float = 30.0
    ) -> Any:
        """The params of the first notification of ``method`` (matching ``predicate``), seen or to come."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while True:
                for message in self.notifications:
                    if message["method"] == method and (
                        predicate is None or predicate(message.get("params"))
                    ):
                        return message.get("params")
                left = deadline - time.monotonic()
                if left <= 0 or self._closed:
                    raise TimeoutError(self._why(f"no {method} notification within {timeout:g} s"))
                self._lock.wait(left)

    def requests_told(self, mode: str) -> int:
        """The requests of ``mode`` the ``pymirrord/sessionEvent`` notifications so far told of, one by one
        (``request``) or in batches (``requests``)."""
        total = 0
        with self._lock:
            for message in self.notifications:
                params = message.get("params") or {}
                if message["method"] != "pymirrord/sessionEvent":
                    continue
                if params.get("kind") == "request" and params.get("mode") == mode:
                    total += 1
                elif params.get("kind") == "requests":
                    total += int(params.get("counts", {}).get(mode, 0))
        return total

    def _why(self, what: str) -> str:
        tail = "\n".join(self.stderr_lines[-20:])
        return f"{what}; helper stderr:\n{tail}" if tail else what

    # LSP conveniences -------------------------------------------------------------------------------------

    def initialize(self, root_uri: str | None = None, *, progress: bool = True) -> Any:
        result = self.request(
            "initialize",
            {
                "processId": None,
                "rootUri": root_uri,
                "capabilities": {
                    "window": {"workDoneProgress": progress},
                    "workspace": {"applyEdit": True},
                    "textDocument": {"publishDiagnostics": {"relatedInformation": False}},
                },
            },
        )
        self.notify("initialized", {})
        return result

    def open(self, uri: str, text: str, language_id: str = "json", version: int = 1) -> None:
        self.notify(
            "textDocument/didOpen",
            {"textDocument": {"uri": uri, "languageId": language_id, "version": version, "text": text}},
        )

    def change(self, uri: str, text: str, version: int) -> None:
        self.notify(
            "textDocument/didChange",
            {"textDocument": {"uri": uri, "version": version}, "contentChanges": [{"text": text}]},
        )

    def diagnostics(
        self, uri: str, version: int | None = None, timeout: float = 30.0
    ) -> list[dict[str, Any]]:
        """The diagnostics published for ``uri`` (for ``version``, when given); consumed once read."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while True:
                for message in self.notifications:
                    params = message.get("params") or {}
                    if (
                        message["method"] == "textDocument/publishDiagnostics"
                        and params.get("uri") == uri
                        and (version is None or params.get("version") == version)
                    ):
                        self.notifications.remove(message)
                        found: list[dict[str, Any]] = params["diagnostics"]
                        return found
                left = deadline - time.monotonic()
                if left <= 0 or self._closed:
                    raise TimeoutError(self._why(f"no diagnostics for {uri} within {timeout:g} s"))
                self._lock.wait(left)

    def close(self, timeout: float = 20.0) -> int:
        """shutdown, exit, and wait for the process; kills it if it does not go."""
        if self.process.poll() is None:
            try:
                self.request("shutdown", None, timeout=timeout)
                self.notify("exit")
            except (TimeoutError, RpcError, OSError):
                pass
            try:
                return self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
        return self.process.wait()
