"""The layer's environment: one config gives the same environment to ``exec`` and to a debug launch."""

from __future__ import annotations

import json
import os
from pathlib import Path

from pymirrord.config import resolve_config
from pymirrord.config.model import EnvConfig, ResolvedConfig
from pymirrord.remote_env import TargetEnvironment
from pymirrord.server.launch import launch_environment, parse_launch, resolve_launch_config
from pymirrord.session.layer_env import (
    CONFIG_VARIABLE,
    SOCKET_VARIABLE,
    layer_path,
    layer_settings_for,
    process_environment,
)
from pymirrord.session.runner import child_environment

CONFIG = {
    "target": "netns/shop",
    "skip_processes": ["celery"],
    "feature": {
        "network": {
            "incoming": {"mode": "mirror", "ports": [80, 8080], "ignore_localhost": True},
            "outgoing": {
                "tcp": True,
                "udp": False,
                "ignore_localhost": True,
                "filter": {"local": ["tcp://10.0.0.0/8:5432", "db.internal"]},
            },
            "dns": {"enabled": True, "filter": {"remote": ["db.svc.cluster.local"]}},
        }
    },
}


def test_exec_and_a_debug_launch_get_the_same_environment_from_one_config(tmp_path: Path) -> None:
    path = tmp_path / "mirrord.json"
    path.write_text(json.dumps(CONFIG))
    base = {"PATH": "/usr/bin", "PYTHONPATH": "/mine", "PYMIRRORD_AGENT_TOKEN": "secret", "HOME": "/home/u"}

    config, _ = resolve_config(str(path), {})
    terminal = child_environment(config, "/run/s.sock", base)

    request = parse_launch({"configUri": path.as_uri(), "launch": {"type": "debugpy"}})
    launch_config, _ = resolve_launch_config(request, {})
    launched = launch_environment(launch_config, "/run/s.sock", request, base)
    debug = {k: v for k, v in base.items() if k not in launched.unset} | launched.set

    assert terminal == debug
    assert "PYMIRRORD_AGENT_TOKEN" not in terminal
    assert terminal["PYTHONPATH"] == os.pathsep.join([layer_path(), "/mine"])
    assert terminal[SOCKET_VARIABLE] == "/run/s.sock"

    settings = json.loads(terminal[CONFIG_VARIABLE])
    assert settings == layer_settings_for(config)
    assert settings["skip_processes"] == ["celery"]
    assert settings["incoming"]["ports"] == [80, 8080]
    assert settings["outgoing"]["udp"] is False and settings["outgoing"]["ignore_localhost"] is True
    outgoing_filter = settings["outgoing"]["filter"]
    assert outgoing_filter["mode"] == "local"
    assert [rule["host"] for rule in outgoing_filter["rules"]] == ["10.0.0.0/8", "db.internal"]
    assert outgoing_filter["rules"][0]["port"] == 5432
    dns_filter = settings["dns"]["filter"]
    assert dns_filter["mode"] == "remote"
    assert [rule["host"] for rule in dns_filter["rules"]] == ["db.svc.cluster.local"]


def test_the_defaults_reach_the_layer_too() -> None:
    config, _ = resolve_config(None, {})
    settings = layer_settings_for(config)
    assert settings["outgoing"] == {"tcp": True, "udp": True, "ignore_localhost": False, "filter": None}
    assert settings["dns"] == {"enabled": True, "filter": None}


ENV_CONFIG = {
    "target": "netns/shop",
    "feature": {
        "env": {
            "override": {"LOG_LEVEL": "debug", "PYTHONPATH": "/override"},
            "env_file": "local.env",
            "unset": ["aws_profile"],
        }
    },
}
TARGET = TargetEnvironment(
    remote={"DATABASE_URL": "postgres://db", "LOG_LEVEL": "info", "FROM_FILE": "pod", "AWS_PROFILE": "pod"},
    source="process 42",
    env_file={"FROM_FILE": "file", "ONLY_FILE": "1"},
)


def test_feature_env_reaches_exec_and_a_debug_launch_alike(tmp_path: Path) -> None:
    (tmp_path / "local.env").write_text("FROM_FILE=file\nONLY_FILE=1\n")
    path = tmp_path / "mirrord.json"
    path.write_text(json.dumps(ENV_CONFIG))
    base = {"PATH": "/usr/bin", "DATABASE_URL": "local", "AWS_PROFILE": "me", "HOME": "/home/u"}

    config, _ = resolve_config(str(path), {})
    assert config.env.env_file == str(tmp_path / "local.env")
    terminal = child_environment(config, "/run/s.sock", base, TARGET)

    request = parse_launch({"configUri": path.as_uri(), "launch": {"type": "debugpy"}})
    launch_config, _ = resolve_launch_config(request, {})
    launched = launch_environment(launch_config, "/run/s.sock", request, base, TARGET)
    assert launched.apply(base) == terminal

    # override > env_file > target > local; unset removes the local one and is not taken from the target.
    assert terminal["DATABASE_URL"] == "postgres://db"
    assert terminal["LOG_LEVEL"] == "debug"
    assert terminal["FROM_FILE"] == "file" and terminal["ONLY_FILE"] == "1"
    assert "AWS_PROFILE" not in terminal and "AWS_PROFILE" in launched.unset
    assert terminal["PATH"] == "/usr/bin" and terminal["HOME"] == "/home/u"
    # The layer still comes first on PYTHONPATH, before what the override asked for.
    assert terminal["PYTHONPATH"] == os.pathsep.join([layer_path(), "/override"])
    assert launched.from_target == ("DATABASE_URL",)


def test_unset_names_reach_the_editor_even_when_the_helper_lacks_them() -> None:
    config = ResolvedConfig(env=EnvConfig(unset=("AWS_PROFILE",)))
    result = process_environment(config, TargetEnvironment(), "/run/s.sock", {})
    assert result.unset == ["AWS_PROFILE"]
    assert result.from_target == ()
