"""Start the agent in the cluster next to the target, reach it through port-forward, and remove it again.

``KubeAgent.start(config)`` resolves the target, creates the agent's Job and the Secret with the session
token (or an ephemeral container in the target pod), waits for the agent with progress, and opens a local
port-forward to it; ``url`` and ``token`` are then what ``AgentLink.open`` needs, as for a local agent. It
fails within ``agent.startup_timeout`` with the reason the cluster gives (image pull error, unschedulable,
forbidden, the agent's own exit with its log and the pod's events), and whatever the way out (failure, Ctrl-C,
timeout) it deletes what it created before returning. ``stop()`` does the same at the end of a session.

``assess_pod`` (pure) reads a pod's status and says: still starting (and at what step), running, or broken
(and why).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from pymirrord.kube import agent_job
from pymirrord.kube.agent_job import AgentSpec
from pymirrord.kube.client import EVENT, JOB, POD, SECRET, KubeApi, KubeSettings, Resource, connect
from pymirrord.kube.errors import (
    AgentStartFailed,
    AgentStartTimeout,
    Forbidden,
    KubeError,
    PortForwardFailed,
    StealNotPossible,
)
from pymirrord.kube.portforward import Endpoint, PortForwarder
from pymirrord.kube.progress import NullProgress, Progress
from pymirrord.kube.targets import (
    PodTarget,
    ResolvedTarget,
    parse_kube_target,
    resolve_target,
)

log = logging.getLogger("pymirrord.kube.deploy")

T = TypeVar("T")

POLL_INTERVAL = 0.5
"""How often the pod's status is read while waiting (a real cluster changes on a scale of seconds)."""
IMAGE_PULL_FAILURES = frozenset(
    {"ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull", "RegistryUnavailable"}
)
CONTAINER_FAILURES = frozenset(
    {"CreateContainerError", "RunContainerError", "CrashLoopBackOff", "StartError"}
)
_IMAGE_HINT = (
    "set agent.image to an agent image your cluster can pull "
    "(docs/agent-image.md shows how to build and push it)"
)


# -- pure: what a pod's status means for the agent -----------------------------------------------------------


@dataclass(frozen=True)
class Starting:
    """Not there yet; ``step`` says where it is, ``problem`` keeps a reason worth reporting on timeout."""

    step: str
    problem: str | None = None


@dataclass(frozen=True)
class Running:
    pod: str


@dataclass(frozen=True)
class Broken:
    message: str
    hint: str = ""


PodAssessment = Starting | Running | Broken


def _state(status: Mapping[str, Any]) -> tuple[str, Mapping[str, Any]]:
    state = status.get("state") or {}
    for key in ("running", "terminated", "waiting"):
        if key in state:
            return key, state[key] or {}
    return "waiting", {}


def assess_pod(
    pod: Mapping[str, Any] | None, *, container: str, secret_name: str, ephemeral: bool = False
) -> PodAssessment:
    """Where the agent container of ``pod`` stands (None: the Job has not made its pod yet)."""
    if pod is None:
        return Starting("waiting for the Job to create the agent pod")
    meta = pod.get("metadata") or {}
    status = pod.get("status") or {}
    name = str(meta.get("name", ""))
    phase = str(status.get("phase") or "Pending")
    statuses_key = "ephemeralContainerStatuses" if ephemeral else "containerStatuses"
    container_status = next(
        (s for s in status.get(statuses_key) or [] if s.get("name") == container),
        None,
    )
    if container_status is not None:
        kind, state = _state(container_status)
        reason = str(state.get("reason") or "")
        message = str(state.get("message") or "").strip()
        detail = f"{reason}: {message}" if message else reason
        if kind == "running":
            return Running(name)
        if kind == "terminated":
            code = state.get("exitCode")
            return Broken(
                f"the agent in pod {name} exited with code {code}" + (f" ({detail})" if detail else ""),
                "its log is below; run with agent.log_level debug for more",
            )
        if reason in IMAGE_PULL_FAILURES:
            image = container_status.get("image") or ""
            return Broken(f"the agent image {image} cannot be pulled ({detail})", _IMAGE_HINT)
        if reason == "CreateContainerConfigError":
            if secret_name in message and "not found" in message:
                # The Job is created before its Secret (which it owns): the kubelet retries shortly.
                return Starting("waiting for the agent's secret to reach the node")
            return Broken(f"the agent container in pod {name} cannot be configured ({detail})")
        if reason in CONTAINER_FAILURES:
            return Broken(f"the agent container in pod {name} cannot start ({detail})")
        if reason:
            return Starting(f"pod {name}: {reason}")
    if phase in {"Failed", "Succeeded"}:
        reason = str(status.get("reason") or phase)
        message = str(status.get("message") or "").strip()
        return Broken(f"the agent pod {name} ended: {reason}" + (f": {message}" if message else ""))
    for condition in status.get("conditions") or []:
        if condition.get("type") == "PodScheduled" and condition.get("status") == "False":
            detail = str(condition.get("message") or condition.get("reason") or "not scheduled")
            return Starting(f"pod {name} cannot be scheduled yet", f"unschedulable: {detail}")
    if meta.get("deletionTimestamp"):
        return Broken(f"the agent pod {name} is being deleted")
    return Starting(f"pod {name}: {phase}")


def job_failure(job: Mapping[str, Any]) -> str | None:
    """The message of a Job's ``Failed`` condition, if it has failed."""
    for condition in (job.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "Failed" and condition.get("status") == "True":
            return str(condition.get("message") or condition.get("reason") or "the Job failed")
    return None


def describe_events(events: Sequence[Mapping[str, Any]], limit: int = 6) -> list[str]:
    """The last events, oldest first, as ``Warning FailedScheduling: message`` lines (repeats collapsed)."""

    def when(event: Mapping[str, Any]) -> str:
        return str(event.get("lastTimestamp") or event.get("eventTime") or event.get("firstTimestamp") or "")

    lines: list[str] = []
    for event in sorted(events, key=when):
        message = str(event.get("message", "")).strip()
        line = f"{event.get('type', 'Normal')} {event.get('reason', '')}: {message}"
        if line not in lines:
            lines.append(line)
    return lines[-limit:]


# -- the I/O shell ------------------------------------------------------------------------------------------


@dataclass
class _Created:
    """What this run created (or was creating) in the cluster: deleted on every way out."""

    objects: list[tuple[Resource, str, str]] = field(default_factory=list)

    def add(self, resource: Resource, namespace: str, name: str) -> None:
        self.objects.append((resource, namespace, name))


async def _blocking(call: Callable[..., T], *args: Any) -> T:
    """Run a blocking client call in a thread. If we are cancelled meanwhile (Ctrl-C), the call still finishes
    before the cancellation goes on, so its effect (a created Job, say) is known to the clean-up."""
    task = asyncio.ensure_future(asyncio.to_thread(call, *args))
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        with contextlib.suppress(Exception):
            await task
        raise


class KubeAgent:
    """A running agent in the cluster, reachable at ``url`` with ``token``."""

    def __init__(self, starter: _Starter, forwarder: PortForwarder, pod: str) -> None:
        self.api = starter.api
        self.spec = starter.spec
        self.token = starter.token
        self.forwarder = forwarder
        self.pod = pod
        self.agent_id = starter.spec.name
        self._created = starter.created

    @property
    def url(self) -> str:
        return self.forwarder.url

    @property
    def target(self) -> ResolvedTarget:
        return self.spec.target

    @classmethod
    async def start(
        cls,
        config: Any,
        *,
        progress: Progress | None = None,
        api: KubeApi | None = None,
        idle_timeout: int = agent_job.DEFAULT_IDLE_TIMEOUT,
    ) -> KubeAgent:
        """Resolve ``config.target``, deploy the agent and connect a port-forward to it.

        ``config`` is a ``ResolvedConfig``; read: ``target.path``, ``target.namespace``, ``incoming.mode``,
        ``agent.*``, ``kubeconfig``, ``kube_context``, ``accept_invalid_certificates``. ``api`` replaces the
        client built from the config (tests). Raises ``KubeError`` (after removing what it created).
        """
        progress = progress or NullProgress()
        timeout = float(config.agent.startup_timeout)
        deadline = time.monotonic() + timeout
        target = parse_kube_target(config.target.path or "targetless")
        progress.begin("Starting the pymirrord agent")
        ok = False
        try:
            # Said before the cluster is even reached: nothing about it could make this work.
            if target.kind == "targetless" and getattr(config.incoming, "mode", "mirror") == "steal":
                raise StealNotPossible(
                    "steal needs a target: a targetless run has no pod whose traffic could be stolen",
                    "choose a target (--target deployment/NAME, pod/NAME, ...) or leave out --steal",
                )
            if api is None:
                progress.report("reading the kubeconfig")
                api = await _blocking(connect, KubeSettings.from_config(config))
            namespace = config.target.namespace or api.namespace
            progress.report(f"resolving {target} in namespace {namespace}")
            resolved = await _blocking(resolve_target, api, target, namespace)
            starter = _Starter(
                api=api,
                spec=agent_spec(config, resolved, idle_timeout),
                token=secrets.token_urlsafe(32),
                progress=progress,
                deadline=deadline,
                timeout=timeout,
            )
            agent = await starter.run(cls)
            ok = True
            progress.end(f"agent ready in pod {agent.pod} for {resolved.describe()}")
            return agent
        finally:
            if not ok:
                progress.end(None)

    async def stop(self) -> None:
        """Close the port-forward and delete the Job and Secret (the agent pod goes with its Job)."""
        await asyncio.shield(_cleanup(self.api, self.forwarder, self._created))


def agent_spec(config: Any, resolved: ResolvedTarget, idle_timeout: int) -> AgentSpec:
    """The agent's spec from the config's ``agent`` section, with fresh names and a random port."""
    ephemeral = bool(config.agent.ephemeral) and isinstance(resolved, PodTarget)
    return AgentSpec(
        name=f"pymirrord-agent-{secrets.token_hex(5)}",
        namespace=resolved.namespace if ephemeral else (config.agent.namespace or resolved.namespace),
        target=resolved,
        # Inside the agent's own pod any port would do; an ephemeral agent shares the target pod's ports.
        port=30000 + secrets.randbelow(30000),
        session=secrets.token_hex(8),
        image=config.agent.image or agent_job.DEFAULT_IMAGE,
        ttl=int(config.agent.ttl),
        idle_timeout=idle_timeout,
        privileged=bool(config.agent.privileged),
        log_level=str(config.agent.log_level),
        ephemeral=ephemeral,
    )


@dataclass
class _Starter:
    """One start-up: create, wait, connect; on any way out but success, remove what was created."""

    api: KubeApi
    spec: AgentSpec
    token: str
    progress: Progress
    deadline: float
    timeout: float
    created: _Created = field(default_factory=_Created)

    @property
    def container(self) -> str:
        return self.spec.name if self.spec.ephemeral else agent_job.CONTAINER_NAME

    async def run(self, cls: type[KubeAgent]) -> KubeAgent:
        forwarder: PortForwarder | None = None
        ok = False
        try:
            if self.spec.ephemeral:
                pod_name = await self._deploy_ephemeral()
            else:
                await self._deploy_job()
                pod_name = ""
            pod_name = await self._wait_running(pod_name)
            self.progress.report(f"connecting to the agent through port-forward to pod {pod_name}")
            endpoint = Endpoint.from_configuration(self.api.configuration)
            forwarder = PortForwarder(endpoint, self.spec.namespace, pod_name, self.spec.port)
            await forwarder.start()
            await self._wait_listening(forwarder, pod_name)
            ok = True
            return cls(self, forwarder, pod_name)
        finally:
            if not ok:
                # Shielded: a second Ctrl-C must not cut the removal short.
                await asyncio.shield(_cleanup(self.api, forwarder, self.created))

    async def _deploy_job(self) -> None:
        spec, api = self.spec, self.api
        self.progress.report(f"creating job/{spec.name} in namespace {spec.namespace}")
        self.created.add(JOB, spec.namespace, spec.name)
        job = await _blocking(api.create, JOB, spec.namespace, agent_job.build_job(spec))
        job.setdefault("apiVersion", "batch/v1")
        job.setdefault("kind", "Job")
        self.created.add(SECRET, spec.namespace, spec.secret_name)
        secret = agent_job.build_secret(spec, self.token, job)
        await _blocking(api.create, SECRET, spec.namespace, secret)

    async def _deploy_ephemeral(self) -> str:
        spec, api, target = self.spec, self.api, self.spec.target
        assert isinstance(target, PodTarget)
        self.progress.report(f"adding an ephemeral agent container to pod/{target.pod}")
        owner = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": target.pod, "uid": target.pod_uid}}
        # The Secret first: the container reads it when it starts, and the pod (its owner) exists already.
        self.created.add(SECRET, spec.namespace, spec.secret_name)
        secret = agent_job.build_secret(spec, self.token, owner)
        await _blocking(api.create, SECRET, spec.namespace, secret)
        container = agent_job.build_ephemeral_container(spec)
        await _blocking(api.add_ephemeral_container, spec.namespace, target.pod, container)
        return target.pod

    def _assess(self, pod: dict[str, Any] | None) -> PodAssessment:
        return assess_pod(
            pod, container=self.container, secret_name=self.spec.secret_name, ephemeral=self.spec.ephemeral
        )

    async def _wait_running(self, pod_name: str) -> str:
        problem: str | None = None
        last_pod = pod_name
        while True:
            pod = await _blocking(_agent_pod, self.api, self.spec, pod_name)
            if pod is None and not self.spec.ephemeral:
                failure = await _blocking(_job_failure_or_create_error, self.api, self.spec)
                if failure:
                    raise AgentStartFailed(
                        f"the agent Job {self.spec.name} could not create its pod: {failure}",
                        _hint_for(failure),
                    )
            if pod is not None:
                last_pod = str(pod.get("metadata", {}).get("name", ""))
            assessment = self._assess(pod)
            if isinstance(assessment, Running):
                return assessment.pod
            if isinstance(assessment, Broken):
                raise AgentStartFailed(assessment.message + await self._details(last_pod), assessment.hint)
            problem = assessment.problem or problem
            self.progress.report(assessment.step)
            if time.monotonic() >= self.deadline:
                raise AgentStartTimeout(
                    f"the agent was not ready within {self.timeout:g} s ({problem or assessment.step})"
                    + await self._details(last_pod),
                    "raise agent.startup_timeout if the cluster is just slow (pulling an image takes time)",
                )
            await asyncio.sleep(POLL_INTERVAL)

    async def _wait_listening(self, forwarder: PortForwarder, pod_name: str) -> None:
        """Probe the port-forward until the agent accepts connections (a moment after it starts)."""
        while True:
            try:
                await forwarder.probe()
                return
            except Forbidden:
                raise
            except PortForwardFailed as error:
                last = error.message
            pod = await _blocking(_agent_pod, self.api, self.spec, pod_name)
            assessment = self._assess(pod)
            if isinstance(assessment, Broken):
                raise AgentStartFailed(assessment.message + await self._details(pod_name), assessment.hint)
            if time.monotonic() >= self.deadline:
                raise AgentStartTimeout(
                    f"the agent in pod {pod_name} did not accept connections within {self.timeout:g} s"
                    f" ({last})" + await self._details(pod_name),
                    "raise agent.startup_timeout, or check that the API server may port-forward to the pod",
                )
            await asyncio.sleep(POLL_INTERVAL)

    async def _details(self, pod: str) -> str:
        if not pod:
            return ""
        return await _blocking(_details, self.api, self.spec.namespace, pod, self.container)


def _agent_pod(api: KubeApi, spec: AgentSpec, pod_name: str) -> dict[str, Any] | None:
    if pod_name:
        return api.get(POD, spec.namespace, pod_name)
    pods = api.list(POD, spec.namespace, label_selector=f"job-name={spec.name}")
    if not pods:
        return None
    return max(pods, key=lambda pod: str(pod.get("metadata", {}).get("creationTimestamp", "")))


def _job_failure_or_create_error(api: KubeApi, spec: AgentSpec) -> str | None:
    job = api.get(JOB, spec.namespace, spec.name)
    failed = job_failure(job)
    if failed:
        return failed
    # A Job whose pod is refused (pod security admission, quota, a webhook) only says so in its events.
    events = api.list(EVENT, spec.namespace, field_selector=f"involvedObject.name={spec.name}")
    refusals = [e for e in events if e.get("reason") == "FailedCreate" and e.get("type") == "Warning"]
    return str(refusals[-1].get("message", "")) if refusals else None


def _details(api: KubeApi, namespace: str, pod: str, container: str) -> str:
    """The pod's events and the agent's last log lines, as text to append to an error (best effort)."""
    parts = []
    try:
        events = api.list(EVENT, namespace, field_selector=f"involvedObject.name={pod}")
        lines = describe_events(events)
        if lines:
            parts.append(f"\n  events of pod {pod}:\n    " + "\n    ".join(lines))
    except KubeError:
        pass
    try:
        logs = api.pod_logs(namespace, pod, container=container, tail_lines=15).strip()
        if logs:
            parts.append("\n  agent log:\n    " + "\n    ".join(logs.splitlines()[-15:]))
    except KubeError:
        pass
    return "".join(parts)


def _hint_for(message: str) -> str:
    if "PodSecurity" in message or "violates" in message:
        return (
            "the namespace's pod security level forbids the agent (hostPID, capabilities): run it in a "
            "namespace that allows privileged pods (agent.namespace), or use agent.ephemeral"
        )
    if "forbidden" in message.lower():
        return "see docs/kubernetes.md for the permissions pymirrord needs"
    return ""


async def _cleanup(api: KubeApi, forwarder: PortForwarder | None, created: _Created) -> None:
    if forwarder is not None:
        with contextlib.suppress(Exception):
            await forwarder.close()
    for resource, namespace, name in reversed(created.objects):
        kind = resource.kind.lower()
        try:
            await asyncio.to_thread(api.delete, resource, namespace, name)
        except KubeError as error:
            print(
                f"pymirrord: warning: could not delete {kind}/{name} in namespace {namespace}: "
                f"{error.message}\n  hint: kubectl delete {kind} {name} -n {namespace}",
                file=sys.stderr,
                flush=True,
            )
    created.objects.clear()
