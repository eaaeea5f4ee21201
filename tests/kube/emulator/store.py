"""The emulated API server's objects: a thread-safe store, label and field selectors, owner references.

Objects are kept as the JSON the API serves (camelCase dicts). The store knows the resource kinds the
emulator serves (``RESOURCES``) and does what the API server itself does on create and delete: uids,
timestamps, resource versions, ``stringData`` folded into ``data``, and garbage collection of dependents by
owner reference (``Background``/``Foreground``) or orphaning them (``Orphan``, the default for Jobs, as in a
real cluster).
"""

from __future__ import annotations

import base64
import copy
import itertools
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

Obj = dict[str, Any]


@dataclass(frozen=True)
class ResourceType:
    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool = True

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version


RESOURCES = [
    ResourceType("", "v1", "namespaces", "Namespace", namespaced=False),
    ResourceType("", "v1", "pods", "Pod"),
    ResourceType("", "v1", "services", "Service"),
    ResourceType("", "v1", "secrets", "Secret"),
    ResourceType("", "v1", "events", "Event"),
    ResourceType("apps", "v1", "deployments", "Deployment"),
    ResourceType("apps", "v1", "statefulsets", "StatefulSet"),
    ResourceType("apps", "v1", "replicasets", "ReplicaSet"),
    ResourceType("batch", "v1", "jobs", "Job"),
    ResourceType("batch", "v1", "cronjobs", "CronJob"),
    ResourceType("argoproj.io", "v1alpha1", "rollouts", "Rollout"),
]
BY_PATH = {(r.group, r.version, r.plural): r for r in RESOURCES}
BY_KIND = {r.kind: r for r in RESOURCES}


def now_rfc3339() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


class SelectorError(ValueError):
    pass


_REQUIREMENT = re.compile(
    r"""^\s*(?:
        (?P<notexists>!\s*(?P<nk>[^\s,=!()]+))
      | (?P<setkey>[^\s,=!()]+)\s+(?P<op>in|notin)\s*\((?P<values>[^)]*)\)
      | (?P<eqkey>[^\s,=!()]+)\s*(?P<eq>==|=|!=)\s*(?P<value>[^\s,=!()]*)
      | (?P<exists>[^\s,=!()]+)
    )\s*$""",
    re.VERBOSE,
)


def split_selector(text: str) -> list[str]:
    """Split at commas outside parentheses."""
    parts, depth, current = [], 0, ""
    for char in text:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        if char == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
    if current.strip():
        parts.append(current)
    return [part for part in parts if part.strip()]


Labels = Mapping[str, str]
LabelCheck = Callable[[Labels], bool]


def _requirement(match: re.Match[str]) -> LabelCheck:
    if match["notexists"]:
        absent = match["nk"]
        return lambda labels: absent not in labels
    if match["setkey"]:
        key = match["setkey"]
        values = {v.strip() for v in match["values"].split(",") if v.strip()}
        if match["op"] == "in":
            return lambda labels: labels.get(key) in values
        return lambda labels: labels.get(key) not in values
    if match["eqkey"]:
        key, value = match["eqkey"], match["value"]
        if match["eq"] == "!=":
            return lambda labels: labels.get(key) != value
        return lambda labels: labels.get(key) == value
    present = match["exists"]
    return lambda labels: present in labels


def label_matcher(selector: str | None) -> LabelCheck:
    """A predicate for a ``labelSelector`` query (equality- and set-based requirements)."""
    checks: list[LabelCheck] = []
    for part in split_selector(selector or ""):
        match = _REQUIREMENT.match(part)
        if not match:
            raise SelectorError(f"unable to parse requirement: {part!r}")
        checks.append(_requirement(match))
    return lambda labels: all(check(labels) for check in checks)


def field_value(obj: Mapping[str, Any], path: str) -> str | None:
    value: Any = obj
    for part in path.split("."):
        if not isinstance(value, Mapping):
            return None
        value = value.get(part)
    return None if value is None else str(value)


def field_matcher(selector: str | None) -> Callable[[Mapping[str, Any]], bool]:
    """A predicate for a ``fieldSelector`` (``a.b=c``, ``a.b!=c``, comma-separated)."""
    if not selector:
        return lambda obj: True
    checks = []
    for part in split_selector(selector):
        negate = "!=" in part
        path, _, value = part.partition("!=" if negate else "=")
        path = path.strip().rstrip("=")
        value = value.lstrip("=").strip()
        checks.append((path, value, negate))
    return lambda obj: all((field_value(obj, p) == v) != neg for p, v, neg in checks)


class Conflict(Exception):
    pass


class Store:
    """Every object, by (resource, namespace, name). All methods are thread-safe."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self._objects: dict[tuple[ResourceType, str, str], Obj] = {}
        self._versions = itertools.count(1)
        self.on_delete: list[Callable[[ResourceType, Obj], None]] = []
        self.on_create: list[Callable[[ResourceType, Obj], None]] = []

    def _prepare(self, resource: ResourceType, namespace: str, obj: Obj) -> Obj:
        obj = copy.deepcopy(obj)
        obj["apiVersion"] = resource.api_version
        obj["kind"] = resource.kind
        meta = obj.setdefault("metadata", {})
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = meta["generateName"] + uuid.uuid4().hex[:5]
        if resource.namespaced:
            meta["namespace"] = namespace
        meta.setdefault("uid", str(uuid.uuid4()))
        meta.setdefault("creationTimestamp", now_rfc3339())
        meta["resourceVersion"] = str(next(self._versions))
        if resource.kind == "Secret" and "stringData" in obj:
            data = obj.setdefault("data", {})
            for key, value in obj.pop("stringData").items():
                data[key] = base64.b64encode(str(value).encode()).decode()
        return obj

    def create(self, resource: ResourceType, namespace: str, obj: Obj, *, notify: bool = True) -> Obj:
        with self.lock:
            obj = self._prepare(resource, namespace, obj)
            key = (resource, namespace if resource.namespaced else "", obj["metadata"]["name"])
            if key in self._objects:
                raise Conflict(obj["metadata"]["name"])
            if resource.namespaced and namespace:
                self._ensure_namespace(namespace)
            self._objects[key] = obj
            created = copy.deepcopy(obj)
        if notify:
            for hook in list(self.on_create):
                hook(resource, created)
        return created

    def put(self, resource: ResourceType, obj: Obj) -> Obj:
        """Create or replace without hooks (for tests building the world)."""
        with self.lock:
            namespace = obj.get("metadata", {}).get("namespace", "") if resource.namespaced else ""
            key = (resource, namespace, obj["metadata"]["name"])
            existing = self._objects.get(key)
            prepared = self._prepare(resource, namespace, obj)
            if existing is not None:
                prepared["metadata"]["uid"] = existing["metadata"]["uid"]
            if resource.namespaced and namespace:
                self._ensure_namespace(namespace)
            self._objects[key] = prepared
            return copy.deepcopy(prepared)

    def _ensure_namespace(self, namespace: str) -> None:
        ns_type = BY_KIND["Namespace"]
        key = (ns_type, "", namespace)
        if key not in self._objects:
            self._objects[key] = self._prepare(
                ns_type, "", {"metadata": {"name": namespace}, "status": {"phase": "Active"}}
            )

    def get(self, resource: ResourceType, namespace: str, name: str) -> Obj | None:
        with self.lock:
            obj = self._objects.get((resource, namespace if resource.namespaced else "", name))
            return copy.deepcopy(obj) if obj is not None else None

    def update(
        self, resource: ResourceType, namespace: str, name: str, change: Callable[[Obj], None]
    ) -> Obj | None:
        """Apply ``change`` to the stored object in place (under the lock)."""
        with self.lock:
            obj = self._objects.get((resource, namespace if resource.namespaced else "", name))
            if obj is None:
                return None
            change(obj)
            obj["metadata"]["resourceVersion"] = str(next(self._versions))
            return copy.deepcopy(obj)

    def list(
        self,
        resource: ResourceType,
        namespace: str | None,
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
    ) -> list[Obj]:
        labels_ok = label_matcher(label_selector)
        fields_ok = field_matcher(field_selector)
        with self.lock:
            found = [
                copy.deepcopy(obj)
                for (kind, ns, _), obj in self._objects.items()
                if kind == resource
                and (namespace is None or not resource.namespaced or ns == namespace)
                and labels_ok(obj.get("metadata", {}).get("labels") or {})
                and fields_ok(obj)
            ]
        return sorted(found, key=lambda o: (o["metadata"].get("namespace", ""), o["metadata"]["name"]))

    def all_objects(self) -> Iterable[tuple[ResourceType, Obj]]:
        with self.lock:
            return [(kind, copy.deepcopy(obj)) for (kind, _, _), obj in self._objects.items()]

    def delete(
        self, resource: ResourceType, namespace: str, name: str, propagation: str | None = None
    ) -> Obj | None:
        """Remove an object; dependents are deleted (Background/Foreground) or orphaned (Orphan)."""
        if propagation is None:
            # batch/v1 Jobs keep their pods unless told otherwise, for compatibility; other kinds cascade.
            propagation = "Orphan" if resource.kind == "Job" else "Background"
        with self.lock:
            obj = self._objects.pop((resource, namespace if resource.namespaced else "", name), None)
            if obj is None:
                return None
            uid = obj["metadata"]["uid"]
            dependents = [
                (kind, dep)
                for (kind, _, _), dep in self._objects.items()
                if any(ref.get("uid") == uid for ref in dep.get("metadata", {}).get("ownerReferences") or [])
            ]
        for hook in list(self.on_delete):
            hook(resource, obj)

        def orphan(dependent: Obj) -> None:
            references = dependent["metadata"].get("ownerReferences") or []
            dependent["metadata"]["ownerReferences"] = [r for r in references if r.get("uid") != uid]

        for kind, dep in dependents:
            meta = dep["metadata"]
            if propagation == "Orphan":
                self.update(kind, meta.get("namespace", ""), meta["name"], orphan)
            else:
                self.delete(kind, meta.get("namespace", ""), meta["name"])
        return obj
