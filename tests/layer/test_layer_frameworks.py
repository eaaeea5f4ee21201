"""Real servers under the layer, each a subprocess asking for port 80, served through a fake session.

Each proves: the app binds "port 80" without privilege or conflict (it really listens on a free
loopback port), the session gets ListenRequest(80, that address), a connection the session makes there
is answered by the app, and the app sees the original client the session announced.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from fake_session import FakeSession
from layer_harness import APPS, PYTHON39, REPO, App, layer_env

from pymirrord.protocol import layer_to_session as to_session
from pymirrord.protocol.types import SocketAddress

CLIENT = SocketAddress("203.0.113.7", 41234)
POD_SIDE = SocketAddress("10.1.2.3", 80)


def serve_one(argv: Sequence[str | Path], config: str = "{}") -> tuple[dict[str, Any], App]:
    """Runs the app, checks its ListenRequest, sends one request as CLIENT; the JSON answer."""
    with FakeSession() as session, App(argv, layer_env(session.path, config)) as app:
        request = session.wait_listen(80)
        assert request.address.host == "127.0.0.1"
        assert request.address.port not in (0, 80)
        status, body = session.http_get(request.address, CLIENT, POD_SIDE)
        assert status == 200, body
        app.wait_line(r"request from .*203\.0\.113\.7")
    # Leaving the block killed the app and read all its output: stderr is complete now.
    assert not [line for line in app.stderr if line.startswith("pymirrord:")], app.stderr
    answer: dict[str, Any] = json.loads(body)
    return answer, app


def test_http_server() -> None:
    answer, app = serve_one([sys.executable, APPS / "layer_app_http_server.py"])
    assert answer["peer"] == ["203.0.113.7", 41234]
    assert answer["server"] == ["0.0.0.0", 80]
    assert answer["local"] == ["10.1.2.3", 80]
    assert "serving on 0.0.0.0:80" in app.stdout


@pytest.mark.skipif(not PYTHON39.exists(), reason=f"{PYTHON39} is not installed")
def test_http_server_on_python_3_9() -> None:
    answer, _app = serve_one([PYTHON39, APPS / "layer_app_http_server.py"])
    assert answer["python"] == [3, 9]
    assert answer["peer"] == ["203.0.113.7", 41234]
    # The protocol was loaded from our install folder, which did not stay on sys.path.
    assert str(REPO) not in answer["sys_path"]


def test_flask_development_server() -> None:
    answer, app = serve_one([sys.executable, APPS / "layer_app_flask.py"])
    assert answer["peer"] == ["203.0.113.7", 41234]
    assert answer["server"] == ["127.0.0.1", 80]
    assert any("Running on http://127.0.0.1:80" in line for line in app.stderr)


def test_asyncio_start_server() -> None:
    answer, app = serve_one([sys.executable, APPS / "layer_app_asyncio.py"])
    assert answer == {"peer": ["203.0.113.7", 41234], "local": ["10.1.2.3", 80]}
    assert "serving on 0.0.0.0:80" in app.stdout


@pytest.mark.parametrize("runner", [False, True], ids=["run_app", "AppRunner"])
def test_aiohttp(runner: bool) -> None:
    argv: list[str | Path] = [sys.executable, APPS / "layer_app_aiohttp.py"]
    if runner:
        argv.append("--runner")
    answer, _app = serve_one(argv)
    assert answer == {"remote": "203.0.113.7", "peer": ["203.0.113.7", 41234]}


def test_uvicorn_h11() -> None:
    answer, app = serve_one([sys.executable, APPS / "layer_app_uvicorn.py"])
    assert answer == {"client": ["203.0.113.7", 41234], "server": ["10.1.2.3", 80]}
    assert any("Uvicorn running on http://0.0.0.0:80" in line for line in app.stderr)


def test_steal_mode_and_port_mapping() -> None:
    """The layer asks for the mapped pod port; the mode is the session's business."""
    config = json.dumps({"incoming": {"mode": "steal", "port_mapping": [[80, 8080]]}})
    with (
        FakeSession() as session,
        App([sys.executable, APPS / "layer_app_http_server.py"], layer_env(session.path, config)) as app,
    ):
        request = session.wait_for(to_session.ListenRequest)
        assert request.port == 8080
        status, body = session.http_get(request.address, CLIENT)
        assert status == 200
        assert json.loads(body)["server"] == ["0.0.0.0", 80]
        app.wait_line("request from 203.0.113.7:41234")


def test_refused_port_keeps_serving_locally() -> None:
    with FakeSession() as session:
        session.listen_errors[80] = "port 80 is already stolen by another session"
        with App([sys.executable, APPS / "layer_app_http_server.py"], layer_env(session.path, "{}")) as app:
            request = session.wait_listen(80)
            # The local listener still answers (a local client keeps its own address).
            status, body = session.http_get(request.address, None)
            assert status == 200
            assert json.loads(body)["peer"][0] == "127.0.0.1"
            app.wait_line("request from 127.0.0.1")
            app.kill()
            assert app.stderr == [
                "pymirrord: port 80 not served: port 80 is already stolen by another session"
            ]
