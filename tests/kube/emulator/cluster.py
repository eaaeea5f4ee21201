"""The emulated cluster: the API server (``server.py``) on a free port, plus the controllers a test needs.

- The Job controller makes a Job's pod (labels ``job-name`` and ``controller-uid``, an owner reference to
  the Job), and the "kubelet" starts its container: it reads env vars from Secrets (``secretKeyRef``; a
  missing Secret is ``CreateContainerConfigError`` until it appears), and runs the container's command on
  this machine. ``pymirrord agent`` runs as the real agent (``python -m pymirrord agent``), listening on a
  free local port that the port-forward maps the pod's port to; its output is the pod's log. An image
  registered with ``image_behaviour`` fails to pull, hangs in ``ContainerCreating`` or crashes instead, with
  the events a real kubelet records.
- Deleting a Job with ``Background``/``Foreground`` propagation deletes its pod (SIGTERM to the process,
  SIGKILL after the grace period) and the Secret it owns; without a policy Jobs orphan their pods, as in a
  real cluster.
- Pods that stand for real targets are registered with ``back_container``: their process (in a network
  namespace and a cgroup named after the container id) is what the agent finds through ``/proc``. An
  ephemeral agent's
  ``pid/1`` is mapped to that process (it shares the target container's pid namespace).

The server runs on its own event loop in a background thread, so tests use it with blocking clients.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml
from aiohttp import web

from .server import make_app
from .store import BY_KIND, Obj, ResourceType, Store, now_rfc3339

REPO_ROOT = Path(__file__).resolve().parents[3]
NODE = "node-1"
POD = BY_KIND["Pod"]
JOB = BY_KIND["Job"]
SECRET = BY_KIND["Secret"]
EVENT = BY_KIND["Event"]


class AgentProcess:
    """A container's process run by the emulated kubelet."""

    def __init__(self, popen: subprocess.Popen[str], pod_port: int | None) -> None:
        self.popen = popen
        self.pod_port = pod_port
        self.local_port: int | None = None
        self.ready = threading.Event()
        self.exited = threading.Event()


class Emulator:
    def __init__(self, *, namespace: str = "default", user: str = "developer@example.com") -> None:
        self.store = Store()
        self.token = secrets.token_hex(16)
        self.user = user
        self.namespace = namespace
        self.rollouts_installed = True
        self.default_behaviour = "run"
        self.image_behaviour: dict[str, str] = {}
        """image -> "run", "pull-error", "hang" or "crash"."""
        self.job_pod_refusal: str | None = None
        """When set, the Job controller cannot create pods and records this as a FailedCreate event."""
        self.forbidden: set[tuple[str, str, str | None]] = set()
        self.logs: dict[tuple[str, str, str], list[str]] = {}
        self.requests: list[str] = []
        self.created_bodies: list[tuple[str, Obj]] = []
        self.deletions: list[tuple[str, str, str, str | None]] = []
        self.portforwards: list[tuple[str, str, tuple[int, ...], str | None]] = []
        self.backing: dict[tuple[str, str, str], int] = {}
        self.forwarded: dict[tuple[str, str, int], tuple[str, int]] = {}
        """(namespace, pod, port) -> where a port-forward to that pod's port really connects."""
        self.processes: dict[tuple[str, str, str], AgentProcess] = {}
        self.waiting_for_secret: list[tuple[str, str, dict[str, Any], bool, str | None]] = []
        self.port = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self.store.on_create.append(self._created)
        self.store.on_delete.append(self._deleted)
        self._lock = threading.RLock()

    # -- life cycle --------------------------------------------------------------------------------------

    def start(self) -> Emulator:
        started = threading.Event()
        failure: list[BaseException] = []

        def serve() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            asyncio.set_event_loop(loop)
            runner = web.AppRunner(make_app(self), shutdown_timeout=1.0)
            try:
                loop.run_until_complete(runner.setup())
                site = web.TCPSite(runner, "127.0.0.1", 0)
                loop.run_until_complete(site.start())
                self.port = runner.addresses[0][1]
            except BaseException as error:  # reported to the starting thread
                failure.append(error)
                started.set()
                return
            started.set()
            loop.run_forever()
            loop.run_until_complete(runner.cleanup())
            loop.close()

        self._thread = threading.Thread(target=serve, name="kube-emulator", daemon=True)
        self._thread.start()
        if not started.wait(15):
            raise TimeoutError("the emulator did not start")
        if failure:
            raise failure[0]
        return self

    def stop(self) -> None:
        for key in list(self.processes):
            self._terminate(key, grace=5.0)
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(15)

    @property
    def server(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def write_kubeconfig(
        self, path: Path, *, namespace: str | None = None, context: str = "emulator"
    ) -> Path:
        context_entry: dict[str, Any] = {"cluster": "emulator", "user": "developer"}
        if namespace or self.namespace:
            context_entry["namespace"] = namespace or self.namespace
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "emulator", "cluster": {"server": self.server}}],
            "users": [{"name": "developer", "user": {"token": self.token}}],
            "contexts": [
                {"name": context, "context": context_entry},
                {
                    "name": "elsewhere",
                    "context": {"cluster": "emulator", "user": "developer", "namespace": "elsewhere"},
                },
            ],
            "current-context": context,
        }
        path.write_text(yaml.safe_dump(config))
        return path

    # -- configuration by tests --------------------------------------------------------------------------

    def forbid(self, verb: str, resource: str, namespace: str | None = None) -> None:
        """Refuse ``verb`` on ``resource`` (``pods``, ``pods/portforward``, ``namespaces``, ...) with 403."""
        self.forbidden.add((verb, resource, namespace))

    def is_forbidden(self, verb: str, resource: str, namespace: str | None) -> bool:
        return (verb, resource, None) in self.forbidden or (verb, resource, namespace) in self.forbidden

    def add(self, *objects: Obj) -> None:
        for obj in objects:
            self.store.put(BY_KIND[obj["kind"]], obj)

    def back_container(self, namespace: str, pod: str, container: str, pid: int) -> None:
        """The process that is the container (for an ephemeral agent's shared pid namespace)."""
        self.backing[(namespace, pod, container)] = pid

    def objects(
        self, kind: str, namespace: str | None = None, label_selector: str | None = None
    ) -> list[Obj]:
        return self.store.list(BY_KIND[kind], namespace, label_selector=label_selector)

    def agent_processes(self) -> list[AgentProcess]:
        with self._lock:
            return list(self.processes.values())

    def wait_until(self, predicate: Any, timeout: float = 20.0) -> bool:
        """Bounded polling for conditions that have no event (pods and processes going away)."""
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                return False
            time.sleep(0.02)
        return True

    def nothing_left(self) -> bool:
        """No Job, no agent Secret, no agent pod, no agent process."""
        managed = "app.kubernetes.io/managed-by=pymirrord"
        return (
            not self.objects("Job", label_selector=managed)
            and not self.objects("Secret", label_selector=managed)
            and not self.objects("Pod", label_selector=managed)
            and all(p.popen.poll() is not None for p in self.agent_processes())
        )

    # -- the port-forward's view ----------------------------------------------------------------------------

    def forward_address(self, namespace: str, pod: str, port: int) -> tuple[str, int] | None:
        if (namespace, pod, port) in self.forwarded:
            return self.forwarded[(namespace, pod, port)]
        with self._lock:
            for (ns, name, _), process in self.processes.items():
                matches = ns == namespace and name == pod and process.pod_port == port
                if matches and process.local_port and process.popen.poll() is None:
                    return ("127.0.0.1", process.local_port)
        return None

    # -- controllers -------------------------------------------------------------------------------------

    def event(self, namespace: str, involved: Obj, type_: str, reason: str, message: str) -> None:
        meta = involved["metadata"]
        stamp = now_rfc3339()
        self.store.create(
            EVENT,
            namespace,
            {
                "metadata": {"name": f"{meta['name']}.{secrets.token_hex(8)}", "namespace": namespace},
                "involvedObject": {
                    "kind": involved.get("kind"),
                    "name": meta["name"],
                    "namespace": namespace,
                    "uid": meta.get("uid"),
                },
                "reason": reason,
                "message": message,
                "type": type_,
                "count": 1,
                "firstTimestamp": stamp,
                "lastTimestamp": stamp,
                "source": {"component": "kubelet", "host": NODE},
            },
            notify=False,
        )

    def _created(self, resource: ResourceType, obj: Obj) -> None:
        if resource.kind == "Job":
            self._run_job(obj)
        elif resource.kind == "Secret":
            waiting, self.waiting_for_secret = self.waiting_for_secret, []
            for namespace, pod, container, ephemeral, target in waiting:
                self._start_container(namespace, pod, container, ephemeral=ephemeral, target_container=target)

    def _deleted(self, resource: ResourceType, obj: Obj) -> None:
        if resource.kind != "Pod":
            return
        meta = obj["metadata"]
        for key in [
            k for k in list(self.processes) if k[0] == meta.get("namespace") and k[1] == meta["name"]
        ]:
            grace = float((obj.get("spec") or {}).get("terminationGracePeriodSeconds") or 30)
            threading.Thread(target=self._terminate, args=(key, grace), daemon=True).start()

    def _terminate(self, key: tuple[str, str, str], grace: float) -> None:
        process = self.processes.get(key)
        if process is None or process.popen.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            process.popen.send_signal(signal.SIGTERM)
        try:
            process.popen.wait(grace)
        except subprocess.TimeoutExpired:
            process.popen.kill()
            process.popen.wait(5)

    def _run_job(self, job: Obj) -> None:
        meta = job["metadata"]
        namespace = meta["namespace"]
        if self.job_pod_refusal:
            self.event(namespace, job, "Warning", "FailedCreate", self.job_pod_refusal)
            return
        template = job["spec"]["template"]
        labels = dict((template.get("metadata") or {}).get("labels") or {})
        labels.update(
            {
                "job-name": meta["name"],
                "batch.kubernetes.io/job-name": meta["name"],
                "controller-uid": meta["uid"],
                "batch.kubernetes.io/controller-uid": meta["uid"],
            }
        )
        pod_name = f"{meta['name']}-{secrets.token_hex(3)[:5]}"
        spec = json.loads(json.dumps(template["spec"]))
        scheduled = bool(spec.get("nodeName"))
        spec.setdefault("nodeName", NODE)
        pod = self.store.create(
            POD,
            namespace,
            {
                "metadata": {
                    "name": pod_name,
                    "labels": labels,
                    "annotations": (template.get("metadata") or {}).get("annotations") or {},
                    "ownerReferences": [
                        {
                            "apiVersion": "batch/v1",
                            "kind": "Job",
                            "name": meta["name"],
                            "uid": meta["uid"],
                            "controller": True,
                            "blockOwnerDeletion": True,
                        }
                    ],
                },
                "spec": spec,
                "status": {
                    "phase": "Pending",
                    "conditions": [{"type": "PodScheduled", "status": "True"}],
                    "containerStatuses": [
                        _waiting_status(c, "ContainerCreating", "") for c in spec.get("containers") or []
                    ],
                },
            },
            notify=False,
        )
        self.store.update(
            JOB, namespace, meta["name"], lambda j: j.setdefault("status", {}).update({"active": 1})
        )
        if not scheduled:
            self.event(
                namespace,
                pod,
                "Normal",
                "Scheduled",
                f"Successfully assigned {namespace}/{pod_name} to {NODE}",
            )
        for container in spec.get("containers") or []:
            self._start_container(namespace, pod_name, container)

    def add_ephemeral_containers(self, namespace: str, pod_name: str, containers: list[Obj]) -> Obj | None:
        existing = self.store.get(POD, namespace, pod_name)
        if existing is None:
            return None
        known = {c["name"] for c in (existing.get("spec") or {}).get("ephemeralContainers") or []}
        new = [c for c in containers if c.get("name") not in known]

        def add(pod: Obj) -> None:
            pod["spec"].setdefault("ephemeralContainers", []).extend(new)
            pod.setdefault("status", {}).setdefault("ephemeralContainerStatuses", []).extend(
                _waiting_status(c, "ContainerCreating", "") for c in new
            )

        updated = self.store.update(POD, namespace, pod_name, add)
        for container in new:
            self._start_container(
                namespace,
                pod_name,
                container,
                ephemeral=True,
                target_container=container.get("targetContainerName"),
            )
        return updated

    def _set_status(
        self,
        namespace: str,
        pod_name: str,
        container: str,
        ephemeral: bool,
        status: Obj,
        phase: str | None = None,
    ) -> None:
        key = "ephemeralContainerStatuses" if ephemeral else "containerStatuses"

        def change(pod: Obj) -> None:
            pod_status = pod.setdefault("status", {})
            statuses = [s for s in pod_status.get(key) or [] if s.get("name") != container]
            statuses.append(status)
            pod_status[key] = statuses
            if phase:
                pod_status["phase"] = phase
                ready = "True" if phase == "Running" else "False"
                conditions = [
                    c
                    for c in pod_status.get("conditions") or []
                    if c.get("type") not in {"Ready", "ContainersReady"}
                ]
                conditions += [
                    {"type": "Ready", "status": ready},
                    {"type": "ContainersReady", "status": ready},
                ]
                pod_status["conditions"] = conditions
                if phase == "Running":
                    pod_status["podIP"] = "127.0.0.1"

        self.store.update(POD, namespace, pod_name, change)

    def _start_container(
        self,
        namespace: str,
        pod_name: str,
        container: dict[str, Any],
        *,
        ephemeral: bool = False,
        target_container: str | None = None,
    ) -> None:
        pod = self.store.get(POD, namespace, pod_name)
        if pod is None:
            return
        name, image = container["name"], container.get("image", "")
        behaviour = self.image_behaviour.get(image, self.default_behaviour)
        self.event(namespace, pod, "Normal", "Pulling", f'Pulling image "{image}"')
        if behaviour == "pull-error":
            message = (
                f'rpc error: code = NotFound desc = failed to pull and unpack image "{image}": '
                "failed to resolve "
                f'reference "{image}": {image}: not found'
            )
            self.event(namespace, pod, "Warning", "Failed", f'Failed to pull image "{image}": {message}')
            self.event(namespace, pod, "Warning", "Failed", "Error: ErrImagePull")
            self._set_status(
                namespace, pod_name, name, ephemeral, _waiting_status(container, "ErrImagePull", message)
            )
            return
        if behaviour == "hang":
            return
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH")) if p)
        for variable in container.get("env") or []:
            if "value" in variable:
                env[variable["name"]] = str(variable["value"])
                continue
            ref = ((variable.get("valueFrom") or {}).get("secretKeyRef")) or {}
            secret = self.store.get(SECRET, namespace, ref.get("name", ""))
            if secret is None or ref.get("key") not in (secret.get("data") or {}):
                message = f'secret "{ref.get("name")}" not found'
                self.event(namespace, pod, "Warning", "Failed", f"Error: {message}")
                self._set_status(
                    namespace,
                    pod_name,
                    name,
                    ephemeral,
                    _waiting_status(container, "CreateContainerConfigError", message),
                )
                self.waiting_for_secret.append((namespace, pod_name, container, ephemeral, target_container))
                return
            import base64

            env[variable["name"]] = base64.b64decode(secret["data"][ref["key"]]).decode()
        self.event(namespace, pod, "Normal", "Pulled", f'Successfully pulled image "{image}"')
        argv, pod_port = self._argv(namespace, pod_name, pod, container, target_container)
        if behaviour == "crash":
            argv = [
                sys.executable,
                "-c",
                "import sys; print('agent: cannot start: simulated crash', file=sys.stderr); sys.exit(3)",
            ]
        log_key = (namespace, pod_name, name)
        self.logs[log_key] = []
        popen = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
            start_new_session=True,
        )
        process = AgentProcess(popen, pod_port)
        with self._lock:
            self.processes[log_key] = process
        self.event(namespace, pod, "Normal", "Started", f"Started container {name}")
        started = now_rfc3339()
        status = {
            "name": name,
            "image": image,
            "imageID": f"{image}@sha256:{'0' * 64}",
            "containerID": f"containerd://{secrets.token_hex(32)}",
            "ready": True,
            "restartCount": 0,
            "started": True,
            "state": {"running": {"startedAt": started}},
        }
        self._set_status(namespace, pod_name, name, ephemeral, status, phase=None if ephemeral else "Running")
        threading.Thread(
            target=self._watch,
            args=(log_key, process, status, ephemeral),
            name=f"kubelet-{pod_name}",
            daemon=True,
        ).start()

    def _argv(
        self, namespace: str, pod_name: str, pod: Obj, container: Obj, target_container: str | None
    ) -> tuple[list[str], int | None]:
        command = list(container.get("command") or []) + list(container.get("args") or [])
        pod_port: int | None = None
        if "--listen" in command:
            index = command.index("--listen") + 1
            host, _, port = command[index].rpartition(":")
            pod_port = int(port)
            # Every "pod" shares this machine's network: the agent takes a free port, the forward maps to it.
            command[index] = f"{host}:0"
        if target_container and "--target" in command:
            index = command.index("--target") + 1
            if command[index] == "pid/1":
                pid = self.backing.get((namespace, pod_name, target_container))
                if pid is not None:
                    command[index] = f"pid/{pid}"
        if command[:2] == ["pymirrord", "agent"]:
            return [sys.executable, "-m", "pymirrord", *command[1:]], pod_port
        return command, pod_port

    def _watch(self, key: tuple[str, str, str], process: AgentProcess, status: Obj, ephemeral: bool) -> None:
        namespace, pod_name, name = key
        assert process.popen.stdout is not None
        for raw in process.popen.stdout:
            line = raw.rstrip("\n")
            self.logs.setdefault(key, []).append(line)
            if line.startswith("{"):
                with contextlib.suppress(ValueError, KeyError, TypeError):
                    ready = json.loads(line)
                    if ready.get("event") == "ready":
                        process.local_port = int(str(ready["address"]).rpartition(":")[2])
                        process.ready.set()
        code = process.popen.wait()
        process.exited.set()
        finished = now_rfc3339()
        terminated = dict(status)
        terminated["ready"] = False
        terminated["started"] = False
        terminated["state"] = {
            "terminated": {
                "exitCode": code,
                "reason": "Completed" if code == 0 else "Error",
                "startedAt": status["state"]["running"]["startedAt"],
                "finishedAt": finished,
            }
        }
        if self.store.get(POD, namespace, pod_name) is None:
            return
        phase = None if ephemeral else ("Succeeded" if code == 0 else "Failed")
        self._set_status(namespace, pod_name, name, ephemeral, terminated, phase=phase)
        pod = self.store.get(POD, namespace, pod_name)
        owner = next(
            (
                r
                for r in (pod or {}).get("metadata", {}).get("ownerReferences") or []
                if r.get("kind") == "Job"
            ),
            None,
        )
        if owner is not None:
            condition = {
                "type": "Complete" if code == 0 else "Failed",
                "status": "True",
                "reason": "BackoffLimitExceeded" if code else "Completed",
                "message": "Job has reached the specified backoff limit" if code else "",
            }
            self.store.update(
                JOB,
                namespace,
                owner["name"],
                lambda j: j.setdefault("status", {}).update(
                    {"active": 0, "succeeded" if code == 0 else "failed": 1, "conditions": [condition]}
                ),
            )


def _waiting_status(container: Obj, reason: str, message: str) -> Obj:
    waiting: Obj = {"reason": reason}
    if message:
        waiting["message"] = message
    return {
        "name": container["name"],
        "image": container.get("image", ""),
        "imageID": "",
        "ready": False,
        "restartCount": 0,
        "started": False,
        "state": {"waiting": waiting},
    }


@contextlib.contextmanager
def running_emulator(**kwargs: Any) -> Iterator[Emulator]:
    emulator = Emulator(**kwargs).start()
    try:
        yield emulator
    finally:
        emulator.stop()
