"""The agent's Job, Secret and ephemeral container, field by field."""

from __future__ import annotations

from pymirrord.kube.agent_job import (
    AgentSpec,
    build_ephemeral_container,
    build_job,
    build_secret,
)
from pymirrord.kube.targets import KubeTarget, PodTarget, Targetless

TARGET = PodTarget(
    target=KubeTarget("deployment", "user-service"),
    namespace="shop",
    pod="user-service-6d4f9c7b8-x2x7z",
    pod_uid="pod-uid-1",
    container="app",
    container_id="containerd://" + "ab" * 32,
    node="node-7",
)
LABELS = {
    "app.kubernetes.io/name": "pymirrord-agent",
    "app.kubernetes.io/managed-by": "pymirrord",
    "pymirrord.io/session": "s3ss10n",
}
NO_SIDECAR = {
    "sidecar.istio.io/inject": "false",
    "linkerd.io/inject": "disabled",
    "kuma.io/sidecar-injection": "disabled",
    "consul.hashicorp.com/connect-inject": "false",
    "openservicemesh.io/sidecar-injection": "disabled",
    "dapr.io/enabled": "false",
}


def spec(**changes: object) -> AgentSpec:
    values: dict[str, object] = {
        "name": "pymirrord-agent-0123456789",
        "namespace": "shop",
        "target": TARGET,
        "port": 43210,
        "session": "s3ss10n",
        "image": "registry.example/pymirrord-agent:0.1.0",
        "ttl": 5,
        "idle_timeout": 60,
    }
    values.update(changes)
    return AgentSpec(**values)  # type: ignore[arg-type]


def test_job_field_by_field() -> None:
    job = build_job(spec())
    assert job["apiVersion"] == "batch/v1"
    assert job["kind"] == "Job"
    assert job["metadata"] == {
        "name": "pymirrord-agent-0123456789",
        "namespace": "shop",
        "labels": LABELS,
        "annotations": {
            **NO_SIDECAR,
            "pymirrord.io/target": "pod/user-service-6d4f9c7b8-x2x7z/container/app in namespace shop",
        },
    }
    assert job["spec"]["ttlSecondsAfterFinished"] == 5
    assert job["spec"]["backoffLimit"] == 0
    template = job["spec"]["template"]
    assert template["metadata"] == {
        "labels": {**LABELS, "sidecar.istio.io/inject": "false"},
        "annotations": NO_SIDECAR,
    }
    pod = template["spec"]
    assert pod["restartPolicy"] == "Never"
    assert pod["nodeName"] == "node-7"
    assert pod["hostPID"] is True
    assert pod["tolerations"] == [{"operator": "Exists"}]
    assert pod["automountServiceAccountToken"] is False
    assert pod["terminationGracePeriodSeconds"] == 10
    assert "hostNetwork" not in pod
    (container,) = pod["containers"]
    assert container["name"] == "pymirrord-agent"
    assert container["image"] == "registry.example/pymirrord-agent:0.1.0"
    assert container["imagePullPolicy"] == "IfNotPresent"
    assert container["command"] == ["pymirrord", "agent"]
    assert container["args"] == [
        "--container-id", "containerd://" + "ab" * 32,
        "--listen", "127.0.0.1:43210",
        "--idle-timeout", "60",
    ]  # fmt: skip
    assert container["env"] == [
        {
            "name": "PYMIRRORD_AGENT_TOKEN",
            "valueFrom": {"secretKeyRef": {"name": "pymirrord-agent-0123456789", "key": "token"}},
        },
        {"name": "PYTHONUNBUFFERED", "value": "1"},
    ]
    assert container["securityContext"] == {
        "runAsUser": 0,
        "runAsGroup": 0,
        "capabilities": {"add": ["NET_ADMIN", "NET_RAW", "SYS_ADMIN", "SYS_PTRACE"]},
    }
    assert container["resources"] == {
        "requests": {"cpu": "10m", "memory": "64Mi"},
        "limits": {"cpu": "1", "memory": "512Mi"},
    }
    assert set(container) == {
        "name", "image", "imagePullPolicy", "command", "args", "env", "securityContext", "resources",
    }  # fmt: skip


def test_the_token_never_appears_in_the_job() -> None:
    token = "sup3r-s3cret-t0ken"
    assert token not in repr(build_job(spec()))
    assert token in repr(build_secret(spec(), token, None))


def test_privileged_and_debug_logging() -> None:
    container = build_job(spec(privileged=True, log_level="debug"))["spec"]["template"]["spec"]["containers"][
        0
    ]
    assert container["securityContext"]["privileged"] is True
    assert container["args"][-1] == "--verbose"


def test_secret_owned_by_the_job() -> None:
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "pymirrord-agent-0123456789", "uid": "job-uid"},
    }
    assert build_secret(spec(), "t0ken", job) == {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": "pymirrord-agent-0123456789",
            "namespace": "shop",
            "labels": LABELS,
            "ownerReferences": [
                {
                    "apiVersion": "batch/v1",
                    "kind": "Job",
                    "name": "pymirrord-agent-0123456789",
                    "uid": "job-uid",
                }
            ],
        },
        "type": "Opaque",
        "stringData": {"token": "t0ken"},
    }


def test_targetless_agent_is_unprivileged_and_free_to_schedule() -> None:
    pod = build_job(spec(target=Targetless("shop")))["spec"]["template"]["spec"]
    for key in ("nodeName", "hostPID", "tolerations"):
        assert key not in pod
    (container,) = pod["containers"]
    assert container["args"] == ["--targetless", "--listen", "127.0.0.1:43210", "--idle-timeout", "60"]
    assert container["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
    }


def test_ephemeral_container() -> None:
    container = build_ephemeral_container(spec(ephemeral=True))
    assert container == {
        "name": "pymirrord-agent-0123456789",
        "image": "registry.example/pymirrord-agent:0.1.0",
        "imagePullPolicy": "IfNotPresent",
        "command": ["pymirrord", "agent"],
        "args": ["--target", "pid/1", "--listen", "127.0.0.1:43210", "--idle-timeout", "60"],
        "env": [
            {
                "name": "PYMIRRORD_AGENT_TOKEN",
                "valueFrom": {"secretKeyRef": {"name": "pymirrord-agent-0123456789", "key": "token"}},
            },
            {"name": "PYTHONUNBUFFERED", "value": "1"},
        ],
        "securityContext": {
            "runAsUser": 0,
            "runAsGroup": 0,
            "capabilities": {"add": ["NET_ADMIN", "NET_RAW", "SYS_ADMIN", "SYS_PTRACE"]},
        },
        "targetContainerName": "app",
    }
