"""Target parsing, the pure choices, and resolution through the real client against the emulator."""

from __future__ import annotations

import pytest

from pymirrord.kube.client import KubeApi
from pymirrord.kube.errors import ContainerNotFound, Forbidden, InvalidKubeTarget, NoReadyPod, TargetNotFound
from pymirrord.kube.targets import (
    KubeTarget,
    PodTarget,
    Targetless,
    choose_container,
    choose_pod,
    is_kube_target,
    parse_kube_target,
    resolve_target,
    selector_string,
)

from . import world
from .emulator import Emulator


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("pod/api-1", KubeTarget("pod", "api-1")),
        ("pod/api-1/container/main", KubeTarget("pod", "api-1", "main")),
        ("deployment/api", KubeTarget("deployment", "api")),
        ("deploy/api/container/web", KubeTarget("deployment", "api", "web")),
        ("statefulset/db", KubeTarget("statefulset", "db")),
        ("replicaset/api-6d4f", KubeTarget("replicaset", "api-6d4f")),
        ("job/migrate", KubeTarget("job", "migrate")),
        ("cronjob/report", KubeTarget("cronjob", "report")),
        ("rollout/api", KubeTarget("rollout", "api")),
        ("service/api", KubeTarget("service", "api")),
        ("targetless", KubeTarget("targetless")),
    ],
)
def test_parse(text: str, expected: KubeTarget) -> None:
    assert parse_kube_target(text) == expected
    assert is_kube_target(text)


def test_str_is_the_canonical_form() -> None:
    assert str(parse_kube_target("deploy/api/container/web")) == "deployment/api/container/web"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("daemonset/x", "unknown target 'daemonset/x'"),
        ("pod", "unknown target 'pod'"),
        ("pod/", "invalid name '' in target 'pod/'"),
        ("pod/API", "invalid name 'API' in target 'pod/API'"),
        ("pod/api/container/", "invalid container name '' in target 'pod/api/container/'"),
    ],
)
def test_parse_errors_name_the_problem(text: str, message: str) -> None:
    with pytest.raises(InvalidKubeTarget) as caught:
        parse_kube_target(text)
    assert caught.value.message == message
    assert caught.value.hint


def test_local_targets_are_not_kube_targets() -> None:
    assert not is_kube_target("netns/pod")
    assert not is_kube_target("pid/12")


def test_selector_string_speaks_both_selector_forms() -> None:
    selector = {
        "matchLabels": {"app": "api", "tier": "web"},
        "matchExpressions": [
            {"key": "env", "operator": "In", "values": ["prod", "stage"]},
            {"key": "canary", "operator": "NotIn", "values": ["true"]},
            {"key": "team", "operator": "Exists"},
            {"key": "legacy", "operator": "DoesNotExist"},
        ],
    }
    assert selector_string(selector) == (
        "app=api,tier=web,env in (prod,stage),canary notin (true),team,!legacy"
    )
    assert selector_string({}) is None


def test_choose_pod_takes_the_oldest_ready_one() -> None:
    young = world.pod("api-b", created="2024-05-02T00:00:00Z")
    old = world.pod("api-a", created="2024-05-01T00:00:00Z")
    pending = world.pod("api-0", phase="Pending", ready=False, created="2024-01-01T00:00:00Z")
    assert choose_pod(KubeTarget("deployment", "api"), "shop", [young, pending, old]) is old


def test_no_ready_pod_names_each_candidate_and_its_state() -> None:
    pods = [
        world.pod("api-1", phase="Pending", ready=False, waiting_reason="ImagePullBackOff"),
        world.pod("api-2", ready=False),
    ]
    with pytest.raises(NoReadyPod) as caught:
        choose_pod(KubeTarget("deployment", "api"), "shop", pods)
    assert caught.value.message == (
        "deployment/api in namespace shop has 0 ready pods "
        "(found api-1 Pending (ImagePullBackOff), api-2 Running (not ready))"
    )


def test_no_pods_at_all() -> None:
    with pytest.raises(
        NoReadyPod, match=r"deployment/api in namespace shop has 0 ready pods \(it selects no pods"
    ):
        choose_pod(KubeTarget("deployment", "api"), "shop", [])


def test_container_choice() -> None:
    meshed = world.pod("api-1", containers=("istio-proxy", "app", "linkerd-proxy"))
    assert choose_container(KubeTarget("pod", "api-1"), meshed) == "app"
    two = world.pod("api-1", containers=("web", "worker"))
    with pytest.raises(ContainerNotFound) as caught:
        choose_container(KubeTarget("deployment", "api"), two)
    assert caught.value.message == "pod/api-1 has 2 containers (web, worker) and the target names none"
    assert caught.value.hint == "add the container to the target, e.g. deployment/api/container/web"
    assert choose_container(KubeTarget("pod", "api-1", "worker"), two) == "worker"
    annotated = world.pod(
        "api-1",
        containers=("web", "worker"),
        annotations={"kubectl.kubernetes.io/default-container": "worker"},
    )
    assert choose_container(KubeTarget("pod", "api-1"), annotated) == "worker"
    with pytest.raises(ContainerNotFound, match=r"pod/api-1 has no container 'db' \(it has web, worker\)"):
        choose_container(KubeTarget("pod", "api-1", "db"), two)


# -- through the API -------------------------------------------------------------------------------------


def _resolved(api: KubeApi, text: str, namespace: str = "default") -> PodTarget:
    resolved = resolve_target(api, parse_kube_target(text), namespace)
    assert isinstance(resolved, PodTarget)
    return resolved


def test_every_workload_kind_resolves_to_its_ready_pod(emulator: Emulator, api: KubeApi) -> None:
    cid = world.container_id()
    emulator.add(*world.deployment_with_pods("api", pods=2, ids={"app": cid}))
    sts = world.statefulset("db")
    emulator.add(sts, world.pod("db-0", labels={"app": "db"}, owner_of=sts))
    ro = world.rollout("web")
    emulator.add(ro, world.pod("web-7f-x", labels={"app": "web"}, owner_of=ro))
    job = world.job("migrate")
    emulator.add(job, world.pod("migrate-x1", labels=world.job_pod_labels(job), owner_of=job))
    cron = world.cronjob("report", active=["report-2"])
    old = world.job("report-1", cronjob=cron, active=0, created="2024-05-01T09:00:00Z")
    new = world.job("report-2", cronjob=cron, active=1, created="2024-05-01T10:00:00Z")
    emulator.add(cron, old, new, world.pod("report-2-x", labels=world.job_pod_labels(new), owner_of=new))
    emulator.add(world.service("api", selector={"app": "api"}))

    deployment = _resolved(api, "deployment/api")
    assert deployment.pod == "api-6d4f9c7b8-ax0z"  # the older of the two
    assert deployment.container == "app"
    assert deployment.container_id == f"containerd://{cid}"
    assert deployment.node == world.NODE
    assert deployment.namespace == "default"
    assert _resolved(api, "deploy/api").pod == deployment.pod
    assert _resolved(api, "replicaset/api-6d4f9c7b8").pod == deployment.pod
    assert _resolved(api, "service/api").pod == deployment.pod
    assert _resolved(api, "pod/api-6d4f9c7b8-bx1z").pod == "api-6d4f9c7b8-bx1z"
    assert _resolved(api, "statefulset/db").pod == "db-0"
    assert _resolved(api, "rollout/web").pod == "web-7f-x"
    assert _resolved(api, "job/migrate").pod == "migrate-x1"
    assert _resolved(api, "cronjob/report").pod == "report-2-x"
    assert resolve_target(api, parse_kube_target("targetless"), "default") == Targetless("default")


def test_a_named_container_is_used(emulator: Emulator, api: KubeApi) -> None:
    ids = {"web": world.container_id(), "worker": world.container_id()}
    emulator.add(*world.deployment_with_pods("api", containers=("web", "worker"), ids=ids))
    resolved = _resolved(api, "deployment/api/container/worker")
    assert (resolved.container, resolved.container_id) == ("worker", f"containerd://{ids['worker']}")


def test_missing_workload_lists_what_exists(emulator: Emulator, api: KubeApi) -> None:
    emulator.add(*world.deployment_with_pods("api"), *world.deployment_with_pods("billing"))
    with pytest.raises(TargetNotFound) as caught:
        resolve_target(api, parse_kube_target("deployment/apj"), "default")
    assert caught.value.message == "deployment/apj not found in namespace default"
    assert caught.value.hint == "deployments in namespace default: api, billing"


def test_missing_in_an_empty_namespace_suggests_the_namespace(emulator: Emulator, api: KubeApi) -> None:
    with pytest.raises(TargetNotFound) as caught:
        resolve_target(api, parse_kube_target("pod/api"), "shop")
    assert caught.value.hint == "there are no pods in namespace shop; is it the right namespace (-n)?"


def test_zero_ready_pods(emulator: Emulator, api: KubeApi) -> None:
    emulator.add(*world.deployment_with_pods("api", namespace="shop", ready=False))
    with pytest.raises(
        NoReadyPod,
        match=r"^deployment/api in namespace shop has 0 ready pods "
        r"\(found api-6d4f9c7b8-ax0z Running \(not ready\)\)$",
    ):
        resolve_target(api, parse_kube_target("deployment/api"), "shop")


def test_rollouts_not_installed(emulator: Emulator, api: KubeApi) -> None:
    emulator.rollouts_installed = False
    with pytest.raises(TargetNotFound) as caught:
        resolve_target(api, parse_kube_target("rollout/web"), "default")
    assert "is Argo Rollouts installed" in caught.value.hint


def test_cronjob_without_a_running_job(emulator: Emulator, api: KubeApi) -> None:
    cron = world.cronjob("report")
    emulator.add(cron, world.job("report-1", cronjob=cron, active=0))
    with pytest.raises(
        NoReadyPod, match=r"cronjob/report in namespace default has no running job \(1 finished job\)"
    ):
        resolve_target(api, parse_kube_target("cronjob/report"), "default")


def test_service_without_selector(emulator: Emulator, api: KubeApi) -> None:
    emulator.add(world.service("external"))
    with pytest.raises(NoReadyPod, match="service/external in namespace default has no selector"):
        resolve_target(api, parse_kube_target("service/external"), "default")


def test_forbidden_names_the_permission(emulator: Emulator, api: KubeApi) -> None:
    emulator.add(*world.deployment_with_pods("api"))
    emulator.forbid("get", "deployments", "default")
    with pytest.raises(Forbidden) as caught:
        resolve_target(api, parse_kube_target("deployment/api"), "default")
    assert caught.value.message.startswith("not allowed to get deployments.apps in namespace default: ")
    assert 'cannot get resource "deployments" in API group "apps"' in caught.value.message
    assert "docs/kubernetes.md" in caught.value.hint
