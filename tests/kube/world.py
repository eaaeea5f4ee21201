"""API objects for tests, shaped like a real cluster's: workloads, their pods, owner references, statuses."""

from __future__ import annotations

import secrets
import uuid
from typing import Any

NODE = "node-1"
Obj = dict[str, Any]


def container_id() -> str:
    return secrets.token_hex(32)


def owner(obj: Obj) -> Obj:
    return {
        "apiVersion": obj["apiVersion"],
        "kind": obj["kind"],
        "name": obj["metadata"]["name"],
        "uid": obj["metadata"]["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def meta(name: str, namespace: str, labels: dict[str, str] | None = None, **extra: Any) -> Obj:
    result: Obj = {"name": name, "namespace": namespace, "uid": str(uuid.uuid4()), "labels": labels or {}}
    result.update(extra)
    return result


def pod(
    name: str,
    namespace: str = "default",
    *,
    labels: dict[str, str] | None = None,
    containers: tuple[str, ...] = ("app",),
    ids: dict[str, str] | None = None,
    owner_of: Obj | None = None,
    phase: str = "Running",
    ready: bool = True,
    waiting_reason: str | None = None,
    node: str = NODE,
    created: str = "2024-05-01T10:00:00Z",
    annotations: dict[str, str] | None = None,
    ip: str = "10.0.0.7",
) -> Obj:
    ids = ids or {}
    statuses = []
    for container in containers:
        if waiting_reason:
            state: Obj = {"waiting": {"reason": waiting_reason}}
        elif phase == "Running":
            state = {"running": {"startedAt": created}}
        else:
            state = {"waiting": {"reason": "ContainerCreating"}}
        status: Obj = {
            "name": container,
            "image": f"example/{container}:1",
            "imageID": "",
            "ready": ready and phase == "Running",
            "restartCount": 0,
            "state": state,
        }
        if "running" in state:
            status["containerID"] = "containerd://" + ids.get(container, container_id())
        statuses.append(status)
    metadata = meta(name, namespace, labels, creationTimestamp=created, annotations=annotations or {})
    if owner_of is not None:
        metadata["ownerReferences"] = [owner(owner_of)]
    ready_text = "True" if ready and phase == "Running" else "False"
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": metadata,
        "spec": {
            "nodeName": node,
            "containers": [{"name": c, "image": f"example/{c}:1"} for c in containers],
        },
        "status": {
            "phase": phase,
            "podIP": ip,
            "conditions": [
                {"type": "PodScheduled", "status": "True"},
                {"type": "Ready", "status": ready_text},
                {"type": "ContainersReady", "status": ready_text},
            ],
            "containerStatuses": statuses,
        },
    }


def _workload(
    kind: str, api_version: str, name: str, namespace: str, selector: dict[str, str], status: Obj, **spec: Any
) -> Obj:
    return {
        "apiVersion": api_version,
        "kind": kind,
        "metadata": meta(name, namespace, dict(selector)),
        "spec": {
            "selector": {"matchLabels": dict(selector)},
            "template": {
                "metadata": {"labels": dict(selector)},
                "spec": {"containers": [{"name": "app", "image": "x"}]},
            },
            **spec,
        },
        "status": status,
    }


def deployment(
    name: str, namespace: str = "default", *, labels: dict[str, str] | None = None, available: int = 1
) -> Obj:
    return _workload(
        "Deployment",
        "apps/v1",
        name,
        namespace,
        labels or {"app": name},
        {"replicas": 1, "readyReplicas": available, "availableReplicas": available},
        replicas=1,
    )


def replicaset(
    name: str, namespace: str, parent: Obj | None, labels: dict[str, str], available: int = 1
) -> Obj:
    rs = _workload(
        "ReplicaSet",
        "apps/v1",
        name,
        namespace,
        labels,
        {"replicas": 1, "availableReplicas": available, "readyReplicas": available},
    )
    if parent is not None:
        rs["metadata"]["ownerReferences"] = [owner(parent)]
    return rs


def statefulset(
    name: str, namespace: str = "default", *, labels: dict[str, str] | None = None, ready: int = 1
) -> Obj:
    return _workload(
        "StatefulSet",
        "apps/v1",
        name,
        namespace,
        labels or {"app": name},
        {"replicas": 1, "readyReplicas": ready, "availableReplicas": ready},
    )


def rollout(
    name: str, namespace: str = "default", *, labels: dict[str, str] | None = None, available: int = 1
) -> Obj:
    return _workload(
        "Rollout",
        "argoproj.io/v1alpha1",
        name,
        namespace,
        labels or {"app": name},
        {"replicas": 1, "availableReplicas": available},
    )


def job(
    name: str,
    namespace: str = "default",
    *,
    active: int = 1,
    cronjob: Obj | None = None,
    created: str = "2024-05-01T10:00:00Z",
) -> Obj:
    uid = str(uuid.uuid4())
    result: Obj = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {**meta(name, namespace, {"job-name": name}), "uid": uid, "creationTimestamp": created},
        "spec": {
            "selector": {"matchLabels": {"batch.kubernetes.io/controller-uid": uid}},
            "template": {
                "metadata": {"labels": {"job-name": name}},
                "spec": {"containers": [{"name": "app", "image": "x"}]},
            },
        },
        "status": {"active": active, "ready": active},
    }
    if cronjob is not None:
        result["metadata"]["ownerReferences"] = [owner(cronjob)]
    return result


def job_pod_labels(job_obj: Obj) -> dict[str, str]:
    uid = job_obj["metadata"]["uid"]
    name = job_obj["metadata"]["name"]
    return {
        "job-name": name,
        "batch.kubernetes.io/job-name": name,
        "batch.kubernetes.io/controller-uid": uid,
        "controller-uid": uid,
    }


def cronjob(name: str, namespace: str = "default", *, active: list[str] | None = None) -> Obj:
    return {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": meta(name, namespace),
        "spec": {
            "schedule": "*/5 * * * *",
            "jobTemplate": {"spec": {"template": {"spec": {"containers": []}}}},
        },
        "status": {"active": [{"kind": "Job", "name": n} for n in active or []]},
    }


def service(name: str, namespace: str = "default", *, selector: dict[str, str] | None = None) -> Obj:
    spec: Obj = {"ports": [{"port": 80, "targetPort": 80}]}
    if selector:
        spec["selector"] = selector
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": meta(name, namespace),
        "spec": spec,
        "status": {},
    }


def deployment_with_pods(
    name: str,
    namespace: str = "default",
    *,
    pods: int = 1,
    ready: bool = True,
    containers: tuple[str, ...] = ("app",),
    ids: dict[str, str] | None = None,
) -> list[Obj]:
    """A Deployment, its ReplicaSet and its pods (the newest chain a real controller would make)."""
    labels = {"app": name}
    dep = deployment(name, namespace, labels=labels, available=pods if ready else 0)
    rs_labels = {**labels, "pod-template-hash": "6d4f9c7b8"}
    rs = replicaset(f"{name}-6d4f9c7b8", namespace, dep, rs_labels, available=pods if ready else 0)
    made = [dep, rs]
    for index in range(pods):
        made.append(
            pod(
                f"{name}-6d4f9c7b8-{'abcde'[index]}x{index}z",
                namespace,
                labels=rs_labels,
                containers=containers,
                ids=ids,
                owner_of=rs,
                ready=ready,
                created=f"2024-05-01T10:0{index}:00Z",
            )
        )
    return made
