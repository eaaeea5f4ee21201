"""``pymirrord exec`` gives the local process the target's environment (``feature.env``): real namespaces.

The "pod" is a process in a network namespace started with a known environment (``env -i``), some of which
must never reach a local process (``PATH``, ``HOME``, ``KUBERNETES_*``). The app runs on this machine under
``pymirrord exec`` and prints its own environment; pymirrord's lines must name variables, never show values.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from exec_helpers import pymirrord_exec
from netns_helpers import Netns, Process

from pymirrord.lab import WatchedProcess

SECRET = "s3cr3t-value-never-logged"
POD_ENV = {
    "DATABASE_URL": "postgres://db.shop:5432/users",
    "FEATURE_NEW_CHECKOUT": "on",
    "API_TOKEN": SECRET,
    "LOG_LEVEL": "info",
    "KUBERNETES_SERVICE_HOST": "10.96.0.1",
    "PATH": "/pod/bin:/usr/bin:/bin",
    "HOME": "/pod-home",
    "PYTHONPATH": "/pod/app",
}
POD_PROCESS = "import sys; print('ready', flush=True); sys.stdin.read()"
PRINT_ENV = "import json, os; print('ENV ' + json.dumps(dict(os.environ)), flush=True)"


def start_pod(ns: Netns) -> Process:
    assignments = [f"{name}={value}" for name, value in POD_ENV.items()]
    return ns.start("env", "-i", *assignments, sys.executable, "-c", POD_PROCESS)


def app_environment(run: WatchedProcess) -> dict[str, str]:
    line = run.wait_for("ENV {", timeout=60)
    environment: dict[str, str] = json.loads(line[line.index("ENV ") + 4 :])
    assert run.wait(30) == 0
    return environment


def pymirrord_lines(run: WatchedProcess) -> list[str]:
    return [line for line in run.seen if "ENV {" not in line]


def test_the_pods_variables_reach_the_app_and_local_ones_stay(pod_netns: Netns) -> None:
    start_pod(pod_netns)
    with pymirrord_exec(pod_netns, [sys.executable, "-c", PRINT_ENV]) as run:
        env = app_environment(run)
    assert env["DATABASE_URL"] == POD_ENV["DATABASE_URL"]
    assert env["FEATURE_NEW_CHECKOUT"] == "on" and env["LOG_LEVEL"] == "info"
    assert env["API_TOKEN"] == SECRET
    # What would break a local process is not taken.
    assert env["PATH"] == os.environ["PATH"]
    assert env.get("HOME") == os.environ.get("HOME")
    assert "KUBERNETES_SERVICE_HOST" not in env or env["KUBERNETES_SERVICE_HOST"] != "10.96.0.1"
    assert "/pod/app" not in env["PYTHONPATH"]
    # Names are shown, values never: not by exec, not by the agent.
    lines = pymirrord_lines(run)
    named = [line for line in lines if "environment variables from the target" in line]
    assert len(named) == 1 and "API_TOKEN, DATABASE_URL, FEATURE_NEW_CHECKOUT, LOG_LEVEL" in named[0]
    assert not [line for line in lines if SECRET in line or "postgres://" in line]


def test_include_env_file_override_and_flags_on_a_pid_target(pod_netns: Netns, tmp_path: Path) -> None:
    pod = start_pod(pod_netns)
    env_file = tmp_path / "local.env"
    env_file.write_text("DATABASE_URL=postgres://localhost/users\nEXTRA=from-file\n")
    config = {
        "target": f"pid/{pod.pid}",
        "feature": {
            "env": {
                "include": "DATABASE_URL;LOG_*;PATH",
                "override": {"LOG_LEVEL": "debug"},
                "env_file": str(env_file),
            }
        },
    }
    app = [sys.executable, "-c", PRINT_ENV]
    with pymirrord_exec(pod_netns, app, config=config, flags=["--env", "EXTRA=from-flag"]) as run:
        env = app_environment(run)
    assert env["DATABASE_URL"] == "postgres://localhost/users", "the env file wins over the target"
    assert env["LOG_LEVEL"] == "debug", "an override wins over the target"
    assert env["EXTRA"] == "from-flag", "--env wins over the env file"
    assert env["PATH"] == POD_ENV["PATH"], "PATH is taken when include names it"
    assert "FEATURE_NEW_CHECKOUT" not in env and "API_TOKEN" not in env


def test_no_remote_env_and_the_exclude_override(pod_netns: Netns) -> None:
    start_pod(pod_netns)
    app = [sys.executable, "-c", PRINT_ENV]
    with pymirrord_exec(pod_netns, app, flags=["--no-remote-env"]) as run:
        env = app_environment(run)
    assert "DATABASE_URL" not in env and "FEATURE_NEW_CHECKOUT" not in env
    with pymirrord_exec(pod_netns, app, env={"MIRRORD_OVERRIDE_ENV_VARS_EXCLUDE": "FEATURE_*;API_*"}) as run:
        env = app_environment(run)
    assert env["DATABASE_URL"] == POD_ENV["DATABASE_URL"]
    assert "FEATURE_NEW_CHECKOUT" not in env and "API_TOKEN" not in env


def test_a_namespace_without_a_process_gives_a_warning_and_the_app_runs(pod_netns: Netns) -> None:
    with pymirrord_exec(pod_netns, [sys.executable, "-c", PRINT_ENV]) as run:
        warning = run.wait_for("no process runs in the network namespace", timeout=60)
        env = app_environment(run)
    assert "warning" in warning
    assert "DATABASE_URL" not in env


def test_an_unreadable_env_file_stops_exec_before_any_agent(pod_netns: Netns, tmp_path: Path) -> None:
    config = {"feature": {"env": {"env_file": str(tmp_path / "missing.env")}}}
    with pymirrord_exec(pod_netns, [sys.executable, "-c", PRINT_ENV], config=config) as run:
        run.wait_for("error:", timeout=60)
        line = run.wait_for("feature.env.env_file")
        assert run.wait(30) == 1
    assert "missing.env not found" in line and ":1:" in line
    assert not [entry for entry in run.seen if "ENV {" in entry]
