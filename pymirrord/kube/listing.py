"""What ``pymirrord ls`` shows and the editor helper's ``listTargets`` returns: the targets one can use now.

Ready pods (one entry per app container when a pod has several) and the workloads with at least one available
replica, in one namespace, plus the namespaces the user may list. A forbidden namespace list falls back to the
current namespace with a note, and so does a kind the user may not list (Argo Rollouts missing is silent): the
listing never fails for something it can leave out. ``assemble_listing`` is the pure part.

JSON shape (``--json``, and what ``listTargets`` returns)::

    {"targets": [{"path": "deployment/api", "kind": "deployment", "available": true}, ...],
     "current_namespace": "shop", "namespaces": ["default", "shop"], "notes": []}
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TextIO

from pymirrord.kube.client import (
    CRONJOB,
    DEPLOYMENT,
    JOB,
    POD,
    ROLLOUT,
    SERVICE,
    STATEFULSET,
    KubeApi,
    KubeSettings,
    Resource,
    connect,
)
from pymirrord.kube.errors import ApiRequestFailed, Forbidden, NotFound
from pymirrord.kube.targets import (
    SIDECAR_CONTAINERS,
    labels_of,
    matches_map_selector,
    name_of,
    pod_is_ready,
)

JsonObject = Mapping[str, Any]
KIND_ORDER = ("pod", "deployment", "rollout", "statefulset", "job", "cronjob", "service")


@dataclass(frozen=True)
class ListedTarget:
    path: str
    kind: str
    available: bool = True


@dataclass(frozen=True)
class TargetListing:
    namespace: str
    targets: tuple[ListedTarget, ...]
    namespaces: tuple[str, ...]
    notes: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "targets": [{"path": t.path, "kind": t.kind, "available": t.available} for t in self.targets],
            "current_namespace": self.namespace,
            "namespaces": list(self.namespaces),
            "notes": list(self.notes),
        }

    def paths(self) -> list[str]:
        return [target.path for target in self.targets]


@dataclass
class ListingInput:
    """The API objects of one namespace; None for a kind that could not be listed (its note says why)."""

    pods: Sequence[JsonObject] = field(default_factory=list)
    deployments: Sequence[JsonObject] | None = None
    rollouts: Sequence[JsonObject] | None = None
    statefulsets: Sequence[JsonObject] | None = None
    jobs: Sequence[JsonObject] | None = None
    cronjobs: Sequence[JsonObject] | None = None
    services: Sequence[JsonObject] | None = None


def _status(obj: JsonObject) -> Mapping[str, Any]:
    value = obj.get("status")
    return value if isinstance(value, Mapping) else {}


def _count(value: Any) -> int:
    return value if isinstance(value, int) else 0


def pod_entries(pod: JsonObject) -> list[str]:
    """``pod/NAME``, and ``pod/NAME/container/C`` for each app container when there are several."""
    spec = pod.get("spec") or {}
    names = [str(c.get("name")) for c in spec.get("containers") or [] if isinstance(c, Mapping)]
    apps = [name for name in names if name not in SIDECAR_CONTAINERS]
    base = f"pod/{name_of(pod)}"
    if len(apps) <= 1:
        return [base]
    return [f"{base}/container/{name}" for name in apps]


def assemble_listing(
    namespace: str, found: ListingInput, namespaces: Iterable[str], notes: Iterable[str] = ()
) -> TargetListing:
    """The listing from the namespace's objects (pure)."""
    ready_pods = [pod for pod in found.pods if pod_is_ready(pod)]
    entries: list[ListedTarget] = []
    for pod in sorted(ready_pods, key=name_of):
        entries.extend(ListedTarget(path, "pod") for path in pod_entries(pod))

    def available(kind: str, objects: Sequence[JsonObject] | None, *fields: str) -> None:
        for obj in sorted(objects or [], key=name_of):
            if any(_count(_status(obj).get(key)) > 0 for key in fields):
                entries.append(ListedTarget(f"{kind}/{name_of(obj)}", kind))

    available("deployment", found.deployments, "availableReplicas")
    available("rollout", found.rollouts, "availableReplicas")
    available("statefulset", found.statefulsets, "availableReplicas", "readyReplicas")
    available("job", found.jobs, "ready", "active")
    for cronjob in sorted(found.cronjobs or [], key=name_of):
        if _status(cronjob).get("active"):
            entries.append(ListedTarget(f"cronjob/{name_of(cronjob)}", "cronjob"))
    for service in sorted(found.services or [], key=name_of):
        selector = (service.get("spec") or {}).get("selector") or {}
        if any(matches_map_selector(labels_of(pod), selector) for pod in ready_pods):
            entries.append(ListedTarget(f"service/{name_of(service)}", "service"))
    ordered = sorted(entries, key=lambda t: KIND_ORDER.index(t.kind))
    listed = sorted(set(namespaces) | {namespace})
    return TargetListing(namespace, tuple(ordered), tuple(listed), tuple(notes))


def list_targets(api: KubeApi, namespace: str | None = None) -> TargetListing:
    """The listing for ``namespace`` (default: the kube context's), fetched through ``api``."""
    namespace = namespace or api.namespace
    notes: list[str] = []
    found = ListingInput(pods=api.list(POD, namespace))

    def optional(resource: Resource) -> Sequence[JsonObject] | None:
        try:
            return list(api.list(resource, namespace))
        except NotFound:
            return None  # the kind does not exist here (Argo Rollouts not installed)
        except Forbidden:
            notes.append(f"not allowed to list {resource.plural} in namespace {namespace}; they are left out")
            return None
        except ApiRequestFailed as error:
            notes.append(f"cannot list {resource.plural} in namespace {namespace}: {error.message}")
            return None

    found.deployments = optional(DEPLOYMENT)
    found.rollouts = optional(ROLLOUT)
    found.statefulsets = optional(STATEFULSET)
    found.jobs = optional(JOB)
    found.cronjobs = optional(CRONJOB)
    found.services = optional(SERVICE)
    try:
        namespaces = api.list_namespaces()
    except (Forbidden, ApiRequestFailed):
        notes.append(f"not allowed to list namespaces; showing namespace {namespace} only")
        namespaces = [namespace]
    return assemble_listing(namespace, found, namespaces, notes)


def render_text(listing: TargetListing) -> str:
    """One target per line (what ``pymirrord ls`` prints on stdout)."""
    return "".join(f"{path}\n" for path in listing.paths())


def run_ls(
    *,
    namespace: str | None = None,
    as_json: bool = False,
    config_file: str | None = None,
    kubeconfig: str | None = None,
    context: str | None = None,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    """``pymirrord ls``: kube settings from the flags, else from the config file; prints the listing."""
    out = out or sys.stdout
    err = err or sys.stderr
    settings = KubeSettings(kubeconfig=kubeconfig, context=context)
    if config_file is not None:
        from pymirrord.config import resolve_config

        config, _ = resolve_config(config_file)
        settings = KubeSettings(
            kubeconfig=kubeconfig or config.kubeconfig,
            context=context or config.kube_context,
            accept_invalid_certificates=config.accept_invalid_certificates,
        )
        namespace = namespace or config.target.namespace
    api = connect(settings)
    try:
        listing = list_targets(api, namespace)
    finally:
        api.close()
    if as_json:
        out.write(json.dumps(listing.to_json(), indent=2) + "\n")
    else:
        out.write(render_text(listing))
        if not listing.targets:
            print(f"pymirrord: no ready targets in namespace {listing.namespace}", file=err)
        others = [ns for ns in listing.namespaces if ns != listing.namespace]
        if others:
            print(f"pymirrord: other namespaces (-n): {', '.join(others)}", file=err)
    for note in listing.notes:
        print(f"pymirrord: note: {note}", file=err)
    return 0
