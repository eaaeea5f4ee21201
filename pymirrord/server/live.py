"""Live sessions started by ``prepareLaunch``: agent, relay and the watch that ends them.

A session ends when the debugged process and its children have exited (the last layer disconnected and
none came back within ``GRACE``), when no process connected at all within ``FIRST_LAYER_TIMEOUT``, when the
agent is lost, on ``stopSession``, or when the helper exits. Every path stops the agent (which removes its
iptables rules), closes the relay and removes the socket's folder.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import secrets
import shutil
import signal
import tempfile
import time
from collections.abc import Callable, Sequence
from typing import Any

from pymirrord.config import ResolvedConfig
from pymirrord.errors import PymirrordError
from pymirrord.http_sniffer import RequestSniffer
from pymirrord.kube.progress import CallbackProgress
from pymirrord.remote_env import TargetEnvironment
from pymirrord.server.errors import NOT_PERMITTED, SESSION_FAILED, UNKNOWN_SESSION, HelperError
from pymirrord.server.http_filter import HttpRequestHead, match_request
from pymirrord.server.request_batches import RequestBatches
from pymirrord.server.session_record import LAST_REQUESTS, SessionRecord
from pymirrord.session.errors import NotPermitted
from pymirrord.session.local_agent import LocalAgent
from pymirrord.session.opening import OpenSession, open_session
from pymirrord.session.session import (
    ConnectionEvent,
    RequestEvent,
    SessionEvent,
    SessionObserver,
)

# After the last process of a run disconnects, how long a new one (an exec'd child, a reloader) may take.
GRACE = 1.5
# How long a prepared session waits for the debugged process to start and connect.
FIRST_LAYER_TIMEOUT = 120.0

Notify = Callable[[dict[str, Any]], None]
Progress = Callable[[str, int], None]


class LiveSession(SessionObserver):
    """One session of the helper: its record, its agent and relay, and the task that decides when it ends.

    It observes its relay (``SessionObserver``) to learn the processes, connections and requests it reports.
    """

    def __init__(self, record: SessionRecord, config: ResolvedConfig, notify: Notify) -> None:
        self.record = record
        self.config = config
        self._notify = notify
        self.opened: OpenSession | None = None
        self.workdir = tempfile.mkdtemp(prefix="pymirrord-lsp-")  # 0700: only this user reaches the socket
        self.socket_path = os.path.join(self.workdir, "layer.sock")
        self._open_layers = 0
        self._seen_layer = False
        self._layers_changed = asyncio.Event()
        self._watch: asyncio.Task[None] | None = None
        self._closing: asyncio.Task[None] | None = None
        self.ended = asyncio.Event()
        self._connections: dict[int, tuple[int, str, RequestSniffer]] = {}
        self.on_end: Callable[[LiveSession], None] | None = None
        self._requests = RequestBatches(record.session_id, LAST_REQUESTS)
        self._requests_flush: asyncio.TimerHandle | None = None

    # Start ----------------------------------------------------------------------------------------------

    async def start(self, progress: Progress) -> None:
        """Start agent and relay; on any failure or cancellation, everything started is stopped again."""
        target = self.record.target
        try:
            progress(f"starting the agent for {target}", 10)
            # A Kubernetes agent reports its own steps (Job created, scheduled, pulling, port-forward).
            steps = CallbackProgress(lambda event: progress(event.message or event.title or "", 40))
            self.opened = await open_session(
                self.config,
                socket_path=self.socket_path,
                name=f"editor {self.record.session_id}",
                on_event=self.on_session_event,
                progress=steps,
                observer=self,
                # The editor shows each request and byte of a session: a relay must see them (the agent's,
                # which reports them, or the session's), so no socket is handed over past both.
                handover=False,
            )
            progress("session ready", 100)
        except BaseException as error:
            await asyncio.shield(self._release())
            if isinstance(error, NotPermitted):
                raise HelperError(error.message, error.hint, code=NOT_PERMITTED) from None
            if isinstance(error, PymirrordError):
                raise HelperError(
                    f"the session for {target} could not start: {error.message}",
                    error.hint or "check the target, then start again",
                    code=SESSION_FAILED,
                ) from None
            raise
        self._emit(self.record.note_ready())
        self._watch = asyncio.create_task(
            self._watch_lifetime(), name=f"pymirrord-session-{self.record.session_id}"
        )

    @property
    def environment(self) -> TargetEnvironment:
        """What ``feature.env`` took from the target and the env file (empty before the start)."""
        return self.opened.environment if self.opened is not None else TargetEnvironment()

    def note_environment(self, from_target: tuple[str, ...]) -> None:
        """The names (never values) of the launch's variables that came from the target."""
        self._emit(self.record.note_environment(from_target))

    # Events from the relay ------------------------------------------------------------------------------

    def _emit(self, event: dict[str, Any] | None) -> None:
        if event is not None:
            self._notify(event)

    def on_session_event(self, event: SessionEvent) -> None:
        if event.kind == "port" and event.port is not None and event.mode is not None:
            self._emit(self.record.note_port(event.port, event.mode.value))
        elif event.kind == "agent-lost":
            self._layers_changed.set()
        else:
            self._emit({"sessionId": self.record.session_id, "kind": "log", "message": event.message})

    def layer_connected(self, pid: int, parent_pid: int) -> None:
        self._open_layers += 1
        self._seen_layer = True
        self._emit(self.record.note_layer(pid, parent_pid))
        self._layers_changed.set()

    def layer_gone(self, pid: int) -> None:
        self._open_layers -= 1
        self._emit(self.record.note_layer_gone(pid))
        self._layers_changed.set()

    def connection(self, event: ConnectionEvent) -> None:
        if event.kind == "opened":
            assert event.port is not None and event.mode is not None
            mode = event.mode.value
            self._connections[event.connection_id] = (event.port, mode, RequestSniffer())
            self._emit(self.record.note_connection(event.connection_id, event.port, mode, str(event.client)))
        elif event.kind == "data":
            self._sniff(event.connection_id, event.data)
        elif event.kind == "closed":
            self._connections.pop(event.connection_id, None)

    def wants_data(self, connection_id: int) -> bool:
        # Bytes are counted without the tap: it serves the sniffer only, which may have stopped looking.
        known = self._connections.get(connection_id)
        return known is not None and not known[2].stopped

    def request(self, event: RequestEvent) -> None:
        # Routed by the agent's filter: it matched, and the agent says which part did.
        note = self.record.note_request(
            event.request_id, event.port, event.mode.value, method=event.method, path=event.path, matched=True
        )
        self._emit_request(note)

    def requests_served(self, count: int, last: Sequence[RequestEvent]) -> None:
        self._count_unlisted(count - len(last))
        for event in last:
            self.request(event)

    def requests_seen(self, count: int, last: Sequence[tuple[int, str, str]]) -> None:
        # The agent found them in stolen connections it relays straight to the app: no filter decided
        # them, so none is "matched".
        self._count_unlisted(count - len(last))
        for connection_id, method, target in last:
            known = self._connections.get(connection_id)
            port, mode = (known[0], known[1]) if known is not None else (0, "steal")
            self._emit_request(
                self.record.note_request(connection_id, port, mode, method=method, path=target, matched=None)
            )

    def _count_unlisted(self, unlisted: int) -> None:
        """Stolen requests the agent told of by number only (under load most are: the view lists no more
        than the last few anyway)."""
        if unlisted > 0:
            self.record.note_unlisted_requests("steal", unlisted)
            self._requests.count("steal", unlisted, asyncio.get_running_loop().time())
            self._schedule_requests_flush()

    def _emit_request(self, note: dict[str, Any]) -> None:
        self._emit(self._requests.add(note, asyncio.get_running_loop().time()))
        self._schedule_requests_flush()

    def _schedule_requests_flush(self) -> None:
        due = self._requests.due
        if due is not None and self._requests_flush is None:
            self._requests_flush = asyncio.get_running_loop().call_at(due, self._flush_requests)

    def _flush_requests(self) -> None:
        self._requests_flush = None
        self._emit(self._requests.flush(asyncio.get_running_loop().time()))

    def _sniff(self, connection_id: int, data: bytes) -> None:
        known = self._connections.get(connection_id)
        if known is None:
            return
        port, mode, sniffer = known
        http_filter = self.config.incoming.http_filter
        for request in sniffer.feed(data):
            matched = None
            if http_filter is not None and port in http_filter.ports:
                head = HttpRequestHead(request.method, request.target, request.headers)
                matched = match_request(http_filter, head).stolen
            self._emit_request(
                self.record.note_request(
                    connection_id, port, mode, method=request.method, path=request.target, matched=matched
                )
            )

    # Lifetime -------------------------------------------------------------------------------------------

    async def _watch_lifetime(self) -> None:
        reason = await self._wait_for_end()
        await self.close(reason)

    async def _wait_for_end(self) -> str:
        assert self.opened is not None
        lost = self.opened.session.agent_lost
        while True:
            if lost.is_set():
                return "lost the agent"
            self._layers_changed.clear()
            if self._open_layers > 0:
                await self._layers_changed.wait()
                continue
            timeout = GRACE if self._seen_layer else FIRST_LAYER_TIMEOUT
            try:
                await asyncio.wait_for(self._layers_changed.wait(), timeout)
            except TimeoutError:
                if self._seen_layer:
                    return "the debugged process exited"
                return f"no process connected within {FIRST_LAYER_TIMEOUT:g} s"

    async def close(self, reason: str) -> None:
        """End the session (once; later calls wait for the first)."""
        if self._closing is None:
            self._closing = asyncio.ensure_future(self._close(reason))
        await asyncio.shield(self._closing)

    async def _close(self, reason: str) -> None:
        if self._watch is not None and self._watch is not asyncio.current_task():
            self._watch.cancel()
        await self._release()
        if self._requests_flush is not None:
            self._requests_flush.cancel()
        self._flush_requests()  # the requests still waiting are told before the end
        self._emit(self.record.note_ended(reason))
        self.ended.set()
        if self.on_end is not None:
            self.on_end(self)

    async def _release(self) -> None:
        if self.opened is not None:
            counters = self.opened.session.state.counters
            self.record.bytes_in, self.record.bytes_out = counters.bytes_in, counters.bytes_out
            with contextlib.suppress(Exception):
                await self.opened.close()
        shutil.rmtree(self.workdir, ignore_errors=True)

    def release_now(self) -> None:
        """Synchronous last-resort cleanup when the helper exits without its event loop."""
        agent = self.opened.agent if self.opened is not None else None
        if isinstance(agent, LocalAgent) and agent.process.returncode is None:
            _stop_pid(agent.process.pid)
        # A Kubernetes agent notices its session is gone and exits; its Job's TTL removes the Job.
        shutil.rmtree(self.workdir, ignore_errors=True)

    def summary(self) -> dict[str, Any]:
        if self.opened is not None and self.record.state != "ended":
            counters = self.opened.session.state.counters
            self.record.bytes_in, self.record.bytes_out = counters.bytes_in, counters.bytes_out
        return self.record.to_json()


def _stop_pid(pid: int, grace: float = 5.0) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        try:
            done, _ = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            return
        if done:
            return
        time.sleep(0.02)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, 0)


class SessionManager:
    """Every live session of this helper, by id."""

    def __init__(self, notify: Notify) -> None:
        self._notify = notify
        self._sessions: dict[str, LiveSession] = {}
        self._ids = itertools.count(1)

    def new_id(self) -> str:
        return f"s{next(self._ids)}-{secrets.token_hex(3)}"

    async def start(self, config: ResolvedConfig, config_path: str | None, progress: Progress) -> LiveSession:
        target = config.target.path
        assert target is not None
        record = SessionRecord(self.new_id(), target, config.incoming.mode, config_path)
        live = LiveSession(record, config, self._notify)
        self._sessions[record.session_id] = live
        live.on_end = self._forget
        try:
            await live.start(progress)
        except BaseException:
            self._sessions.pop(record.session_id, None)
            raise
        return live

    def _forget(self, live: LiveSession) -> None:
        self._sessions.pop(live.record.session_id, None)

    def get(self, session_id: str) -> LiveSession:
        live = self._sessions.get(session_id)
        if live is None:
            raise HelperError(
                f"no live session {session_id!r}",
                "it has ended already; pymirrord/sessions lists the live ones",
                code=UNKNOWN_SESSION,
            )
        return live

    async def stop(self, session_id: str) -> dict[str, Any]:
        live = self.get(session_id)
        await live.close("stopped from the editor")
        return live.summary()

    async def close_all(self, reason: str) -> None:
        await asyncio.gather(*(live.close(reason) for live in list(self._sessions.values())))

    def release_all_now(self) -> None:
        for live in list(self._sessions.values()):
            live.release_now()
        self._sessions.clear()

    def summaries(self) -> list[dict[str, Any]]:
        return [live.summary() for live in self._sessions.values()]
