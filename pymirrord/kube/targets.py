"""Kubernetes targets: parse ``kind/NAME[/container/C]``; resolve it to one running, ready pod and container.

The decisions (which pods a workload selects, which of them is usable, which container is meant, what to say
when nothing fits) are pure functions over API objects as plain dicts; ``resolve_target`` is the thin shell
that fetches those objects through ``KubeApi``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from pymirrord.kube.client import (
    CRONJOB,
    DEPLOYMENT,
    JOB,
    POD,
    REPLICASET,
    ROLLOUT,
    SERVICE,
    STATEFULSET,
    JsonObject,
    KubeApi,
    Resource,
)
from pymirrord.kube.errors import (
    ContainerNotFound,
    InvalidKubeTarget,
    NoReadyPod,
    NotFound,
    TargetNotFound,
)

KINDS: dict[str, Resource] = {
    "pod": POD,
    "deployment": DEPLOYMENT,
    "statefulset": STATEFULSET,
    "replicaset": REPLICASET,
    "job": JOB,
    "cronjob": CRONJOB,
    "rollout": ROLLOUT,
    "service": SERVICE,
}
ALIASES = {"deploy": "deployment", "sts": "statefulset", "rs": "replicaset", "svc": "service"}

# Containers that service meshes and similar tools add next to the app; never the one a user means.
SIDECAR_CONTAINERS = frozenset(
    {
        "istio-proxy",
        "istio-init",
        "istio-validation",
        "linkerd-proxy",
        "linkerd-init",
        "linkerd-network-validator",
        "envoy",
        "envoy-sidecar",
        "consul-dataplane",
        "consul-connect-envoy-sidecar",
        "consul-connect-inject-init",
        "kuma-sidecar",
        "kuma-init",
        "aws-appmesh-envoy",
        "daprd",
        "vault-agent",
        "vault-agent-init",
        "cloud-sql-proxy",
        "cloudsql-proxy",
    }
)
DEFAULT_CONTAINER_ANNOTATION = "kubectl.kubernetes.io/default-container"

_NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
_CONTAINER = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_FORMS_HINT = (
    "write pod/NAME, deployment/NAME (or deploy/), statefulset/, replicaset/, job/, cronjob/, rollout/ or "
    "service/NAME, optionally followed by /container/CONTAINER; or targetless"
)


@dataclass(frozen=True)
class KubeTarget:
    """A parsed Kubernetes target: ``kind`` is a key of ``KINDS`` or ``targetless`` (``name`` None)."""

    kind: str
    name: str | None = None
    container: str | None = None

    def __str__(self) -> str:
        if self.kind == "targetless":
            return "targetless"
        text = f"{self.kind}/{self.name}"
        return f"{text}/container/{self.container}" if self.container else text

    @property
    def workload(self) -> str:
        """``kind/name`` without the container."""
        return "targetless" if self.kind == "targetless" else f"{self.kind}/{self.name}"


@dataclass(frozen=True)
class PodTarget:
    """A resolved target: the pod and container the agent works next to."""

    target: KubeTarget
    namespace: str
    pod: str
    pod_uid: str
    container: str
    container_id: str
    """As the pod status gives it, runtime prefix included: ``containerd://0123abcd...``."""
    node: str
    pod_ip: str | None = None

    def describe(self) -> str:
        return f"pod/{self.pod}/container/{self.container} in namespace {self.namespace}"


@dataclass(frozen=True)
class Targetless:
    """No target: an agent pod of its own serves outgoing traffic and DNS from the cluster."""

    namespace: str

    def describe(self) -> str:
        return f"targetless in namespace {self.namespace}"


ResolvedTarget = PodTarget | Targetless


def is_kube_target(text: str) -> bool:
    """Whether ``text`` names a Kubernetes target (as opposed to ``netns/`` or ``pid/``)."""
    kind = text.partition("/")[0]
    return text == "targetless" or kind in KINDS or kind in ALIASES


def parse_kube_target(text: str) -> KubeTarget:
    """``deployment/api/container/main`` -> ``KubeTarget("deployment", "api", "main")``."""
    text = text.strip()
    if text == "targetless":
        return KubeTarget("targetless")
    kind, sep, rest = text.partition("/")
    kind = ALIASES.get(kind, kind)
    if not sep or kind not in KINDS:
        raise InvalidKubeTarget(f"unknown target {text!r}", _FORMS_HINT)
    name, _, container = rest.partition("/container/")
    if not name or not _NAME.match(name) or len(name) > 253:
        raise InvalidKubeTarget(
            f"invalid name {name!r} in target {text!r}",
            "names are lowercase letters, digits, '-' and '.', as `kubectl get` shows them",
        )
    if "/container/" in rest and (not container or not _CONTAINER.match(container)):
        raise InvalidKubeTarget(f"invalid container name {container!r} in target {text!r}", _FORMS_HINT)
    return KubeTarget(kind, name, container or None)


# -- pure decisions over API objects -------------------------------------------------------------------------


def metadata(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    value = obj.get("metadata")
    return value if isinstance(value, Mapping) else {}


def name_of(obj: Mapping[str, Any]) -> str:
    return str(metadata(obj).get("name", ""))


def labels_of(obj: Mapping[str, Any]) -> Mapping[str, str]:
    value = metadata(obj).get("labels")
    return value if isinstance(value, Mapping) else {}


def _section(obj: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = obj.get(key)
    return value if isinstance(value, Mapping) else {}


def _list(obj: Mapping[str, Any], key: str) -> list[Mapping[str, Any]]:
    value = obj.get(key)
    return [item for item in value if isinstance(item, Mapping)] if isinstance(value, list) else []


def selector_string(selector: Mapping[str, Any] | None) -> str | None:
    """A ``LabelSelector`` (``matchLabels`` and ``matchExpressions``) as the query syntax; None if empty."""
    if not selector:
        return None
    parts = [f"{key}={value}" for key, value in sorted((selector.get("matchLabels") or {}).items())]
    for expression in selector.get("matchExpressions") or []:
        key, operator = expression.get("key"), expression.get("operator")
        values = ",".join(expression.get("values") or [])
        if operator == "In":
            parts.append(f"{key} in ({values})")
        elif operator == "NotIn":
            parts.append(f"{key} notin ({values})")
        elif operator == "Exists":
            parts.append(str(key))
        elif operator == "DoesNotExist":
            parts.append(f"!{key}")
    return ",".join(parts) or None


def map_selector_string(selector: Mapping[str, str] | None) -> str | None:
    """A service's plain ``key: value`` selector as the query syntax; None if empty."""
    if not selector:
        return None
    return ",".join(f"{key}={value}" for key, value in sorted(selector.items()))


def matches_map_selector(labels: Mapping[str, str], selector: Mapping[str, str]) -> bool:
    return bool(selector) and all(labels.get(key) == value for key, value in selector.items())


def pod_is_ready(pod: Mapping[str, Any]) -> bool:
    """Running, its Ready condition true, and not being deleted."""
    status = _section(pod, "status")
    if status.get("phase") != "Running" or metadata(pod).get("deletionTimestamp"):
        return False
    return any(
        condition.get("type") == "Ready" and condition.get("status") == "True"
        for condition in _list(status, "conditions")
    )


def pod_state(pod: Mapping[str, Any]) -> str:
    """A short description of why a pod is (not) usable: ``Running``, ``Pending (ImagePullBackOff)``, ..."""
    status = _section(pod, "status")
    phase = str(status.get("phase") or "Unknown")
    if metadata(pod).get("deletionTimestamp"):
        return "Terminating"
    reasons = []
    for container in _list(status, "containerStatuses"):
        state = _section(container, "state")
        for key in ("waiting", "terminated"):
            reason = _section(state, key).get("reason")
            if reason:
                reasons.append(str(reason))
    if phase == "Running" and not pod_is_ready(pod):
        reasons.append("not ready")
    unique = list(dict.fromkeys(reasons))
    return f"{phase} ({', '.join(unique)})" if unique else phase


def choose_pod(target: KubeTarget, namespace: str, pods: Iterable[Mapping[str, Any]]) -> Mapping[str, Any]:
    """The oldest running, ready pod; ``NoReadyPod`` names every candidate and its state otherwise."""
    candidates = list(pods)
    ready = [pod for pod in candidates if pod_is_ready(pod)]
    if ready:
        return min(ready, key=lambda pod: (str(metadata(pod).get("creationTimestamp", "")), name_of(pod)))
    if not candidates:
        raise NoReadyPod(
            f"{target.workload} in namespace {namespace} has 0 ready pods (it selects no pods at all)",
            "is it scaled to 0? `kubectl get pods -n " + namespace + "` shows what runs",
        )
    found = ", ".join(f"{name_of(pod)} {pod_state(pod)}" for pod in candidates[:5])
    more = f" and {len(candidates) - 5} more" if len(candidates) > 5 else ""
    raise NoReadyPod(
        f"{target.workload} in namespace {namespace} has 0 ready pods (found {found}{more})",
        "wait for a pod to become ready, or see `kubectl describe pod` for why none is",
    )


def choose_container(target: KubeTarget, pod: Mapping[str, Any]) -> str:
    """The container meant: the named one, the only app container, or the pod's default-container."""
    names = [str(c.get("name")) for c in _list(_section(pod, "spec"), "containers")]
    pod_name = name_of(pod)
    if target.container:
        if target.container not in names:
            raise ContainerNotFound(
                f"pod/{pod_name} has no container {target.container!r} (it has {', '.join(names) or 'none'})",
                f"use one of: {', '.join(f'{target.workload}/container/{n}' for n in names)}",
            )
        return target.container
    apps = [name for name in names if name not in SIDECAR_CONTAINERS]
    if len(apps) == 1:
        return apps[0]
    default = metadata(pod).get("annotations", {}).get(DEFAULT_CONTAINER_ANNOTATION)
    if default in names:
        return str(default)
    if not apps:
        raise ContainerNotFound(
            f"pod/{pod_name} has no containers besides mesh sidecars ({', '.join(names)})"
        )
    raise ContainerNotFound(
        f"pod/{pod_name} has {len(apps)} containers ({', '.join(apps)}) and the target names none",
        f"add the container to the target, e.g. {target.workload}/container/{apps[0]}",
    )


def pod_target(target: KubeTarget, namespace: str, pod: Mapping[str, Any]) -> PodTarget:
    """The resolved target for a chosen pod, with the container's id and the pod's node."""
    container = choose_container(target, pod)
    pod_name = name_of(pod)
    status = next(
        (s for s in _list(_section(pod, "status"), "containerStatuses") if s.get("name") == container), None
    )
    if status is None or not status.get("containerID") or "running" not in _section(status, "state"):
        state = pod_state(pod)
        raise NoReadyPod(
            f"container {container!r} of pod/{pod_name} in namespace {namespace} is not running ({state})",
            "wait for it to start, or choose another container",
        )
    node = str(_section(pod, "spec").get("nodeName") or "")
    if not node:
        raise NoReadyPod(f"pod/{pod_name} in namespace {namespace} is not scheduled on a node yet")
    return PodTarget(
        target=target,
        namespace=namespace,
        pod=pod_name,
        pod_uid=str(metadata(pod).get("uid", "")),
        container=container,
        container_id=str(status["containerID"]),
        node=node,
        pod_ip=_section(pod, "status").get("podIP"),
    )


def workload_selector(target: KubeTarget, namespace: str, workload: Mapping[str, Any]) -> str:
    """The label selector that finds a workload's pods."""
    spec = _section(workload, "spec")
    if target.kind == "service":
        selector = map_selector_string(spec.get("selector"))
        if selector is None:
            raise NoReadyPod(
                f"service/{target.name} in namespace {namespace} has no selector, so no pods behind it",
                "target one of the pods or workloads that serve it instead",
            )
        return selector
    if target.kind == "job":
        selector = selector_string(spec.get("selector"))
        return selector or f"job-name={target.name}"
    selector = selector_string(spec.get("selector"))
    if selector is None:
        raise NoReadyPod(f"{target.workload} in namespace {namespace} has no pod selector")
    return selector


def newest_active_job(target: KubeTarget, namespace: str, jobs: Iterable[Mapping[str, Any]]) -> str:
    """The name of the cron job's newest job that still has running pods."""
    owned = [
        job
        for job in jobs
        if any(
            ref.get("kind") == "CronJob" and ref.get("name") == target.name
            for ref in metadata(job).get("ownerReferences") or []
        )
    ]
    active = [job for job in owned if (_section(job, "status").get("active") or 0) > 0]
    if not active:
        raise NoReadyPod(
            f"cronjob/{target.name} in namespace {namespace} has no running job "
            f"({len(owned)} finished job{'s' if len(owned) != 1 else ''})",
            "target it while a job runs, or start one: kubectl create job --from=cronjob/" + str(target.name),
        )
    newest = max(active, key=lambda job: (str(metadata(job).get("creationTimestamp", "")), name_of(job)))
    return name_of(newest)


# -- the fetching shell --------------------------------------------------------------------------------------


def target_namespace(config_namespace: str | None, api: KubeApi) -> str:
    """The target's namespace (from the config or ``-n``), else the kube context's."""
    return config_namespace or api.namespace


def resolve_target(api: KubeApi, target: KubeTarget, namespace: str) -> ResolvedTarget:
    """Fetch what the target names and pick its pod and container (``KubeError`` if nothing fits)."""
    if target.kind == "targetless":
        return Targetless(namespace)
    assert target.name is not None
    resource = KINDS[target.kind]
    if target.kind == "pod":
        named = _get(api, resource, namespace, target)
        if not pod_is_ready(named):
            raise NoReadyPod(
                f"pod/{target.name} in namespace {namespace} is not ready ({pod_state(named)})",
                "wait for it to become ready; `kubectl describe pod " + target.name + "` says why it is not",
            )
        return pod_target(target, namespace, named)
    workload: Mapping[str, Any] = _get(api, resource, namespace, target)
    if target.kind == "cronjob":
        jobs = api.list(JOB, namespace)
        job_name = newest_active_job(target, namespace, jobs)
        job: Mapping[str, Any] = api.get(JOB, namespace, job_name)
        selector = workload_selector(KubeTarget("job", job_name), namespace, job)
    elif target.kind == "rollout" and not _section(workload, "spec").get("selector"):
        selector = _rollout_workload_ref_selector(api, target, namespace, workload)
    else:
        selector = workload_selector(target, namespace, workload)
    pods = api.list(POD, namespace, label_selector=selector)
    pod = choose_pod(target, namespace, pods)
    return pod_target(target, namespace, pod)


def _get(api: KubeApi, resource: Resource, namespace: str, target: KubeTarget) -> JsonObject:
    try:
        return api.get(resource, namespace, str(target.name))
    except NotFound:
        pass
    try:
        existing = sorted(name_of(obj) for obj in api.list(resource, namespace))
    except NotFound:
        existing = []
    if resource is ROLLOUT and not existing:
        hint = "is Argo Rollouts installed in this cluster? `kubectl get rollouts -n " + namespace + "`"
    elif existing:
        shown = ", ".join(existing[:10]) + (f" and {len(existing) - 10} more" if len(existing) > 10 else "")
        hint = f"{resource.plural} in namespace {namespace}: {shown}"
    else:
        hint = f"there are no {resource.plural} in namespace {namespace}; is it the right namespace (-n)?"
    raise TargetNotFound(f"{target.workload} not found in namespace {namespace}", hint)


def _rollout_workload_ref_selector(
    api: KubeApi, target: KubeTarget, namespace: str, rollout: Mapping[str, Any]
) -> str:
    # A Rollout may borrow its pod template and selector from a Deployment through spec.workloadRef.
    ref = _section(_section(rollout, "spec"), "workloadRef")
    if ref.get("kind") != "Deployment" or not ref.get("name"):
        raise NoReadyPod(
            f"{target.workload} in namespace {namespace} has neither a selector nor a workloadRef"
        )
    deployment = api.get(DEPLOYMENT, namespace, str(ref["name"]))
    return workload_selector(KubeTarget("deployment", str(ref["name"])), namespace, deployment)
