"""``pymirrord ls``: the pure assembly, the fetching with its fall-backs, and the command itself."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from pymirrord.kube.client import KubeApi
from pymirrord.kube.listing import ListingInput, assemble_listing, list_targets

from . import world
from .emulator import Emulator


def test_assembly_keeps_ready_pods_and_available_workloads() -> None:
    found = ListingInput(
        pods=[
            world.pod("api-1", labels={"app": "api"}),
            world.pod("api-2", labels={"app": "api"}, ready=False),
            world.pod("multi-1", containers=("web", "worker", "istio-proxy")),
        ],
        deployments=[world.deployment("api"), world.deployment("idle", available=0)],
        rollouts=None,
        statefulsets=[world.statefulset("db"), world.statefulset("down", ready=0)],
        jobs=[world.job("migrate"), world.job("done", active=0)],
        cronjobs=[world.cronjob("report", active=["report-1"]), world.cronjob("quiet")],
        services=[
            world.service("api", selector={"app": "api"}),
            world.service("ghost", selector={"app": "ghost"}),
            world.service("ext"),
        ],
    )
    listing = assemble_listing("shop", found, ["default", "shop"], ["a note"])
    assert listing.paths() == [
        "pod/api-1",
        "pod/multi-1/container/web",
        "pod/multi-1/container/worker",
        "deployment/api",
        "statefulset/db",
        "job/migrate",
        "cronjob/report",
        "service/api",
    ]
    assert listing.to_json()["current_namespace"] == "shop"
    assert listing.to_json()["namespaces"] == ["default", "shop"]
    assert listing.to_json()["targets"][0] == {"path": "pod/api-1", "kind": "pod", "available": True}
    assert listing.to_json()["notes"] == ["a note"]


def test_listing_through_the_api(emulator: Emulator, api: KubeApi) -> None:
    emulator.add(*world.deployment_with_pods("api"), world.service("api", selector={"app": "api"}))
    emulator.add(*world.deployment_with_pods("other", namespace="shop"))
    ro = world.rollout("web")
    emulator.add(ro, world.pod("web-1", labels={"app": "web"}, owner_of=ro))
    listing = list_targets(api)
    assert listing.paths() == [
        "pod/api-6d4f9c7b8-ax0z",
        "pod/web-1",
        "deployment/api",
        "rollout/web",
        "service/api",
    ]
    assert listing.namespaces == ("default", "shop")
    assert listing.notes == ()
    assert list_targets(api, "shop").paths() == ["pod/other-6d4f9c7b8-ax0z", "deployment/other"]


def test_forbidden_namespaces_fall_back_to_the_current_one(emulator: Emulator, api: KubeApi) -> None:
    emulator.add(*world.deployment_with_pods("api", namespace="shop"), *world.deployment_with_pods("x"))
    emulator.forbid("list", "namespaces")
    emulator.forbid("list", "statefulsets", "shop")
    emulator.rollouts_installed = False
    listing = list_targets(api, "shop")
    assert listing.namespaces == ("shop",)
    assert listing.notes == (
        "not allowed to list statefulsets in namespace shop; they are left out",
        "not allowed to list namespaces; showing namespace shop only",
    )
    assert listing.paths() == ["pod/api-6d4f9c7b8-ax0z", "deployment/api"]


def _ls(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pymirrord", "ls", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_ls_command(emulator: Emulator, kubeconfig: Path) -> None:
    emulator.add(
        *world.deployment_with_pods("api"), *world.deployment_with_pods("billing", namespace="elsewhere")
    )
    result = _ls("--kubeconfig", str(kubeconfig), "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {
        "targets": [
            {"path": "pod/api-6d4f9c7b8-ax0z", "kind": "pod", "available": True},
            {"path": "deployment/api", "kind": "deployment", "available": True},
        ],
        "current_namespace": "default",
        "namespaces": ["default", "elsewhere"],
        "notes": [],
    }
    # Another context's namespace; plain output.
    result = _ls("--kubeconfig", str(kubeconfig), "--context", "elsewhere")
    assert result.stdout == "pod/billing-6d4f9c7b8-ax0z\ndeployment/billing\n"
    assert "other namespaces (-n): default" in result.stderr
    result = _ls("--kubeconfig", str(kubeconfig), "-n", "nothing-here")
    assert result.stdout == ""
    assert "no ready targets in namespace nothing-here" in result.stderr


def test_ls_errors_are_messages_not_tracebacks(tmp_path: Path, emulator: Emulator, kubeconfig: Path) -> None:
    result = _ls("--kubeconfig", str(tmp_path / "missing"))
    assert result.returncode == 1
    assert result.stderr.startswith(f"pymirrord: error: no kubeconfig found at {tmp_path / 'missing'}")
    emulator.forbid("list", "pods", "default")
    result = _ls("--kubeconfig", str(kubeconfig))
    assert result.returncode == 1
    assert "pymirrord: error: not allowed to list pods in namespace default" in result.stderr
    assert "Traceback" not in result.stderr
