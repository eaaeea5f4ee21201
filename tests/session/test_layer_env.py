"""The layer's environment: one config gives the same environment to ``exec`` and to a debug launch."""

from __future__ import annotations

import json
import os
from pathlib import Path

from pymirrord.config import resolve_config
from pymirrord.server.launch import launch_environment, parse_launch, resolve_launch_config
from pymirrord.session.layer_env import CONFIG_VARIABLE, SOCKET_VARIABLE, layer_path, layer_settings_for
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
    added, unset = launch_environment(launch_config, "/run/s.sock", request, base)
    debug = {k: v for k, v in base.items() if k not in unset} | added

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
