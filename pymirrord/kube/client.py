"""The API client: kubeconfig and context to an ``ApiClient``, and a small dict-speaking shell over it.

Every request goes through the official ``kubernetes`` client with ``_preload_content=False`` and the body
is read as JSON: the rest of the package works on plain API objects (``dict``), which keeps the decisions pure
and the code independent of the client's generated model classes (which differ between client versions).
Failures become ``KubeError`` subclasses that name the request, the cluster's own message and a hint.
"""

from __future__ import annotations

import builtins
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import urllib3
from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException
from kubernetes.config.kube_config import list_kube_config_contexts, load_kube_config

from pymirrord.kube.errors import (
    ApiRequestFailed,
    ClusterUnreachable,
    Forbidden,
    KubeconfigError,
    NotFound,
)

JsonObject = dict[str, Any]

# (connect, read) seconds for one API request; port-forward and waits have their own bounds.
REQUEST_TIMEOUT = (10.0, 30.0)

_RBAC_HINT = "ask a cluster admin for the permissions listed in docs/kubernetes.md"


@dataclass(frozen=True)
class Resource:
    """One kind of API object: where it lives and how the generated client names its methods."""

    kind: str
    plural: str
    group: str  # "" for the core group
    version: str
    method: str  # the snake_case part of the client's method names (read_namespaced_<method>)
    api: str  # "core", "apps", "batch" or "custom"

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    def describe(self) -> str:
        """How RBAC messages name it: ``deployments.apps``, ``pods``."""
        return f"{self.plural}.{self.group}" if self.group else self.plural


POD = Resource("Pod", "pods", "", "v1", "pod", "core")
SERVICE = Resource("Service", "services", "", "v1", "service", "core")
SECRET = Resource("Secret", "secrets", "", "v1", "secret", "core")
EVENT = Resource("Event", "events", "", "v1", "event", "core")
DEPLOYMENT = Resource("Deployment", "deployments", "apps", "v1", "deployment", "apps")
STATEFULSET = Resource("StatefulSet", "statefulsets", "apps", "v1", "stateful_set", "apps")
REPLICASET = Resource("ReplicaSet", "replicasets", "apps", "v1", "replica_set", "apps")
JOB = Resource("Job", "jobs", "batch", "v1", "job", "batch")
CRONJOB = Resource("CronJob", "cronjobs", "batch", "v1", "cron_job", "batch")
ROLLOUT = Resource("Rollout", "rollouts", "argoproj.io", "v1alpha1", "", "custom")


@dataclass(frozen=True)
class KubeSettings:
    """Which cluster to talk to: ``ResolvedConfig``'s ``kubeconfig``, ``kube_context`` and certificates."""

    kubeconfig: str | None = None
    context: str | None = None
    accept_invalid_certificates: bool = False

    @classmethod
    def from_config(cls, config: Any) -> KubeSettings:
        """From a ``ResolvedConfig`` (duck-typed: only the three attributes are read)."""
        return cls(
            kubeconfig=getattr(config, "kubeconfig", None),
            context=getattr(config, "kube_context", None),
            accept_invalid_certificates=bool(getattr(config, "accept_invalid_certificates", False)),
        )


def kubeconfig_path(settings: KubeSettings, env: dict[str, str] | None = None) -> str:
    """The kubeconfig file(s): the setting, else ``$KUBECONFIG`` (may list several), else the default."""
    environ = os.environ if env is None else env
    if settings.kubeconfig:
        return os.path.expanduser(settings.kubeconfig)
    return environ.get("KUBECONFIG") or os.path.expanduser("~/.kube/config")


class KubeApi:
    """The requests pymirrord makes, each returning plain API objects and raising ``KubeError``s."""

    def __init__(self, api_client: k8s.ApiClient, *, namespace: str, context: str | None) -> None:
        self.api_client = api_client
        self.namespace = namespace
        """The kube context's namespace (``default`` when the context names none)."""
        self.context = context
        self._core = k8s.CoreV1Api(api_client)
        self._apps = k8s.AppsV1Api(api_client)
        self._batch = k8s.BatchV1Api(api_client)
        self._custom = k8s.CustomObjectsApi(api_client)

    @property
    def configuration(self) -> Any:
        """The client's ``kubernetes.client.Configuration`` (host, credentials, TLS)."""
        return self.api_client.configuration

    @property
    def server(self) -> str:
        return str(self.configuration.host)

    def close(self) -> None:
        self.api_client.close()  # type: ignore[no-untyped-call]

    # -- reading -------------------------------------------------------------------------------------------

    def get(self, resource: Resource, namespace: str, name: str) -> JsonObject:
        what = f"{resource.kind.lower()}/{name} in namespace {namespace}"
        if resource.api == "custom":
            return self._call(
                "get",
                resource,
                namespace,
                what,
                self._custom.get_namespaced_custom_object,
                resource.group,
                resource.version,
                namespace,
                resource.plural,
                name,
            )
        method = getattr(self._api(resource), f"read_namespaced_{resource.method}")
        return self._call("get", resource, namespace, what, method, name, namespace)

    def list(
        self,
        resource: Resource,
        namespace: str,
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
    ) -> builtins.list[JsonObject]:
        what = f"{resource.plural} in namespace {namespace}"
        kwargs: dict[str, Any] = {}
        if label_selector:
            kwargs["label_selector"] = label_selector
        if field_selector:
            kwargs["field_selector"] = field_selector
        if resource.api == "custom":
            result = self._call(
                "list",
                resource,
                namespace,
                what,
                self._custom.list_namespaced_custom_object,
                resource.group,
                resource.version,
                namespace,
                resource.plural,
                **kwargs,
            )
        else:
            method = getattr(self._api(resource), f"list_namespaced_{resource.method}")
            result = self._call("list", resource, namespace, what, method, namespace, **kwargs)
        items = result.get("items") or []
        return [item for item in items if isinstance(item, dict)]

    def list_namespaces(self) -> builtins.list[str]:
        namespaces = Resource("Namespace", "namespaces", "", "v1", "namespace", "core")
        result = self._call("list", namespaces, None, "namespaces", self._core.list_namespace)
        return sorted(str(item.get("metadata", {}).get("name")) for item in result.get("items") or [] if item)

    def pod_logs(
        self, namespace: str, name: str, *, container: str | None = None, tail_lines: int | None = None
    ) -> str:
        kwargs: dict[str, Any] = {}
        if container:
            kwargs["container"] = container
        if tail_lines:
            kwargs["tail_lines"] = tail_lines
        logs = Resource("Pod", "pods/log", "", "v1", "pod", "core")
        raw = self._request(
            "get",
            logs,
            namespace,
            f"the logs of pod/{name} in namespace {namespace}",
            self._core.read_namespaced_pod_log,
            name,
            namespace,
            **kwargs,
        )
        return raw.decode("utf-8", "replace")

    # -- writing -------------------------------------------------------------------------------------------

    def create(self, resource: Resource, namespace: str, body: JsonObject) -> JsonObject:
        name = body.get("metadata", {}).get("name", "")
        what = f"{resource.kind.lower()}/{name} in namespace {namespace}"
        method = getattr(self._api(resource), f"create_namespaced_{resource.method}")
        return self._call("create", resource, namespace, what, method, namespace, body)

    def delete(self, resource: Resource, namespace: str, name: str) -> bool:
        """Delete with background propagation (owned pods and secrets go too); False if it was gone."""
        what = f"{resource.kind.lower()}/{name} in namespace {namespace}"
        method = getattr(self._api(resource), f"delete_namespaced_{resource.method}")
        try:
            self._call(
                "delete",
                resource,
                namespace,
                what,
                method,
                name,
                namespace,
                propagation_policy="Background",
            )
        except NotFound:
            return False
        return True

    def add_ephemeral_container(self, namespace: str, pod: str, container: JsonObject) -> JsonObject:
        subresource = Resource("Pod", "pods/ephemeralcontainers", "", "v1", "pod", "core")
        body = {"spec": {"ephemeralContainers": [container]}}
        return self._call(
            "patch",
            subresource,
            namespace,
            f"pod/{pod} in namespace {namespace}",
            self._core.patch_namespaced_pod_ephemeralcontainers,
            pod,
            namespace,
            body,
        )

    # -- plumbing ------------------------------------------------------------------------------------------

    def _api(self, resource: Resource) -> Any:
        return {"core": self._core, "apps": self._apps, "batch": self._batch}[resource.api]

    def _call(
        self,
        verb: str,
        resource: Resource,
        namespace: str | None,
        what: str,
        method: Callable[..., Any],
        *args: Any,
        **kwargs: Any,
    ) -> JsonObject:
        raw = self._request(verb, resource, namespace, what, method, *args, **kwargs)
        try:
            decoded = json.loads(raw or b"{}")
        except ValueError:
            raise ApiRequestFailed(
                f"the API server answered {verb} {what} with something that is not JSON",
                f"is {self.server} a Kubernetes API server?",
            ) from None
        if not isinstance(decoded, dict):
            raise ApiRequestFailed(f"the API server answered {verb} {what} with unexpected JSON")
        return decoded

    def _request(
        self,
        verb: str,
        resource: Resource,
        namespace: str | None,
        what: str,
        method: Callable[..., Any],
        *args: Any,
        **kwargs: Any,
    ) -> bytes:
        kwargs = {key: value for key, value in kwargs.items() if value is not None}
        try:
            response = method(*args, _preload_content=False, _request_timeout=REQUEST_TIMEOUT, **kwargs)
            data: bytes = response.data
            return data
        except ApiException as error:
            raise api_error(verb, resource, namespace, what, error, context=self.context) from None
        except (urllib3.exceptions.HTTPError, OSError) as error:
            raise ClusterUnreachable(
                f"cannot reach the Kubernetes API server at {self.server}: {_short(error)}",
                "check the kube context (`kubectl config current-context`) and your network or VPN",
            ) from None


def api_error(
    verb: str,
    resource: Resource,
    namespace: str | None,
    what: str,
    error: ApiException,
    *,
    context: str | None = None,
) -> ApiRequestFailed:
    """A ``KubeError`` for a failed request, carrying the API server's own ``Status.message``."""
    status = int(error.status or 0)
    message = status_message(error.body) or str(error.reason or "").strip() or f"HTTP {status}"
    where = f" in namespace {namespace}" if namespace else ""
    if status == 403:
        rbac = f"{verb} {resource.describe()}{where}"
        return Forbidden(
            f"not allowed to {rbac}: {message}",
            f"{_RBAC_HINT} (this request needs `{rbac}`)",
            status=status,
            reason="Forbidden",
        )
    if status == 401:
        return ApiRequestFailed(
            f"the API server rejected your credentials ({message})",
            "log in again (your token may have expired) or check the kube context"
            + (f" {context!r}" if context else ""),
            status=status,
            reason="Unauthorized",
        )
    if status == 404:
        return NotFound(f"{what} not found", "", status=status, reason="NotFound")
    return ApiRequestFailed(
        f"cannot {verb} {what}: {message}", "", status=status, reason=str(error.reason or "")
    )


def status_message(body: object) -> str:
    """The ``message`` of a ``Status`` object in an error body, or ""."""
    if isinstance(body, bytes):
        body = body.decode("utf-8", "replace")
    if not isinstance(body, str) or not body:
        return ""
    try:
        status = json.loads(body)
    except ValueError:
        return body.strip()[:300]
    if isinstance(status, dict):
        return str(status.get("message") or "")
    return ""


def connect(settings: KubeSettings) -> KubeApi:
    """An API client for the configured kubeconfig and context (in-cluster config as a last resort)."""
    path = kubeconfig_path(settings)
    configuration = k8s.Configuration()
    namespace = "default"
    context_name = settings.context
    paths = [p for p in path.split(os.pathsep) if p]
    if not any(Path(p).exists() for p in paths) and os.environ.get("KUBERNETES_SERVICE_HOST"):
        return _in_cluster(settings, configuration)
    if not any(Path(p).exists() for p in paths):
        raise KubeconfigError(
            f"no kubeconfig found at {path}",
            "point kubeconfig (or $KUBECONFIG) at your cluster's config, e.g. the one `kubectl` uses",
        )
    contexts: list[dict[str, Any]] = []
    try:
        contexts, current = list_kube_config_contexts(config_file=path)  # type: ignore[no-untyped-call]
        load_kube_config(  # type: ignore[no-untyped-call]
            config_file=path,
            context=settings.context,
            client_configuration=configuration,
            persist_config=False,
        )
    except ConfigException as error:
        names = ", ".join(sorted(str(c.get("name")) for c in contexts))
        raise KubeconfigError(
            f"cannot use the kubeconfig {path}: {error}",
            f"contexts in it: {names}" if names else "check the file with `kubectl config view`",
        ) from None
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise KubeconfigError(
            f"cannot read the kubeconfig {path}: {error}", "check the file with `kubectl config view`"
        ) from None
    chosen = current
    if settings.context:
        chosen = next((c for c in contexts if c.get("name") == settings.context), None)
    if chosen:
        context_name = str(chosen.get("name"))
        namespace = str((chosen.get("context") or {}).get("namespace") or "default")
    _apply_settings(configuration, settings)
    return KubeApi(k8s.ApiClient(configuration), namespace=namespace, context=context_name)


def _in_cluster(settings: KubeSettings, configuration: k8s.Configuration) -> KubeApi:
    from kubernetes.config.incluster_config import load_incluster_config

    try:
        load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
    except ConfigException as error:
        raise KubeconfigError(f"no kubeconfig and no usable in-cluster config: {error}") from None
    namespace = "default"
    with_ns = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
    if with_ns.exists():
        namespace = with_ns.read_text().strip() or namespace
    _apply_settings(configuration, settings)
    return KubeApi(k8s.ApiClient(configuration), namespace=namespace, context=None)


def _apply_settings(configuration: k8s.Configuration, settings: KubeSettings) -> None:
    if settings.accept_invalid_certificates:
        configuration.verify_ssl = False
    # One retry at most: an unreachable cluster should fail in seconds, not after urllib3's default rounds.
    configuration.retries = 1


def _short(error: BaseException) -> str:
    reason = getattr(error, "reason", None)
    text = str(reason or error)
    return text if len(text) < 300 else text[:297] + "..."
