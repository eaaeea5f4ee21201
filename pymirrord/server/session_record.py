"""What the helper tells the editor about one live session: plain bookkeeping, no I/O.

The live session feeds events in (a layer connected, a port became served, a connection arrived, a
request was seen); ``to_json`` is what ``pymirrord/sessions`` returns for it, and each ``note_*`` returns
the ``pymirrord/sessionEvent`` payload to send, if any.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from pymirrord.protocol.agent_to_session import SERVED_LISTED

LAST_REQUESTS = SERVED_LISTED
"""Requests the view lists: as many as the agent describes in each note of the requests it served."""


@dataclass
class SessionRecord:
    session_id: str
    target: str
    mode: str
    config_path: str | None
    started_at: float = field(default_factory=time.time)
    state: str = "starting"
    ended_reason: str | None = None
    layers: dict[int, int] = field(default_factory=dict)  # layer pid -> parent pid
    ports: dict[int, str] = field(default_factory=dict)
    connections: dict[str, int] = field(default_factory=lambda: {"mirror": 0, "steal": 0})
    requests: dict[str, int] = field(default_factory=lambda: {"mirror": 0, "steal": 0})
    bytes_in: int = 0
    bytes_out: int = 0
    last_requests: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=LAST_REQUESTS))
    remote_env: tuple[str, ...] = ()  # names of the variables taken from the target; never their values

    def _event(self, kind: str, **details: Any) -> dict[str, Any]:
        return {"sessionId": self.session_id, "kind": kind, **details}

    def note_ready(self) -> dict[str, Any]:
        self.state = "ready"
        return self._event("ready", target=self.target, mode=self.mode)

    def note_layer(self, pid: int, parent_pid: int) -> dict[str, Any]:
        self.layers[pid] = parent_pid
        return self._event("process", pid=pid, parentPid=parent_pid, connected=True)

    def note_layer_gone(self, pid: int | None) -> dict[str, Any] | None:
        if pid is None or self.layers.pop(pid, None) is None:
            return None
        return self._event("process", pid=pid, connected=False)

    def note_port(self, port: int, mode: str) -> dict[str, Any]:
        self.ports[port] = mode
        return self._event("port", port=port, mode=mode)

    def note_connection(self, connection_id: int, port: int, mode: str, client: str) -> dict[str, Any]:
        self.connections[mode] = self.connections.get(mode, 0) + 1
        return self._event("connection", connectionId=connection_id, port=port, mode=mode, client=client)

    def note_request(
        self, connection_id: int, port: int, mode: str, *, method: str, path: str, matched: bool | None
    ) -> dict[str, Any]:
        self.requests[mode] = self.requests.get(mode, 0) + 1
        entry = {
            "at": time.time(),
            "connectionId": connection_id,
            "port": port,
            "mode": mode,
            "method": method,
            "path": path,
            "matched": matched,
        }
        self.last_requests.append(entry)
        return self._event("request", **entry)

    def note_unlisted_requests(self, mode: str, count: int) -> None:
        """``count`` more requests that no entry of ``last_requests`` describes (they were not the last)."""
        self.requests[mode] = self.requests.get(mode, 0) + count

    def note_environment(self, names: tuple[str, ...]) -> dict[str, Any]:
        self.remote_env = tuple(sorted(names))
        return self._event("environment", remoteEnv=list(self.remote_env))

    def note_ended(self, reason: str) -> dict[str, Any]:
        self.state = "ended"
        self.ended_reason = reason
        return self._event("ended", reason=reason)

    def to_json(self) -> dict[str, Any]:
        return {
            "sessionId": self.session_id,
            "target": self.target,
            "mode": self.mode,
            "configPath": self.config_path,
            "state": self.state,
            "startedAt": self.started_at,
            "processes": sorted(self.layers),
            "ports": [{"port": port, "mode": mode} for port, mode in sorted(self.ports.items())],
            "connections": dict(self.connections),
            "requests": dict(self.requests),
            "bytes": {"in": self.bytes_in, "out": self.bytes_out},
            "lastRequests": list(self.last_requests),
            "remoteEnv": list(self.remote_env),
        }
