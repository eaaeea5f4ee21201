"""Start-up of the layer as an app really gets it: through ``sitecustomize`` on ``PYTHONPATH``."""

from __future__ import annotations

import json
import socket
import sys
from pathlib import Path
from typing import Any

from fake_session import FakeSession
from layer_harness import APPS, LAYER_DIR, App, layer_env

from pymirrord.protocol import PROTOCOL_VERSION
from pymirrord.protocol import layer_to_session as to_session
from pymirrord.protocol.types import SocketAddress

PROBE = APPS / "layer_app_probe.py"


def probe(app: App) -> dict[str, Any]:
    report: dict[str, Any] = json.loads(app.wait_line(r"^\{").string)
    return report


def get(address: SocketAddress) -> bytes:
    with socket.create_connection((address.host, address.port), timeout=20) as sock:
        sock.sendall(b"GET / HTTP/1.0\r\n\r\n")
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def test_layer_folder_holds_only_uniquely_named_modules() -> None:
    names = {path.name for path in LAYER_DIR.iterdir() if path.name != "__pycache__"}
    assert {"sitecustomize.py", "__init__.py"} <= names
    ours = {"sitecustomize.py", "__init__.py"}
    assert all(
        name in ours or (name.startswith("pymirrord_layer_") and name.endswith(".py")) for name in names
    ), names


def test_inert_without_environment() -> None:
    with App([sys.executable, PROBE, "0"], layer_env(None)) as app:
        report = probe(app)
        assert report["hooked"] is False
        assert report["layer_modules"] == []
        assert get(SocketAddress(*report["address"])).endswith(b"hello")
        assert app.finish() == 0
        assert app.stderr == []


def test_user_modules_named_like_ours_are_not_shadowed(tmp_path: Path) -> None:
    user = tmp_path / "user"
    user.mkdir()
    for name in ("server", "agent", "config"):
        (user / f"{name}.py").write_text("")
    with (
        FakeSession() as session,
        App([sys.executable, PROBE, "80"], layer_env(session.path, "{}", pythonpath=[user])) as app,
    ):
        report = probe(app)
        assert report["hooked"] is True
        expected = {name: str(user / f"{name}.py") for name in ("server", "agent", "config")}
        assert report["origins"] == expected
        request = session.wait_listen(80)
        assert get(request.address).endswith(b"hello")
        assert app.finish() == 0


def test_existing_sitecustomize_still_runs(tmp_path: Path) -> None:
    user = tmp_path / "user"
    user.mkdir()
    (user / "sitecustomize.py").write_text("print('user sitecustomize ran', flush=True)\n")
    with (
        FakeSession() as session,
        App([sys.executable, PROBE, "80"], layer_env(session.path, "{}", pythonpath=[user])) as app,
    ):
        app.wait_line("^user sitecustomize ran$")
        assert probe(app)["hooked"] is True
        assert get(session.wait_listen(80).address).endswith(b"hello")
        assert app.finish() == 0
    # Inert, the chain still runs too.
    with App([sys.executable, PROBE, "0"], layer_env(None, pythonpath=[user])) as app:
        app.wait_line("^user sitecustomize ran$")
        report = probe(app)
        assert report["hooked"] is False
        get(SocketAddress(*report["address"]))
        assert app.finish() == 0


def test_failing_user_sitecustomize_is_shown_and_the_app_runs(tmp_path: Path) -> None:
    user = tmp_path / "user"
    user.mkdir()
    (user / "sitecustomize.py").write_text("raise RuntimeError('broken user sitecustomize')\n")
    with (
        FakeSession() as session,
        App([sys.executable, PROBE, "80"], layer_env(session.path, "{}", pythonpath=[user])) as app,
    ):
        assert probe(app)["hooked"] is True
        get(session.wait_listen(80).address)
        assert app.finish() == 0
        assert "RuntimeError: broken user sitecustomize" in app.stderr


def test_unreachable_session_warns_once_and_the_app_runs(tmp_path: Path) -> None:
    missing = str(tmp_path / "no-session.sock")
    with App([sys.executable, PROBE, "0"], layer_env(missing, "{}")) as app:
        report = probe(app)
        assert report["hooked"] is False
        assert get(SocketAddress(*report["address"])).endswith(b"hello")
        assert app.finish() == 0
        assert app.stderr == [
            f"pymirrord: cannot reach the session at {missing} (No such file or directory);"
            " the app runs without pymirrord"
        ]


def test_bad_config_warns_once_and_the_app_runs() -> None:
    with (
        FakeSession() as session,
        App([sys.executable, PROBE, "0"], layer_env(session.path, '{"incoming": {"mode": "copy"}}')) as app,
    ):
        report = probe(app)
        assert report["hooked"] is False
        get(SocketAddress(*report["address"]))
        assert app.finish() == 0
        assert app.stderr == [
            "pymirrord: PYMIRRORD_LAYER_CONFIG: incoming.mode must be one of mirror, steal, off,"
            ' found "copy"; the app runs without pymirrord'
        ]
        assert session.received == []


def test_every_feature_off_hooks_nothing() -> None:
    config = json.dumps(
        {
            "incoming": {"mode": "off"},
            "outgoing": {"tcp": False, "udp": False},
            "dns": {"enabled": False},
        }
    )
    with FakeSession() as session, App([sys.executable, PROBE, "0"], layer_env(session.path, config)) as app:
        assert probe(app)["hooked"] is False
        app.kill()
        assert session.received == []


def test_skipped_process_is_left_alone() -> None:
    config = json.dumps({"skip_processes": [PROBE.name]})
    with FakeSession() as session, App([sys.executable, PROBE, "0"], layer_env(session.path, config)) as app:
        assert probe(app)["hooked"] is False
        app.kill()
        assert session.received == []


def test_fork_child_uses_its_own_connection() -> None:
    argv: list[str | Path] = [sys.executable, APPS / "layer_app_fork.py"]
    with FakeSession() as session, App(argv, layer_env(session.path, "{}")) as app:
        parent = int(app.wait_line(r"^parent (\d+)$").group(1))
        child = int(app.wait_line(r"^child (\d+) listening$").group(1))
        app.wait_line("^parent listening, child exited with 0$")
        assert app.finish() == 0
        session.wait_for(to_session.ListenClosed, lambda m: m.port == 82)
        by_connection: dict[int, list[to_session.LayerToSession]] = {}
        for received in session.received:
            by_connection.setdefault(received.connection, []).append(received.message)
        parent_messages = [
            messages
            for messages in by_connection.values()
            if messages[0] == to_session.LayerHello(PROTOCOL_VERSION, parent, messages[0].parent_pid)  # type: ignore[union-attr]
        ]
        assert len(parent_messages) == 1
        kinds = [type(m).__name__ for m in parent_messages[0]]
        assert kinds == ["LayerHello", "ListenRequest", "ListenClosed"]
        assert parent_messages[0][1].port == 82  # type: ignore[union-attr]
        child_messages = [
            messages
            for messages in by_connection.values()
            if messages[0] == to_session.LayerHello(PROTOCOL_VERSION, child, parent)
        ]
        assert len(child_messages) == 1
        listens = [m for m in child_messages[0] if isinstance(m, to_session.ListenRequest)]
        assert [m.port for m in listens] == [81]
