"""pymirrord's own requests over stdio: testFilter, listTargets, verifyConfig, prepareLaunch's errors."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
from netns_helpers import netns, wait_until

from pymirrord.server.rpc_client import HelperClient, RpcError

ROOT = Path(__file__).resolve().parents[2]


def _netns_of(pid: int) -> int:
    return os.stat(f"/proc/{pid}/ns/net").st_ino


def _filter_of(example: str) -> dict[str, Any]:
    data = json.loads((ROOT / "examples" / "configs" / example).read_text())
    http_filter: dict[str, Any] = data["feature"]["network"]["incoming"]["http_filter"]
    return http_filter


def _stolen(helper: HelperClient, http_filter: dict[str, Any], *requests: dict[str, Any]) -> list[bool]:
    result = helper.request("pymirrord/testFilter", {"filter": http_filter, "requests": list(requests)})
    assert result["valid"], result["errors"]
    return [item["stolen"] for item in result["results"]]


def test_filter_examples_of_the_mission_document(helper: HelperClient) -> None:
    header = _filter_of("steal-header-filter.json")
    assert _stolen(
        helper,
        header,
        {"method": "GET", "path": "/users", "headers": [["x-myfilter", "yes"]]},  # case-insensitive
        {"method": "GET", "path": "/users", "headers": [["X-Other", "X-MyFilter:"]]},  # line must start so
        {"method": "GET", "path": "/users", "headers": []},
    ) == [True, False, False]

    path = _filter_of("steal-path-filter.json")
    assert _stolen(
        helper,
        path,
        {"method": "GET", "path": "/api/v2/orders/7"},
        {"method": "GET", "path": "/api/v1/orders/7"},
    ) == [True, False]

    all_of = _filter_of("steal-all-of.json")
    alice = ["baggage", "user=x,mirrord-session=alice"]
    result = helper.request(
        "pymirrord/testFilter",
        {
            "filter": all_of,
            "requests": [
                {"method": "POST", "path": "/api/orders", "headers": [alice]},
                {"method": "GET", "path": "/api/orders", "headers": [alice]},
            ],
        },
    )
    first, second = result["results"]
    assert first["stolen"] and [m["part"] for m in first["matched"]] == [
        "all_of[0].header",
        "all_of[1].path",
        "all_of[2].method",
    ]
    assert not second["stolen"]

    any_of = _filter_of("steal-any-of.json")
    assert _stolen(
        helper,
        any_of,
        {"method": "GET", "path": "/debug/vars"},
        {"method": "GET", "path": "/", "headers": [["X-Debug-User", "alice"]]},
        {"method": "GET", "path": "/", "headers": [["X-Debug-User", "bob"]]},
    ) == [True, True, False]

    # The path filter tries the path with its query string too; lookarounds work (the regex package).
    assert _stolen(helper, {"path_filter": r"[?&]debug=1"}, {"method": "GET", "path": "/x?debug=1"}) == [True]
    assert _stolen(
        helper,
        {"header_filter": "^x-user: (?!bob)"},
        {"method": "GET", "path": "/", "headers": [["X-User", "alice"]]},
        {"method": "GET", "path": "/", "headers": [["X-User", "bob"]]},
    ) == [True, False]


def test_filter_regex_errors_are_located(helper: HelperClient) -> None:
    result = helper.request(
        "pymirrord/testFilter", {"filter": {"any_of": [{"path": "^/a"}, {"header": "^X-(a"}]}}
    )
    assert not result["valid"]
    (error,) = result["errors"]
    assert error["pointer"] == "/any_of/1/header"
    assert error["position"] == 3, "the ( that is never closed"
    with pytest.raises(RpcError) as raised:
        helper.request("pymirrord/testFilter", {"filter": {"path_filter": "/"}, "requests": [{"path": 3}]})
    assert raised.value.code == -32602 and "requests[0].path" in raised.value.message


@pytest.mark.skipif(os.geteuid() != 0, reason="creating a network namespace needs root")
def test_list_targets_sees_a_namespace_created_now(helper: HelperClient) -> None:
    with netns() as created:
        listed = helper.request("pymirrord/listTargets", {})
        paths = {target["path"]: target for target in listed["targets"]}
        assert paths[created.target]["kind"] == "netns"
        assert paths[created.target]["available"] is True
        # A process inside a named namespace is not listed again by its pid.
        inside = created.start("sleep", "60", ready=False)
        # A process in a network namespace without a name (as a local container is) is listed by its pid.
        container = subprocess.Popen(["unshare", "--net", "sleep", "60"])
        try:
            assert wait_until(lambda: _netns_of(container.pid) != _netns_of(os.getpid()))
            listed = {t["path"]: t for t in helper.request("pymirrord/listTargets", {})["targets"]}
            assert f"pid/{inside.pid}" not in listed
            assert listed[f"pid/{container.pid}"]["kind"] == "pid"
            assert "sleep 60" in listed[f"pid/{container.pid}"]["label"]
        finally:
            container.kill()
            container.wait()
    listed = helper.request("pymirrord/listTargets", {})
    assert created.target not in {t["path"] for t in listed["targets"]}
    assert set(listed) == {"targets", "currentNamespace", "namespaces", "notes"}


def test_verify_config_has_the_ide_shape(helper: HelperClient, tmp_path: Path) -> None:
    good = tmp_path / "mirrord.json"
    good.write_text(json.dumps({"feature": {"network": {"incoming": "steal"}}}))
    result = helper.request("pymirrord/verifyConfig", {"uri": good.as_uri()})
    assert result["type"] == "Success"
    assert result["config"] == {"path": None, "namespace": None}
    assert "netns" in result["compatible_target_types"]
    bad = tmp_path / "bad.json"
    bad.write_text('{"feature": 1}')
    assert helper.request("pymirrord/verifyConfig", {"uri": bad.as_uri()})["type"] == "Fail"
    missing = helper.request("pymirrord/verifyConfig", {"uri": (tmp_path / "none.json").as_uri()})
    assert missing["type"] == "Fail" and "not found" in missing["errors"][0]


def _prepare_error(helper: HelperClient, params: dict[str, Any]) -> RpcError:
    with pytest.raises(RpcError) as raised:
        helper.request("pymirrord/prepareLaunch", params)
    return raised.value


def test_prepare_launch_errors_say_what_to_do(helper: HelperClient, tmp_path: Path) -> None:
    program = tmp_path / "app.py"
    program.write_text("print('hi')\n")
    launch = {"type": "debugpy", "program": str(program)}

    error = _prepare_error(helper, {"launch": launch})
    assert error.code == -32002 and "no target" in error.message and "listTargets" in error.message

    # A Kubernetes target is prepared like a local one; here no cluster is configured, and the error says so.
    error = _prepare_error(helper, {"launch": launch, "target": "deployment/api"})
    assert error.code == -32005 and "deployment/api" in error.message, error.message

    error = _prepare_error(
        helper, {"launch": {**launch, "program": str(tmp_path / "nope.py")}, "target": "netns/x"}
    )
    assert error.code == -32004 and "does not exist" in error.message

    bad = tmp_path / "mirrord.json"
    bad.write_text('{"feature": {"network": {"incoming": "stael"}}}')
    error = _prepare_error(helper, {"launch": launch, "configUri": bad.as_uri(), "target": "netns/x"})
    assert error.code == -32001 and "mirrord.json:1:" in error.message
    assert error.data["errors"]

    error = _prepare_error(helper, {"launch": launch, "target": "netns/pmd-no-such-namespace"})
    assert error.code == -32005 and "could not start" in error.message
    assert helper.request("pymirrord/sessions") == {"sessions": []}

    with pytest.raises(RpcError) as raised:
        helper.request("pymirrord/stopSession", {"sessionId": "s404"})
    assert raised.value.code == -32006
