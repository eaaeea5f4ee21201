"""The debug path for real: prepareLaunch for a namespace target, then a debugpy launch as VS Code makes it.

The helper starts the agent and the relay; the test starts ``python -m debugpy.adapter`` (what VS Code
runs) and sends it a ``launch`` whose ``env`` is the launch's env merged with the helper's answer. The app
under the debugger steals the pod's port 80; a client in another namespace gets the local app's answer;
the debugger's own loopback connections keep working. When the debug session ends, so does the pymirrord
session: no session listed, no agent process, no iptables rule left in the namespace.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

from exec_helpers import USER_SERVICE, find_agent_pids, get, pmd_chains
from netns_helpers import Topology, child_env, wait_until

from e2e.dap_client import DapClient
from pymirrord.server.rpc_client import HelperClient, RpcError
from pymirrord.session.layer_env import CONFIG_VARIABLE, SOCKET_VARIABLE, layer_path


def _events(helper: HelperClient, kind: str) -> list[dict[str, Any]]:
    return [
        m["params"]
        for m in list(helper.notifications)
        if m["method"] == "pymirrord/sessionEvent" and m["params"]["kind"] == kind
    ]


def test_debug_launch_steals_and_ends_with_the_app(
    topology: Topology, helper: HelperClient, tmp_path: Path
) -> None:
    topology.pod.start("env", "POD_REGION=eu-west-1", sys.executable, str(USER_SERVICE), "--seed", "Pod:Copy")
    users = f"http://{topology.pod_ip}/users"
    assert json.loads(get(topology.client, users)) == [{"Last": "Copy", "Name": "Pod"}]

    config = tmp_path / ".mirrord" / "mirrord.json"
    config.parent.mkdir()
    config.write_text(json.dumps({"feature": {"network": {"incoming": "steal"}}}))

    listed = helper.request("pymirrord/listTargets", {"configUri": config.as_uri()})
    assert topology.pod.target in [t["path"] for t in listed["targets"]]

    launch: dict[str, Any] = {
        "type": "debugpy",
        "request": "launch",
        "name": "user-service",
        "program": str(USER_SERVICE),
        "args": ["--seed", "Local:Debugged"],
        "cwd": str(tmp_path),
        "env": {"PYTHONUNBUFFERED": "1"},
    }
    prepared = helper.request(
        "pymirrord/prepareLaunch",
        {
            "configUri": config.as_uri(),
            "target": topology.pod.target,
            "launch": launch,
            "workDoneToken": "t1",
        },
        timeout=60,
    )
    progress = [m["params"] for m in helper.notifications if m["method"] == "$/progress"]
    assert next(p["value"]["kind"] for p in progress) == "begin"
    assert progress[-1]["value"]["kind"] == "end"
    env = prepared["env"]
    assert env["PYTHONPATH"].split(os.pathsep)[0] == layer_path()
    # The pod process's variables come too (feature.env is on by default), named in remoteEnv.
    assert env["POD_REGION"] == "eu-west-1" and "POD_REGION" in prepared["remoteEnv"]
    assert set(env) - set(prepared["remoteEnv"]) == {"PYTHONPATH", SOCKET_VARIABLE, CONFIG_VARIABLE}
    assert not [name for name in env if name.startswith("PYMIRRORD_AGENT")], "nothing helper-only leaks"
    assert prepared["mode"] == "steal"

    # What VS Code does: its own environment for the adapter, the launch's env (merged) for the debuggee.
    launch_env = {**launch["env"], **env}
    adapter = DapClient([sys.executable, "-m", "debugpy.adapter"], env=child_env())
    try:
        adapter.request(
            "initialize",
            {
                "clientID": "vscode",
                "adapterID": "debugpy",
                "pathFormat": "path",
                "linesStartAt1": True,
                "columnsStartAt1": True,
                "supportsRunInTerminalRequest": False,
            },
        )
        launched = adapter.send(
            "launch",
            {
                **launch,
                "env": launch_env,
                "console": "internalConsole",
                "python": [sys.executable],
                "justMyCode": True,
            },
        )
        adapter.event("initialized")
        adapter.request("configurationDone")
        adapter.response(launched)
        adapter.output("Running on", timeout=30)

        helper.wait_notification("pymirrord/sessionEvent", lambda p: p["kind"] == "port" and p["port"] == 80)
        assert json.loads(get(topology.client, users)) == [{"Last": "Debugged", "Name": "Local"}]
        request = helper.wait_notification("pymirrord/sessionEvent", lambda p: p["kind"] == "request")
        assert (request["method"], request["path"], request["mode"]) == ("GET", "/users", "steal")

        # The debugger still talks to its debuggee over loopback: the layer kept that connection local.
        threads = adapter.request("threads")["body"]["threads"]
        assert any(thread["name"] == "MainThread" for thread in threads)

        (session,) = helper.request("pymirrord/sessions")["sessions"]
        assert session["sessionId"] == prepared["sessionId"]
        assert session["ports"] == [{"port": 80, "mode": "steal"}]
        assert session["connections"]["steal"] >= 1
        assert session["lastRequests"][-1]["path"] == "/users"
        assert session["remoteEnv"] == prepared["remoteEnv"]

        adapter.request("disconnect", {"terminateDebuggee": True})
    finally:
        adapter.close()

    ended = helper.wait_notification("pymirrord/sessionEvent", lambda p: p["kind"] == "ended", timeout=30)
    assert ended["reason"] == "the debugged process exited"
    assert helper.request("pymirrord/sessions")["sessions"] == []
    assert wait_until(lambda: not find_agent_pids(topology.pod))
    assert pmd_chains(topology.pod) == []
    assert json.loads(get(topology.client, users)) == [{"Last": "Copy", "Name": "Pod"}]
    assert _events(helper, "connection"), "each new connection is reported"


def _prepare(helper: HelperClient, topology: Topology, tmp_path: Path) -> int:
    launch = {"type": "debugpy", "program": str(USER_SERVICE), "cwd": str(tmp_path)}
    return helper.send_request("pymirrord/prepareLaunch", {"target": topology.pod.target, "launch": launch})


def _nothing_left(topology: Topology) -> None:
    assert wait_until(lambda: not find_agent_pids(topology.pod)), "the agent is still running"
    assert pmd_chains(topology.pod) == []


def test_cancelled_prepare_launch_leaves_nothing_running(
    topology: Topology, helper: HelperClient, tmp_path: Path
) -> None:
    request = _prepare(helper, topology, tmp_path)
    # Cancel as soon as the agent exists: the request is mid-way, between the agent and the relay.
    assert wait_until(lambda: bool(find_agent_pids(topology.pod)), interval=0.005)
    helper.cancel(request)
    try:
        helper.wait_response(request, timeout=30)
    except RpcError as error:
        assert error.code == -32800
    else:
        # The cancel arrived after the session was up: it stays until stopped, as a finished request would.
        (session,) = helper.request("pymirrord/sessions")["sessions"]
        helper.request("pymirrord/stopSession", {"sessionId": session["sessionId"]})
    assert helper.request("pymirrord/sessions")["sessions"] == []
    _nothing_left(topology)


def test_stop_session_and_helper_exit_clean_up(topology: Topology, tmp_path: Path) -> None:
    from e2e.conftest import helper_argv

    client = HelperClient(helper_argv(), cwd=str(tmp_path))
    try:
        client.initialize()
        first = client.wait_response(_prepare(client, topology, tmp_path), timeout=60)
        stopped = client.request("pymirrord/stopSession", {"sessionId": first["sessionId"]})
        assert stopped["session"]["state"] == "ended"
        _nothing_left(topology)
        with_error = None
        try:
            client.request("pymirrord/stopSession", {"sessionId": first["sessionId"]})
        except RpcError as error:
            with_error = error
        assert with_error is not None and "no live session" in with_error.message

        client.wait_response(_prepare(client, topology, tmp_path), timeout=60)
        assert find_agent_pids(topology.pod)
    finally:
        assert client.close() == 0
    _nothing_left(topology)


def test_helper_killed_by_sigterm_stops_its_agents(topology: Topology, tmp_path: Path) -> None:
    from e2e.conftest import helper_argv

    client = HelperClient(helper_argv(), cwd=str(tmp_path))
    try:
        client.initialize()
        client.wait_response(_prepare(client, topology, tmp_path), timeout=60)
        assert find_agent_pids(topology.pod)
        client.process.terminate()
        client.process.wait(30)
    finally:
        client.close()
    _nothing_left(topology)
