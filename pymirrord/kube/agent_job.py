"""The agent's API objects as plain dicts: a Job (or an ephemeral container) and the Secret with its token.

Pure: nothing here talks to a cluster, so every field is asserted by tests. The choices, each for a reason:

- The Job's pod is pinned to the target's node (``nodeName``) with ``hostPID``, so the agent sees the target
  container's processes in ``/proc`` and finds it by container id, whatever the runtime.
- Capabilities ``NET_ADMIN`` (iptables), ``NET_RAW`` (capturing mirrored ports; without it they are
  redirected), ``SYS_ADMIN`` (setns) and ``SYS_PTRACE`` (another container's ``/proc/PID/ns/net`` and
  ``/proc/PID/environ``); ``privileged`` only when ``agent.privileged`` asks for it.
- Labels and annotations keep service meshes from injecting a sidecar into the agent pod.
- The token reaches the agent as an env var from a Secret (``secretKeyRef``), never in the pod spec; the
  Secret is owned by the Job (or the target pod, for an ephemeral agent), so it goes with its owner.
- The agent listens on 127.0.0.1 inside its pod; only the API server's port-forward reaches it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pymirrord import __version__
from pymirrord.kube.targets import PodTarget, ResolvedTarget, Targetless

JsonObject = dict[str, Any]

DEFAULT_IMAGE = f"ghcr.io/pymirrord/pymirrord-agent:{__version__}"
CONTAINER_NAME = "pymirrord-agent"
TOKEN_KEY = "token"
TOKEN_ENV = "PYMIRRORD_AGENT_TOKEN"
CAPABILITIES = ("NET_ADMIN", "NET_RAW", "SYS_ADMIN", "SYS_PTRACE")
DEFAULT_IDLE_TIMEOUT = 60

MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
NAME_LABEL = "app.kubernetes.io/name"
SESSION_LABEL = "pymirrord.io/session"
TARGET_ANNOTATION = "pymirrord.io/target"

# Read by Istio (label and annotation), Linkerd, Kuma, Consul, Open Service Mesh and Dapr injectors.
NO_SIDECAR_LABELS = {"sidecar.istio.io/inject": "false"}
NO_SIDECAR_ANNOTATIONS = {
    "sidecar.istio.io/inject": "false",
    "linkerd.io/inject": "disabled",
    "kuma.io/sidecar-injection": "disabled",
    "consul.hashicorp.com/connect-inject": "false",
    "openservicemesh.io/sidecar-injection": "disabled",
    "dapr.io/enabled": "false",
}


@dataclass(frozen=True)
class AgentSpec:
    """Everything the builders need: names, where, what image, how the agent is started."""

    name: str
    """The Job's name (``pymirrord-agent-<hex>``); the Secret and container names derive from it."""
    namespace: str
    target: ResolvedTarget
    port: int
    """The agent's websocket port inside its pod (inside the target pod for an ephemeral agent)."""
    session: str
    image: str = DEFAULT_IMAGE
    ttl: int = 1
    idle_timeout: int = DEFAULT_IDLE_TIMEOUT
    privileged: bool = False
    log_level: str = "info"
    ephemeral: bool = False
    """An ephemeral container in the target pod instead of a Job (the container's name is ``name``)."""

    @property
    def secret_name(self) -> str:
        return self.name

    @property
    def targetless(self) -> bool:
        return isinstance(self.target, Targetless)


def labels(spec: AgentSpec) -> dict[str, str]:
    return {
        NAME_LABEL: "pymirrord-agent",
        MANAGED_BY_LABEL: "pymirrord",
        SESSION_LABEL: spec.session,
    }


def agent_args(spec: AgentSpec) -> list[str]:
    """The ``pymirrord agent`` arguments (the command is ``pymirrord agent``)."""
    if isinstance(spec.target, PodTarget):
        where = ["--container-id", spec.target.container_id]
    else:
        where = ["--targetless"]
    args = [*where, "--listen", f"127.0.0.1:{spec.port}", "--idle-timeout", str(spec.idle_timeout)]
    if spec.log_level.lower() in {"debug", "trace"}:
        args.append("--verbose")
    return args


def _env(spec: AgentSpec) -> list[JsonObject]:
    return [
        {"name": TOKEN_ENV, "valueFrom": {"secretKeyRef": {"name": spec.secret_name, "key": TOKEN_KEY}}},
        {"name": "PYTHONUNBUFFERED", "value": "1"},
    ]


def _security_context(spec: AgentSpec) -> JsonObject:
    if spec.targetless:
        return {
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
        }
    context: JsonObject = {
        "runAsUser": 0,
        "runAsGroup": 0,
        "capabilities": {"add": list(CAPABILITIES)},
    }
    if spec.privileged:
        context["privileged"] = True
    return context


def build_job(spec: AgentSpec) -> JsonObject:
    """The agent Job: one pod, never restarted, removed ``ttl`` seconds after it ends."""
    pod_spec: JsonObject = {
        "restartPolicy": "Never",
        "automountServiceAccountToken": False,
        "terminationGracePeriodSeconds": 10,
        "containers": [
            {
                "name": CONTAINER_NAME,
                "image": spec.image,
                "imagePullPolicy": "IfNotPresent",
                "command": ["pymirrord", "agent"],
                "args": agent_args(spec),
                "env": _env(spec),
                "securityContext": _security_context(spec),
                "resources": {
                    "requests": {"cpu": "10m", "memory": "64Mi"},
                    "limits": {"cpu": "1", "memory": "512Mi"},
                },
            }
        ],
    }
    if isinstance(spec.target, PodTarget):
        # nodeName bypasses the scheduler: the agent must run where the target runs, even on a tainted node.
        pod_spec["nodeName"] = spec.target.node
        pod_spec["hostPID"] = True
        pod_spec["tolerations"] = [{"operator": "Exists"}]
    annotations = dict(NO_SIDECAR_ANNOTATIONS)
    target_text = spec.target.describe()
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": spec.name,
            "namespace": spec.namespace,
            "labels": labels(spec),
            "annotations": {**annotations, TARGET_ANNOTATION: target_text},
        },
        "spec": {
            "ttlSecondsAfterFinished": spec.ttl,
            "backoffLimit": 0,
            "template": {
                "metadata": {
                    "labels": {**labels(spec), **NO_SIDECAR_LABELS},
                    "annotations": annotations,
                },
                "spec": pod_spec,
            },
        },
    }


def build_ephemeral_container(spec: AgentSpec) -> JsonObject:
    """The agent as an ephemeral container in the target pod, sharing the target container's pid namespace.

    Pid 1 there is the target container's first process, whose network namespace is the pod's.
    """
    if not isinstance(spec.target, PodTarget):
        raise ValueError("an ephemeral agent needs a target pod")
    return {
        "name": spec.name,
        "image": spec.image,
        "imagePullPolicy": "IfNotPresent",
        "command": ["pymirrord", "agent"],
        "args": [
            "--target",
            "pid/1",
            "--listen",
            f"127.0.0.1:{spec.port}",
            "--idle-timeout",
            str(spec.idle_timeout),
        ],
        "env": _env(spec),
        "securityContext": _security_context(spec),
        "targetContainerName": spec.target.container,
    }


def owner_reference(owner: JsonObject) -> JsonObject:
    """An ownerReference to a created object (its ``kind``, ``apiVersion``, name and uid)."""
    meta = owner.get("metadata") or {}
    return {
        "apiVersion": owner.get("apiVersion", "v1"),
        "kind": owner.get("kind", ""),
        "name": meta.get("name", ""),
        "uid": meta.get("uid", ""),
    }


def build_secret(spec: AgentSpec, token: str, owner: JsonObject | None) -> JsonObject:
    """The Secret holding the session token, owned by ``owner`` (the Job, or the target pod) when given."""
    meta: JsonObject = {"name": spec.secret_name, "namespace": spec.namespace, "labels": labels(spec)}
    if owner is not None:
        meta["ownerReferences"] = [owner_reference(owner)]
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": meta,
        "type": "Opaque",
        "stringData": {TOKEN_KEY: token},
    }
