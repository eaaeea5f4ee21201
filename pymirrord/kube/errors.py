"""The kube package's exception tree: every error names what was looked for and what was found."""

from __future__ import annotations

from pymirrord.errors import PymirrordError


class KubeError(PymirrordError):
    """Something pymirrord could not do with the Kubernetes cluster."""


class KubeconfigError(KubeError):
    """No usable kubeconfig, context or credentials."""


class ClusterUnreachable(KubeError):
    """The API server could not be reached (network, TLS, DNS)."""


class ApiRequestFailed(KubeError):
    """The API server answered a request with an error status."""

    def __init__(self, message: str, hint: str = "", *, status: int = 0, reason: str = "") -> None:
        super().__init__(message, hint)
        self.status = status
        self.reason = reason


class Forbidden(ApiRequestFailed):
    """RBAC refused a request (HTTP 403)."""


class NotFound(ApiRequestFailed):
    """The object does not exist (HTTP 404)."""


class InvalidKubeTarget(KubeError):
    """The target string is not a Kubernetes target pymirrord understands."""


class TargetNotFound(KubeError):
    """The named workload or pod does not exist in the namespace."""


class NoReadyPod(KubeError):
    """The workload exists but none of its pods is running and ready."""


class ContainerNotFound(KubeError):
    """The pod has no such container, or several and none was chosen."""


class AgentStartFailed(KubeError):
    """The agent's Job or pod failed to start; the message carries the cluster's reason."""


class AgentStartTimeout(AgentStartFailed):
    """The agent was not ready within ``agent.startup_timeout``."""


class PortForwardFailed(KubeError):
    """The port-forward to the agent could not be opened or broke."""


class StealNotPossible(KubeError):
    """Steal was asked for where there is nothing to steal from (a targetless run)."""
