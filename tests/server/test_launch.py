from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from pymirrord.server.errors import CONFIG_INVALID, LAUNCH_INVALID, NO_TARGET, HelperError
from pymirrord.server.launch import check_files, launch_environment, parse_launch, resolve_launch_config
from pymirrord.session.layer_env import CONFIG_VARIABLE, SOCKET_VARIABLE, layer_path


def _error(params: object, env: dict[str, str] | None = None) -> HelperError:
    with pytest.raises(HelperError) as raised:
        resolve_launch_config(parse_launch(params), env or {})
    return raised.value


def test_launch_params_are_checked() -> None:
    assert _error({"launch": {"type": "node"}}).code == LAUNCH_INVALID
    assert _error({}).code == LAUNCH_INVALID
    assert _error({"launch": {"type": "debugpy", "env": {"A": 1}}}).code == LAUNCH_INVALID
    assert _error({"launch": {"type": "debugpy"}}).code == NO_TARGET
    for target in ("pod/x", "deployment/api", "targetless"):
        config, _ = resolve_launch_config(parse_launch({"launch": {"type": "debugpy"}, "target": target}), {})
        assert config.target.path == target, "Kubernetes and targetless launches are prepared like local ones"


def test_missing_files_are_named(tmp_path: Path) -> None:
    with pytest.raises(HelperError, match="does not exist"):
        check_files(parse_launch({"launch": {"type": "python", "program": "app.py", "cwd": str(tmp_path)}}))
    with pytest.raises(HelperError, match="cannot be run"):
        check_files(parse_launch({"launch": {"type": "python", "python": str(tmp_path / "py")}}))


def test_config_precedence_and_errors(tmp_path: Path) -> None:
    config = tmp_path / "mirrord.json"
    config.write_text(json.dumps({"target": "netns/a", "feature": {"network": {"incoming": "steal"}}}))
    params = {
        "configUri": config.as_uri(),
        "launch": {"type": "debugpy", "env": {"MIRRORD_IMPERSONATED_TARGET": "netns/b"}},
    }
    resolved, _ = resolve_launch_config(parse_launch(params), {})
    assert resolved.target.path == "netns/b", "the launch's MIRRORD_* variables apply"
    resolved, _ = resolve_launch_config(parse_launch({**params, "target": "netns/c"}), {})
    assert resolved.target.path == "netns/c", "the picked target wins"
    config.write_text('{"target": 1}')
    error = _error(params)
    assert error.code == CONFIG_INVALID and "mirrord.json:1:" in error.message
    # The editor's own MIRRORD_CONFIG_FILE does not pick a config behind the user's back.
    assert _error({"launch": {"type": "debugpy"}}, {"MIRRORD_CONFIG_FILE": str(config)}).code == NO_TARGET


def test_environment_is_the_one_exec_uses() -> None:
    request = parse_launch(
        {"launch": {"type": "debugpy", "env": {"PYTHONPATH": "/mine"}}, "target": "netns/a"}
    )
    config, _ = resolve_launch_config(request, {})
    launched = launch_environment(config, "/tmp/s.sock", request, {"PYMIRRORD_AGENT_TOKEN": "secret"})
    env, unset = launched.set, launched.unset
    assert env["PYTHONPATH"] == os.pathsep.join([layer_path(), "/mine"])
    assert env[SOCKET_VARIABLE] == "/tmp/s.sock"
    assert json.loads(env[CONFIG_VARIABLE])["incoming"]["mode"] == "mirror"
    assert unset == ["PYMIRRORD_AGENT_TOKEN"]
