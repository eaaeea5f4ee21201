"""Deploying the agent: the pure reading of pod statuses, and whole start-ups against the emulated cluster.

The start-up tests run the real agent (started by the emulator's Job controller from the Job's own command and
Secret) in a network namespace standing in for the user-service pod, reach it through the port-forward, and
check that the Job and Secret are gone afterwards, however the start-up ended.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from pymirrord.kube.agent_job import DEFAULT_IMAGE
from pymirrord.kube.deploy import (
    Broken,
    KubeAgent,
    Running,
    Starting,
    assess_pod,
    describe_events,
    job_failure,
)
from pymirrord.kube.errors import AgentStartFailed, AgentStartTimeout, Forbidden, NoReadyPod, StealNotPossible
from pymirrord.kube.progress import CallbackProgress, ProgressEvent
from pymirrord.protocol import agent_to_session as from_agent
from pymirrord.protocol import session_to_agent as to_agent
from pymirrord.protocol.types import Mode
from pymirrord.session.agent_link import AgentLink

from . import world
from .conftest import UserServiceWorld

HTTP_GET = """
import sys, urllib.request
with urllib.request.urlopen(sys.argv[1], timeout=15) as response:
    print(response.read().decode())
"""
START_AGENT = Path(__file__).resolve().parent / "start_agent.py"


# -- assess_pod (pure) ----------------------------------------------------------------------------------


def _pod(**status: Any) -> dict[str, Any]:
    return {"metadata": {"name": "agent-x1"}, "status": {"phase": "Pending", **status}}


def _container(state: dict[str, Any], name: str = "pymirrord-agent") -> dict[str, Any]:
    return {"name": name, "image": "img:1", "state": state}


def test_no_pod_yet() -> None:
    assert assess_pod(None, container="pymirrord-agent", secret_name="s") == Starting(
        "waiting for the Job to create the agent pod"
    )


def test_running() -> None:
    pod = _pod(phase="Running", containerStatuses=[_container({"running": {}})])
    assert assess_pod(pod, container="pymirrord-agent", secret_name="s") == Running("agent-x1")


def test_image_pull_errors_are_fatal() -> None:
    pod = _pod(
        containerStatuses=[
            _container({"waiting": {"reason": "ImagePullBackOff", "message": "Back-off pulling"}})
        ]
    )
    result = assess_pod(pod, container="pymirrord-agent", secret_name="s")
    assert isinstance(result, Broken)
    assert result.message == "the agent image img:1 cannot be pulled (ImagePullBackOff: Back-off pulling)"
    assert "agent.image" in result.hint


def test_the_secret_arriving_after_the_job_is_waited_for() -> None:
    waiting = {"waiting": {"reason": "CreateContainerConfigError", "message": 'secret "agent-s" not found'}}
    assert isinstance(
        assess_pod(
            _pod(containerStatuses=[_container(waiting)]), container="pymirrord-agent", secret_name="agent-s"
        ),
        Starting,
    )
    other = {"waiting": {"reason": "CreateContainerConfigError", "message": 'configmap "x" not found'}}
    assert isinstance(
        assess_pod(
            _pod(containerStatuses=[_container(other)]), container="pymirrord-agent", secret_name="agent-s"
        ),
        Broken,
    )


def test_unschedulable_keeps_the_reason_for_the_timeout() -> None:
    pod = _pod(
        conditions=[
            {
                "type": "PodScheduled",
                "status": "False",
                "reason": "Unschedulable",
                "message": "0/3 nodes are available: 3 Insufficient cpu.",
            }
        ]
    )
    assert assess_pod(pod, container="pymirrord-agent", secret_name="s") == Starting(
        "pod agent-x1 cannot be scheduled yet", "unschedulable: 0/3 nodes are available: 3 Insufficient cpu."
    )


def test_the_agent_exiting_is_fatal() -> None:
    pod = _pod(
        phase="Failed", containerStatuses=[_container({"terminated": {"exitCode": 1, "reason": "Error"}})]
    )
    result = assess_pod(pod, container="pymirrord-agent", secret_name="s")
    assert isinstance(result, Broken)
    assert result.message == "the agent in pod agent-x1 exited with code 1 (Error)"


def test_kubelet_rejection() -> None:
    pod = _pod(phase="Failed", reason="OutOfcpu", message="Pod Node didn't have enough resource: cpu")
    assert assess_pod(pod, container="pymirrord-agent", secret_name="s") == Broken(
        "the agent pod agent-x1 ended: OutOfcpu: Pod Node didn't have enough resource: cpu"
    )


def test_ephemeral_status_is_read_from_its_own_list() -> None:
    pod = _pod(phase="Running", ephemeralContainerStatuses=[_container({"running": {}}, name="eph")])
    assert assess_pod(pod, container="eph", secret_name="s", ephemeral=True) == Running("agent-x1")


def test_job_failure_and_events() -> None:
    assert (
        job_failure(
            {
                "status": {
                    "conditions": [{"type": "Failed", "status": "True", "message": "BackoffLimitExceeded"}]
                }
            }
        )
        == "BackoffLimitExceeded"
    )
    assert job_failure({"status": {}}) is None
    events = [
        {
            "type": "Warning",
            "reason": "Failed",
            "message": "pull failed",
            "lastTimestamp": "2024-01-01T00:00:02Z",
        },
        {
            "type": "Normal",
            "reason": "Pulling",
            "message": "Pulling image",
            "lastTimestamp": "2024-01-01T00:00:01Z",
        },
        {
            "type": "Warning",
            "reason": "Failed",
            "message": "pull failed",
            "lastTimestamp": "2024-01-01T00:00:03Z",
        },
    ]
    assert describe_events(events) == ["Normal Pulling: Pulling image", "Warning Failed: pull failed"]


# -- start-ups against the emulated cluster ------------------------------------------------------------


async def _steal_one_request(world_: UserServiceWorld, agent: KubeAgent, answer: bytes) -> str:
    link = await AgentLink.open(agent.url, agent.token, "test", 15)
    try:
        await link.send(to_agent.PortSubscribe(80, Mode.STEAL, handover=False))
        messages = link.messages()
        result = await asyncio.wait_for(anext(messages), 15)
        assert result == from_agent.PortSubscribeResult(80, Mode.STEAL, None)
        client = world_.topology.client.start_python(
            HTTP_GET, f"http://{world_.topology.pod_ip}/users", ready=False
        )
        request = b""
        while b"\r\n\r\n" not in request:
            message = await asyncio.wait_for(anext(messages), 15)
            if isinstance(message, from_agent.ConnectionRead):
                request += message.data
                connection = message.connection_id
        assert request.startswith(b"GET /users HTTP/1.1")
        await link.send(to_agent.ConnectionWrite(connection, answer))
        await link.send(to_agent.ConnectionClose(connection))
        return await asyncio.to_thread(client.read_line)
    finally:
        await link.close()


def test_deployment_target_steal_end_to_end(user_service: UserServiceWorld) -> None:
    emulator = user_service.emulator
    events: list[ProgressEvent] = []
    body = b'[{"Name": "Local", "Last": "Laptop"}]'
    answer = (
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n"
        b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
    )

    async def scenario() -> str:
        agent = await KubeAgent.start(
            user_service.config(mode="steal"), progress=CallbackProgress(events.append)
        )
        try:
            return await _steal_one_request(user_service, agent, answer)
        finally:
            await agent.stop()

    assert asyncio.run(scenario()) == body.decode()

    # What was sent to the cluster: the Job, then the Secret it owns; the token only in the Secret.
    (job_kind, job), (secret_kind, secret) = emulator.created_bodies
    assert (job_kind, secret_kind) == ("Job", "Secret")
    pod_spec = job["spec"]["template"]["spec"]
    assert pod_spec["nodeName"] == world.NODE
    assert pod_spec["hostPID"] is True
    assert pod_spec["containers"][0]["image"] == DEFAULT_IMAGE
    assert pod_spec["containers"][0]["args"][:2] == [
        "--container-id",
        f"containerd://{user_service.container_id}",
    ]
    token = secret["stringData"]["token"]
    assert token not in json.dumps(job)
    (owner,) = secret["metadata"]["ownerReferences"]
    assert (owner["apiVersion"], owner["kind"], owner["name"]) == ("batch/v1", "Job", job["metadata"]["name"])
    assert owner["uid"]
    # Deleted with background propagation, so its pod and the agent go too.
    assert sorted(emulator.deletions) == sorted(
        [
            ("Secret", "default", secret["metadata"]["name"], "Background"),
            ("Job", "default", job["metadata"]["name"], "Background"),
        ]
    )
    assert emulator.wait_until(emulator.nothing_left)
    assert (events[0].kind, events[-1].kind) == ("begin", "end")
    assert any(e.message and e.message.startswith("creating job/pymirrord-agent-") for e in events)
    # With the agent gone the pod serves again.
    assert (
        "Owner"
        in user_service.topology.client.python(
            HTTP_GET, f"http://{user_service.topology.pod_ip}/users"
        ).stdout
    )


def test_image_pull_error(user_service: UserServiceWorld) -> None:
    emulator = user_service.emulator
    image = "registry.example/pymirrord-agent:missing"
    emulator.image_behaviour[image] = "pull-error"
    with pytest.raises(AgentStartFailed) as caught:
        asyncio.run(KubeAgent.start(user_service.config(image=image)))
    message = caught.value.message
    assert message.startswith(
        f"the agent image {image} cannot be pulled (ErrImagePull: rpc error: code = NotFound"
    )
    assert f'Warning Failed: Failed to pull image "{image}"' in message
    assert "agent.image" in caught.value.hint
    assert emulator.wait_until(emulator.nothing_left)


def test_no_ready_pod_creates_nothing(
    emulator: Any, kubeconfig: Path, user_service: UserServiceWorld
) -> None:
    emulator.add(*world.deployment_with_pods("billing", ready=False))
    with pytest.raises(NoReadyPod, match="deployment/billing in namespace default has 0 ready pods"):
        asyncio.run(KubeAgent.start(user_service.config("deployment/billing")))
    assert emulator.created_bodies == []


def test_forbidden_job_creation(user_service: UserServiceWorld) -> None:
    emulator = user_service.emulator
    emulator.forbid("create", "jobs", "default")
    with pytest.raises(Forbidden) as caught:
        asyncio.run(KubeAgent.start(user_service.config()))
    assert caught.value.message.startswith("not allowed to create jobs.batch in namespace default")
    assert emulator.wait_until(emulator.nothing_left)


def test_pod_security_refusal(user_service: UserServiceWorld) -> None:
    emulator = user_service.emulator
    emulator.job_pod_refusal = (
        'pods "pymirrord-agent-x" is forbidden: violates PodSecurity "baseline:latest": '
        "host namespaces (hostPID=true)"
    )
    with pytest.raises(AgentStartFailed) as caught:
        asyncio.run(KubeAgent.start(user_service.config()))
    assert (
        'could not create its pod: pods "pymirrord-agent-x" is forbidden: violates PodSecurity'
        in caught.value.message
    )
    assert "pod security" in caught.value.hint
    assert emulator.wait_until(emulator.nothing_left)


def test_startup_timeout(user_service: UserServiceWorld) -> None:
    emulator = user_service.emulator
    emulator.image_behaviour["slow/agent:1"] = "hang"
    with pytest.raises(AgentStartTimeout) as caught:
        asyncio.run(KubeAgent.start(user_service.config(image="slow/agent:1", startup_timeout=2)))
    assert caught.value.message.startswith("the agent was not ready within 2 s (pod pymirrord-agent-")
    assert 'Normal Pulling: Pulling image "slow/agent:1"' in caught.value.message
    assert emulator.wait_until(emulator.nothing_left)


def test_agent_crash_shows_its_log(user_service: UserServiceWorld) -> None:
    emulator = user_service.emulator
    emulator.image_behaviour["broken/agent:1"] = "crash"
    with pytest.raises(AgentStartFailed) as caught:
        asyncio.run(KubeAgent.start(user_service.config(image="broken/agent:1")))
    assert "exited with code 3 (Error)" in caught.value.message
    assert "agent: cannot start: simulated crash" in caught.value.message
    assert emulator.wait_until(emulator.nothing_left)


def test_targetless_steal_is_refused_before_anything_is_created(user_service: UserServiceWorld) -> None:
    with pytest.raises(StealNotPossible):
        asyncio.run(KubeAgent.start(user_service.config("targetless", mode="steal")))
    assert user_service.emulator.created_bodies == []


def test_ctrl_c_during_startup_leaves_nothing(user_service: UserServiceWorld) -> None:
    emulator = user_service.emulator
    emulator.image_behaviour["slow/agent:1"] = "hang"
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[2]))
    process = subprocess.Popen(
        [
            sys.executable,
            str(START_AGENT),
            str(user_service.kubeconfig),
            "deployment/user-service",
            "slow/agent:1",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert emulator.wait_until(
            lambda: bool(emulator.objects("Secret", label_selector="app.kubernetes.io/managed-by=pymirrord"))
        )
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
    assert process.returncode == 130, err
    assert "Traceback" not in err
    assert emulator.wait_until(emulator.nothing_left)
    kinds = sorted(kind for kind, *_ in emulator.deletions)
    assert kinds == ["Job", "Secret"]


def test_an_agent_whose_client_never_comes_exits_by_itself(user_service: UserServiceWorld) -> None:
    emulator = user_service.emulator

    async def scenario() -> None:
        agent = await KubeAgent.start(user_service.config(), idle_timeout=2)
        try:
            (process,) = emulator.agent_processes()
            assert await asyncio.to_thread(process.exited.wait, 30)
            assert process.popen.returncode == 0
        finally:
            await agent.stop()

    asyncio.run(scenario())
    assert emulator.wait_until(emulator.nothing_left)


def test_ephemeral_agent(user_service: UserServiceWorld) -> None:
    emulator = user_service.emulator
    body = b"from the laptop"
    answer = b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)

    async def scenario() -> str:
        agent = await KubeAgent.start(user_service.config(mode="steal", ephemeral=True), idle_timeout=2)
        try:
            assert agent.pod == user_service.pod
            return await _steal_one_request(user_service, agent, answer)
        finally:
            await agent.stop()

    assert asyncio.run(scenario()) == body.decode()
    ((secret_kind, secret),) = emulator.created_bodies
    assert secret_kind == "Secret"
    assert secret["metadata"]["ownerReferences"][0]["kind"] == "Pod"
    pod = emulator.objects("Pod", "default")
    (target,) = [p for p in pod if p["metadata"]["name"] == user_service.pod]
    (ephemeral,) = target["spec"]["ephemeralContainers"]
    assert ephemeral["targetContainerName"] == "app"
    assert not emulator.objects("Secret", label_selector="app.kubernetes.io/managed-by=pymirrord")
    # Ephemeral containers cannot be removed: the agent leaves by itself once its session is gone.
    (process,) = emulator.agent_processes()
    assert process.exited.wait(30)
