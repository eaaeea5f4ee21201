"""Fixtures for the Kubernetes tests: an emulated API server, a kubeconfig pointing at it, a client.

- ``emulator``: a running ``Emulator`` (stopped, with every process it started, after the test);
- ``kubeconfig``: a kubeconfig file for it (context ``emulator``, namespace ``default``);
- ``api``: a ``KubeApi`` built from that kubeconfig by the same code ``pymirrord`` uses;
- ``user_service``: the mission's user-service as a deployment whose pod is a real network namespace.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

# The namespace helpers of the integration tests (real `ip netns` namespaces) are shared, not copied.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))

from pymirrord.config.model import AgentConfig, IncomingConfig, ResolvedConfig, TargetConfig
from pymirrord.kube.client import KubeApi, KubeSettings, connect

from . import world
from .emulator import Emulator, running_emulator


@pytest.fixture
def emulator() -> Iterator[Emulator]:
    with running_emulator() as emu:
        yield emu


@pytest.fixture
def kubeconfig(emulator: Emulator, tmp_path: Path) -> Path:
    return emulator.write_kubeconfig(tmp_path / "kubeconfig")


@pytest.fixture
def api(kubeconfig: Path) -> Iterator[KubeApi]:
    client = connect(KubeSettings(kubeconfig=str(kubeconfig)))
    try:
        yield client
    finally:
        client.close()


# The pod process's own environment, as a container runtime gives it (image ENV, envFrom, secrets); the
# pod's API object says something else, so a test can tell where the agent read it.
POD_ENV = {"USERS_DB_URL": "postgres://users-db:5432/users", "USERS_API_TOKEN": "kube-secret-value"}
API_ENV = [{"name": "USERS_DB_URL", "value": "from-the-api-object"}]


@dataclass
class UserServiceWorld:
    """The mission's story in the emulator: deployment/user-service whose pod is a real network namespace.

    The pod's process (the example user-service on port 80) runs in ``topology.pod`` and sits in a cgroup
    named
    after its container id, so the agent finds it from the id in the pod's status, as on a real node.
    """

    emulator: Emulator
    kubeconfig: Path
    topology: Any
    pod: str
    container_id: str
    pid: int

    def config(
        self, target: str = "deployment/user-service", *, mode: str = "mirror", **agent: Any
    ) -> ResolvedConfig:
        agent.setdefault("startup_timeout", 30)
        return ResolvedConfig(
            target=TargetConfig(path=target),
            incoming=IncomingConfig(mode=mode),  # type: ignore[arg-type]
            agent=AgentConfig(**agent),
            kubeconfig=str(self.kubeconfig),
        )


@pytest.fixture
def user_service(emulator: Emulator, kubeconfig: Path) -> Iterator[UserServiceWorld]:
    if os.geteuid() != 0 or shutil.which("ip") is None or shutil.which("iptables") is None:
        pytest.skip("needs root, ip and iptables (real network namespaces)")
    from netns_helpers import REPO_ROOT, topology

    from .cgroups import cgroup2_root, container_cgroup

    if cgroup2_root() is None:
        pytest.skip("needs a cgroup v2 hierarchy")
    service = str(REPO_ROOT / "examples" / "user-service" / "service.py")
    container_id = world.container_id()
    with topology() as topo, container_cgroup(container_id) as cgroup:
        assignments = [f"{name}={value}" for name, value in POD_ENV.items()]
        process = topo.pod.start(
            "env", *assignments, sys.executable, service, "--port", "80", "--seed", "Pod:Owner"
        )
        cgroup.add(process.pid)
        objects = world.deployment_with_pods("user-service", ids={"app": container_id})
        objects[-1]["spec"]["containers"][0]["env"] = API_ENV
        pod_name = objects[-1]["metadata"]["name"]
        objects[-1]["status"]["podIP"] = topo.pod_ip
        emulator.add(*objects, world.service("user-service", selector={"app": "user-service"}))
        emulator.back_container("default", pod_name, "app", process.pid)
        yield UserServiceWorld(emulator, kubeconfig, topo, pod_name, container_id, process.pid)
        # Agents first: they must remove their rules while the namespace still exists.
        for agent in emulator.agent_processes():
            if agent.popen.poll() is None:
                agent.popen.terminate()
                agent.popen.wait(15)
