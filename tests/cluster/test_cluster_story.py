"""The mission's story against a real cluster. Runs only when PYMIRRORD_TEST_KUBECONFIG names a kubeconfig.

What it needs in that cluster (a kind or minikube cluster will do):
- the agent image, loaded or pullable: PYMIRRORD_TEST_AGENT_IMAGE (see docs/agent-image.md);
- the permissions of docs/kubernetes.md in a namespace the suite creates and deletes (pymirrord-test-<hex>).

The suite deploys a small user-service (the example's code, in a stock python image), then lists, resolves,
starts the agent, steals the service's traffic through the port-forward, and checks that nothing is left.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pymirrord.config.model import AgentConfig, IncomingConfig, ResolvedConfig, TargetConfig
from pymirrord.kube.client import KubeApi, KubeSettings, connect
from pymirrord.kube.deploy import KubeAgent
from pymirrord.kube.listing import list_targets
from pymirrord.kube.targets import PodTarget, parse_kube_target, resolve_target
from pymirrord.protocol import agent_to_session as from_agent
from pymirrord.protocol import session_to_agent as to_agent
from pymirrord.protocol.types import Mode
from pymirrord.session.agent_link import AgentLink

KUBECONFIG = os.environ.get("PYMIRRORD_TEST_KUBECONFIG")
pytestmark = pytest.mark.skipif(
    not KUBECONFIG, reason="set PYMIRRORD_TEST_KUBECONFIG to run against a real cluster"
)
SERVICE = Path(__file__).resolve().parents[2] / "examples" / "user-service" / "service.py"


@pytest.fixture(scope="module")
def api() -> Iterator[KubeApi]:
    client = connect(KubeSettings(kubeconfig=KUBECONFIG, context=os.environ.get("PYMIRRORD_TEST_CONTEXT")))
    yield client
    client.close()


@pytest.fixture(scope="module")
def namespace(api: KubeApi) -> Iterator[str]:
    from kubernetes import client as k8s

    name = f"pymirrord-test-{secrets.token_hex(3)}"
    # Plain dicts as bodies: the client accepts them (typed as its models, hence Any).
    core: Any = k8s.CoreV1Api(api.api_client)
    apps: Any = k8s.AppsV1Api(api.api_client)
    core.create_namespace({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    try:
        core.create_namespaced_config_map(
            name,
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": "user-service"},
                "data": {"service.py": SERVICE.read_text()},
            },
        )
        labels = {"app": "user-service"}
        apps.create_namespaced_deployment(name, _deployment(labels))
        core.create_namespaced_service(
            name,
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": "user-service"},
                "spec": {"selector": labels, "ports": [{"port": 80, "targetPort": 80}]},
            },
        )
        _wait(lambda: _ready(api, name), 180, "deployment/user-service to become available")
        yield name
    finally:
        core.delete_namespace(name, propagation_policy="Background")


def _deployment(labels: dict[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "user-service", "labels": labels},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "containers": [
                        {
                            "name": "user-service",
                            "image": os.environ.get("PYMIRRORD_TEST_APP_IMAGE", "python:3.12-slim"),
                            "command": ["python", "/app/service.py", "--port", "80", "--seed", "Pod:Owner"],
                            "volumeMounts": [{"name": "app", "mountPath": "/app"}],
                            "readinessProbe": {"tcpSocket": {"port": 80}, "periodSeconds": 1},
                        }
                    ],
                    "volumes": [{"name": "app", "configMap": {"name": "user-service"}}],
                },
            },
        },
    }


def _ready(api: KubeApi, namespace: str) -> bool:
    from pymirrord.kube.client import DEPLOYMENT

    return bool(api.get(DEPLOYMENT, namespace, "user-service").get("status", {}).get("availableReplicas"))


def _wait(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(1)


def _config(namespace: str, **agent: Any) -> ResolvedConfig:
    image = os.environ.get("PYMIRRORD_TEST_AGENT_IMAGE")
    if image:
        agent.setdefault("image", image)
    agent.setdefault("startup_timeout", 120)
    return ResolvedConfig(
        target=TargetConfig(path="deployment/user-service", namespace=namespace),
        incoming=IncomingConfig(mode="steal"),
        agent=AgentConfig(**agent),
        kubeconfig=KUBECONFIG,
        kube_context=os.environ.get("PYMIRRORD_TEST_CONTEXT"),
    )


def test_listing_shows_the_story(api: KubeApi, namespace: str) -> None:
    paths = list_targets(api, namespace).paths()
    assert "deployment/user-service" in paths
    assert "service/user-service" in paths


def test_resolution(api: KubeApi, namespace: str) -> None:
    resolved = resolve_target(api, parse_kube_target("deployment/user-service"), namespace)
    assert isinstance(resolved, PodTarget)
    assert resolved.container == "user-service"
    assert "://" in resolved.container_id


def test_steal_through_the_cluster_and_clean_up(api: KubeApi, namespace: str) -> None:
    from kubernetes import client as k8s

    async def scenario() -> None:
        agent = await KubeAgent.start(_config(namespace))
        try:
            link = await AgentLink.open(agent.url, agent.token, "cluster-test", 30)
            await link.send(to_agent.PortSubscribe(80, Mode.STEAL, handover=False))
            messages = link.messages()
            assert await asyncio.wait_for(anext(messages), 30) == from_agent.PortSubscribeResult(
                80, Mode.STEAL, None
            )
            await link.close()
        finally:
            await agent.stop()

    asyncio.run(scenario())
    batch = k8s.BatchV1Api(api.api_client)
    core = k8s.CoreV1Api(api.api_client)
    selector = "app.kubernetes.io/managed-by=pymirrord"
    _wait(
        lambda: not batch.list_namespaced_job(namespace, label_selector=selector).items,
        60,
        "the agent Job to go",
    )
    _wait(
        lambda: not core.list_namespaced_secret(namespace, label_selector=selector).items,
        60,
        "the Secret to go",
    )
    _wait(
        lambda: not core.list_namespaced_pod(namespace, label_selector=selector).items,
        120,
        "the agent pod to go",
    )
    assert json.dumps([])  # the story's data stays with the pod; the agent left it untouched
