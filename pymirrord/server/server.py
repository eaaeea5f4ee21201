"""The pygls server: LSP features for config files and pymirrord's own requests, each a one-liner over the
pure functions of this package. ``docs/helper-protocol.md`` documents the requests.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import importlib
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, BinaryIO, TypeVar, cast

from lsprotocol import types
from pygls.exceptions import JsonRpcException
from pygls.lsp.server import LanguageServer
from pygls.protocol import JsonRPCNotification, JsonRPCRequestMessage, default_converter

from pymirrord import __version__, event_loop
from pymirrord.open_files import raise_open_files_limit
from pymirrord.server.commands import CHOOSE_TARGET_COMMAND, EDIT_FILTER_COMMAND, SET_TARGET_COMMAND
from pymirrord.server.documents import config_format, uri_to_path
from pymirrord.server.errors import INVALID_PARAMS, HelperError
from pymirrord.server.stdout_batch import TurnFlushedStdout
from pymirrord.server.text_positions import Encoding, TextPositions

if TYPE_CHECKING:
    from pymirrord.config.load import CheckResult
    from pymirrord.config.sources import Format
    from pymirrord.server.live import SessionManager
    from pymirrord.server.targets import Listing

# The heavy modules (the config engine with jsonschema, the session with websockets) are imported after
# ``initialized``, in the background: the editor gets its answer to ``initialize`` sooner.
_WARM_UP = (
    "pymirrord.server.diagnostics",
    "pymirrord.server.completion",
    "pymirrord.server.hover",
    "pymirrord.server.code_actions",
    "pymirrord.server.targets",
    "pymirrord.server.launch",
    "pymirrord.server.live",
    "pymirrord.server.http_filter",
)

SESSION_EVENT = "pymirrord/sessionEvent"
# Local targets change rarely; completion may reuse a listing this young.
TARGET_CACHE_SECONDS = 5.0
KUBE_TIMEOUT = 10.0

log = logging.getLogger("pymirrord.server")


def _converter() -> Any:
    """pygls' converter, except that params of pymirrord's own methods stay plain JSON (dicts and lists)."""
    converter = default_converter()  # type: ignore[no-untyped-call]

    def keep(data: dict[str, Any], cls: type[Any]) -> Any:
        return cls(**data)

    converter.register_structure_hook(JsonRPCRequestMessage, keep)
    converter.register_structure_hook(JsonRPCNotification, keep)
    return converter


class HelperServer(LanguageServer):
    def __init__(self) -> None:
        super().__init__("pymirrord", __version__, converter_factory=_converter)
        self._sessions: SessionManager | None = None
        self._local_cache: tuple[float, Listing] | None = None
        self._kube_paths: list[str] = []

    @property
    def sessions(self) -> SessionManager:
        if self._sessions is None:
            from pymirrord.server.live import SessionManager

            self._sessions = SessionManager(self._session_event)
        return self._sessions

    def _session_event(self, event: dict[str, Any]) -> None:
        self.protocol.notify(SESSION_EVENT, event)

    # Helpers ----------------------------------------------------------------------------------------------

    @property
    def encoding(self) -> Encoding:
        value = str(
            getattr(self.workspace.position_encoding, "value", self.workspace.position_encoding) or ""
        )
        return "utf-8" if value == "utf-8" else "utf-32" if value == "utf-32" else "utf-16"

    def local_listing(self) -> Listing:
        now = time.monotonic()
        if self._local_cache is None or now - self._local_cache[0] > TARGET_CACHE_SECONDS:
            from pymirrord.server.targets import local_targets

            self._local_cache = (now, local_targets())
        return self._local_cache[1]

    def target_paths(self) -> list[str]:
        return [*self.local_listing().paths(), *self._kube_paths]

    def document(self, uri: str) -> tuple[str, Any, TextPositions] | None:
        """The text, format and positions of an open config document; None for other documents."""
        document = self.workspace.get_text_document(uri)
        fmt = config_format(uri, document.language_id)
        if fmt is None:
            return None
        return document.source, fmt, TextPositions(document.source, self.encoding)

    def publish(self, uri: str) -> None:
        document = self.workspace.get_text_document(uri)
        fmt = config_format(uri, document.language_id)
        if fmt is None:
            return
        from pymirrord.server.diagnostics import config_diagnostics

        diagnostics = config_diagnostics(document.source, uri_to_path(uri), fmt, self.encoding)
        self.text_document_publish_diagnostics(
            types.PublishDiagnosticsParams(uri=uri, diagnostics=diagnostics, version=document.version)
        )

    def shutdown(self) -> None:
        # The last exit path: whatever sessions are still live lose their agents now.
        if self._sessions is not None:
            self._sessions.release_all_now()
        super().shutdown()  # type: ignore[no-untyped-call]


F = TypeVar("F", bound=Callable[..., Awaitable[Any]])


def _rpc_errors(handler: F) -> F:
    """Turn the helper's errors into JSON-RPC errors whose message says what to do."""

    @functools.wraps(handler)
    async def wrapped(*args: Any) -> Any:
        try:
            return await handler(*args)
        except HelperError as error:
            raise JsonRpcException(
                message=error.rpc_message(), code=error.code, data=error.rpc_data()
            ) from None
        except ValueError as error:
            raise JsonRpcException(message=f"invalid params: {error}", code=INVALID_PARAMS) from None

    return wrapped  # type: ignore[return-value]


def _params(params: Any) -> dict[str, Any]:
    if params is None:
        return {}
    if not isinstance(params, dict):
        raise HelperError("params must be an object", code=INVALID_PARAMS)
    return params


server = HelperServer()


# Config documents ---------------------------------------------------------------------------------------


@server.feature(types.TEXT_DOCUMENT_DID_OPEN)
def did_open(ls: HelperServer, params: types.DidOpenTextDocumentParams) -> None:
    ls.publish(params.text_document.uri)


@server.feature(types.TEXT_DOCUMENT_DID_CHANGE)
def did_change(ls: HelperServer, params: types.DidChangeTextDocumentParams) -> None:
    ls.publish(params.text_document.uri)


@server.feature(types.TEXT_DOCUMENT_DID_SAVE)
def did_save(ls: HelperServer, params: types.DidSaveTextDocumentParams) -> None:
    ls.publish(params.text_document.uri)


@server.feature(types.TEXT_DOCUMENT_DID_CLOSE)
def did_close(ls: HelperServer, params: types.DidCloseTextDocumentParams) -> None:
    ls.text_document_publish_diagnostics(types.PublishDiagnosticsParams(params.text_document.uri, []))


@server.feature(
    types.TEXT_DOCUMENT_COMPLETION, types.CompletionOptions(trigger_characters=['"', "/", ":", " ", "="])
)
def on_completion(ls: HelperServer, params: types.CompletionParams) -> types.CompletionList | None:
    found = ls.document(params.text_document.uri)
    if found is None:
        return None
    text, fmt, positions = found
    offset = positions.offset(params.position.line, params.position.character)
    from pymirrord.server import completion

    return types.CompletionList(False, completion.complete(text, offset, fmt, ls.target_paths(), positions))


@server.feature(types.TEXT_DOCUMENT_HOVER)
def on_hover(ls: HelperServer, params: types.HoverParams) -> types.Hover | None:
    found = ls.document(params.text_document.uri)
    if found is None:
        return None
    text, fmt, positions = found
    from pymirrord.server import hover

    return hover.hover(
        text, positions.offset(params.position.line, params.position.character), fmt, positions
    )


@server.feature(
    types.TEXT_DOCUMENT_CODE_ACTION,
    types.CodeActionOptions(code_action_kinds=[types.CodeActionKind.QuickFix]),
)
def on_code_action(ls: HelperServer, params: types.CodeActionParams) -> list[types.CodeAction] | None:
    found = ls.document(params.text_document.uri)
    if found is None:
        return None
    text, fmt, positions = found
    uri = params.text_document.uri
    from pymirrord.server.code_actions import fixes, target_actions

    return [
        *fixes(uri, text, fmt, params.context.diagnostics, positions),
        *target_actions(uri, text, fmt, ls.target_paths(), positions),
    ]


@server.feature(types.TEXT_DOCUMENT_CODE_LENS)
def on_code_lens(ls: HelperServer, params: types.CodeLensParams) -> list[types.CodeLens] | None:
    found = ls.document(params.text_document.uri)
    if found is None:
        return None
    text, fmt, positions = found
    from pymirrord.server.filter_edit import filter_lens_offset

    line, character = positions.position(filter_lens_offset(text, fmt))
    at = types.Position(line, character)
    title = "Edit HTTP filter…"
    command = types.Command(title, EDIT_FILTER_COMMAND, arguments=[params.text_document.uri])
    return [types.CodeLens(types.Range(at, at), command)]


@server.command(SET_TARGET_COMMAND)
async def set_target_command(ls: HelperServer, *arguments: Any) -> dict[str, Any]:
    """``pymirrord.setTarget(uri, target)``: write ``target`` into the config document."""
    if len(arguments) != 2 or not all(isinstance(arg, str) for arg in arguments):
        raise JsonRpcException(message="pymirrord.setTarget takes [uri, target]", code=INVALID_PARAMS)
    uri, target = arguments
    found = ls.document(uri)
    if found is None:
        raise JsonRpcException(message=f"{uri} is not an open pymirrord config file", code=INVALID_PARAMS)
    text, fmt, positions = found
    from pymirrord.server.code_actions import set_target_edit

    edit = set_target_edit(uri, text, fmt, target, positions)
    if edit is None:
        raise JsonRpcException(
            message="cannot write the target: the file does not parse. Fix its syntax errors first.",
            code=INVALID_PARAMS,
        )
    result = await ls.workspace_apply_edit_async(types.ApplyWorkspaceEditParams(edit, label="Set target"))
    return {"applied": bool(getattr(result, "applied", False)), "target": target}


@server.command(CHOOSE_TARGET_COMMAND)
async def choose_target_command(ls: HelperServer, *arguments: Any) -> dict[str, Any] | None:
    """Any LSP client's picker: a message with one button per target (an extension may show its own)."""
    uri = arguments[0] if arguments and isinstance(arguments[0], str) else ""
    paths = ls.target_paths()
    if not paths:
        ls.window_show_message(
            types.ShowMessageParams(
                types.MessageType.Warning,
                "pymirrord: no targets found (network namespaces, local containers or Kubernetes workloads)",
            )
        )
        return None
    choice = await ls.window_show_message_request_async(
        types.ShowMessageRequestParams(
            types.MessageType.Info,
            "pymirrord: choose the target",
            [types.MessageActionItem(p) for p in paths[:12]],
        )
    )
    if choice is None:
        return None
    return await set_target_command(ls, uri, choice.title)


# pymirrord requests -------------------------------------------------------------------------------------


@server.feature("pymirrord/listTargets")
@_rpc_errors
async def list_targets(ls: HelperServer, params: Any) -> dict[str, Any]:
    request = _params(params)
    config = None
    config_uri = request.get("configUri")
    if isinstance(config_uri, str):
        config = _check_uri(ls, config_uri).config
    namespace = request.get("namespace") if isinstance(request.get("namespace"), str) else None
    ls._local_cache = None
    from pymirrord.server.targets import Listing, kubernetes_targets, merge

    try:
        kube = await asyncio.wait_for(asyncio.to_thread(kubernetes_targets, config, namespace), KUBE_TIMEOUT)
    except TimeoutError:
        kube = Listing(
            notes=(f"Kubernetes: no answer within {KUBE_TIMEOUT:g} s; only local targets are listed",)
        )
    ls._kube_paths = kube.paths()
    return merge(ls.local_listing(), kube).to_json()


def _check_uri(ls: HelperServer, uri: str) -> CheckResult:
    """The check of a config: the editor's unsaved text when the document is open, else the file."""
    from pymirrord.config import check_text
    from pymirrord.config.load import CheckResult, read_config_text

    path = uri_to_path(uri)
    document = ls.workspace.text_documents.get(uri)
    if document is not None:
        return check_text(
            document.source, filename=path, fmt=config_format(uri, document.language_id), read_files=True
        )
    text = read_config_text(path)
    if not isinstance(text, str):
        return CheckResult(None, (text,))
    return check_text(text, filename=path, read_files=True)


@server.feature("pymirrord/verifyConfig")
@_rpc_errors
async def verify_config(ls: HelperServer, params: Any) -> dict[str, Any]:
    uri = _params(params).get("uri")
    if not isinstance(uri, str):
        raise HelperError("verifyConfig needs uri: the config file's URI", code=INVALID_PARAMS)
    from pymirrord.config.verify import ide_payload

    return ide_payload(_check_uri(ls, uri))


@server.feature("pymirrord/testFilter")
@_rpc_errors
async def test_filter_request(ls: HelperServer, params: Any) -> dict[str, Any]:
    from pymirrord.server.http_filter import filter_report

    return filter_report(_params(params))


def _config_text(ls: HelperServer, uri: str) -> tuple[str, Format, int | None]:
    """A config's text (the editor's unsaved text when the document is open), format and version."""
    from pymirrord.config.load import read_config_text

    document = ls.workspace.text_documents.get(uri)
    fmt = config_format(uri, document.language_id if document is not None else None)
    if fmt is None:
        raise HelperError(
            f"{uri} is not a pymirrord config file", "open .mirrord/mirrord.json (or .toml, .yaml)"
        )
    if document is not None:
        return document.source, fmt, document.version
    text = read_config_text(uri_to_path(uri))
    if not isinstance(text, str):
        raise HelperError(text.message, text.hint)
    return text, fmt, None


def _uri_param(params: Any) -> str:
    uri = _params(params).get("uri")
    if not isinstance(uri, str):
        raise HelperError("uri is missing: the config file's URI", code=INVALID_PARAMS)
    return uri


@server.feature("pymirrord/filterDocument")
@_rpc_errors
async def filter_document_request(ls: HelperServer, params: Any) -> dict[str, Any]:
    from pymirrord.server.filter_edit import filter_document

    uri = _uri_param(params)
    text, fmt, version = _config_text(ls, uri)
    return {"uri": uri, "version": version, **filter_document(text, fmt)}


@server.feature("pymirrord/filterEdit")
@_rpc_errors
async def filter_edit_request(ls: HelperServer, params: Any) -> dict[str, Any]:
    from pymirrord.server.filter_edit import filter_edit

    uri = _uri_param(params)
    if "filter" not in _params(params):
        raise HelperError("filter is missing: an http_filter object, or null for none", code=INVALID_PARAMS)
    text, fmt, version = _config_text(ls, uri)
    edit = filter_edit(text, fmt, _params(params)["filter"])
    edits = []
    if edit is not None:
        positions = TextPositions(text, ls.encoding)
        (start_line, start_char), (end_line, end_char) = (
            positions.position(edit.start),
            positions.position(edit.end),
        )
        edits.append(
            {
                "range": {
                    "start": {"line": start_line, "character": start_char},
                    "end": {"line": end_line, "character": end_char},
                },
                "newText": edit.new_text,
            }
        )
    return {"uri": uri, "version": version, "edits": edits}


@server.feature("pymirrord/sessions")
@_rpc_errors
async def list_sessions(ls: HelperServer, params: Any) -> dict[str, Any]:
    return {"sessions": ls.sessions.summaries()}


@server.feature("pymirrord/stopSession")
@_rpc_errors
async def stop_session(ls: HelperServer, params: Any) -> dict[str, Any]:
    session_id = _params(params).get("sessionId")
    if not isinstance(session_id, str):
        raise HelperError("stopSession needs sessionId", code=INVALID_PARAMS)
    return {"stopped": True, "session": await ls.sessions.stop(session_id)}


@server.feature("pymirrord/prepareLaunch")
@_rpc_errors
async def prepare_launch(ls: HelperServer, params: Any) -> dict[str, Any]:
    from pymirrord.server.launch import check_files, launch_environment, parse_launch, resolve_launch_config

    request = parse_launch(params)
    check_files(request)
    config, warnings = resolve_launch_config(request, os.environ)
    progress = await _Progress.open(
        ls, _params(params).get("workDoneToken"), f"pymirrord: {config.target.path}"
    )
    try:
        live = await ls.sessions.start(config, request.config_path, progress.report)
    except BaseException as error:
        progress.end("cancelled" if isinstance(error, asyncio.CancelledError) else "failed")
        raise
    progress.end("ready")
    environment = launch_environment(config, live.socket_path, request, os.environ, live.environment)
    live.note_environment(environment.from_target)
    return {
        "sessionId": live.record.session_id,
        "env": environment.set,
        "envToUnset": environment.unset,
        "target": config.target.path,
        "mode": config.incoming.mode,
        "remoteEnv": list(environment.from_target),
        "warnings": [*warnings, *live.environment.warnings],
    }


class _Progress:
    """``$/progress`` for one request: the editor's token, or one the helper creates when it may."""

    def __init__(self, ls: HelperServer, token: str | int | None) -> None:
        self._ls = ls
        self._token = token

    @classmethod
    async def open(cls, ls: HelperServer, token: Any, title: str) -> _Progress:
        if not isinstance(token, (str, int)):
            token = None
            window = ls.client_capabilities.window
            if window is not None and window.work_done_progress:
                token = f"pymirrord-{time.monotonic_ns()}"
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(ls.work_done_progress.create_async(token), 2.0)
        progress = cls(ls, token)
        if token is not None:
            ls.work_done_progress.begin(
                token, types.WorkDoneProgressBegin(title, cancellable=True, percentage=0)
            )
            task = asyncio.current_task()
            # The editor's Cancel button on the progress cancels the request itself.
            future = ls.work_done_progress.tokens.get(token)
            if future is not None and task is not None:
                future.add_done_callback(lambda done: task.cancel() if done.cancelled() else None)
        return progress

    def report(self, message: str, percentage: int) -> None:
        if self._token is not None:
            self._ls.work_done_progress.report(
                self._token, types.WorkDoneProgressReport(message=message, percentage=percentage)
            )

    def end(self, message: str) -> None:
        if self._token is not None:
            self._ls.work_done_progress.end(self._token, types.WorkDoneProgressEnd(message=message))
            self._ls.work_done_progress.tokens.pop(self._token, None)


@server.feature(types.INITIALIZED)
def on_initialized(ls: HelperServer, params: types.InitializedParams) -> None:
    threading.Thread(target=_warm_up, name="pymirrord-warm-up", daemon=True).start()


def _warm_up() -> None:
    for name in _WARM_UP:
        importlib.import_module(name)
    from pymirrord.config import check_text

    check_text("{}", filename="warm-up.json")


@server.feature(types.SHUTDOWN)
async def on_shutdown(ls: HelperServer, *args: Any) -> None:
    if ls._sessions is not None:
        await ls._sessions.close_all("the editor helper shut down")


def _exit_on_sigterm(stdout: TurnFlushedStdout | None = None) -> None:
    def stop(signum: int, frame: Any) -> None:
        # Not SystemExit: the loop would then wait for the thread blocked reading stdin, forever.
        if server._sessions is not None:
            server._sessions.release_all_now()
        if stdout is not None:
            with contextlib.suppress(OSError):
                stdout.flush_now(wait=False)  # what the editor was about to be told
        os._exit(128 + signum)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGHUP, stop)


def run(*, tcp: tuple[str, int] | None = None, ws: tuple[str, int] | None = None) -> int:
    """Serve on stdio (default), a TCP port, or a websocket; returns the exit status."""
    logging.basicConfig(level=os.environ.get("PYMIRRORD_LSP_LOG", "WARNING").upper(), format="%(message)s")
    raise_open_files_limit()  # its sessions relay every connection of the apps it launches
    event_loop.choose_for_asyncio_run()  # for the relays of its sessions
    if tcp is not None:
        _exit_on_sigterm()
        server.start_tcp(*tcp)
    elif ws is not None:
        _exit_on_sigterm()
        server.start_ws(*ws)
    else:
        stdout = TurnFlushedStdout(sys.stdout.buffer)
        _exit_on_sigterm(stdout)
        # pygls only writes to, flushes and closes the stream it is given.
        server.start_io(stdout=cast(BinaryIO, stdout))
        with contextlib.suppress(OSError, ValueError):
            stdout.flush_now()
    return 0
