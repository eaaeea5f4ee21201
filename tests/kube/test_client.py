"""Building the client from a kubeconfig, and how failed requests are reported."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from pymirrord.kube.client import POD, KubeSettings, connect, kubeconfig_path
from pymirrord.kube.errors import ApiRequestFailed, ClusterUnreachable, KubeconfigError

from .emulator import Emulator


def test_the_current_contexts_namespace(kubeconfig: Path) -> None:
    api = connect(KubeSettings(kubeconfig=str(kubeconfig)))
    assert (api.context, api.namespace) == ("emulator", "default")
    other = connect(KubeSettings(kubeconfig=str(kubeconfig), context="elsewhere"))
    assert (other.context, other.namespace) == ("elsewhere", "elsewhere")


def test_kubeconfig_from_the_environment(monkeypatch: pytest.MonkeyPatch, kubeconfig: Path) -> None:
    assert kubeconfig_path(KubeSettings(), {"KUBECONFIG": str(kubeconfig)}) == str(kubeconfig)
    assert kubeconfig_path(KubeSettings(kubeconfig="~/x"), {"KUBECONFIG": "y"}).endswith("/x")
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    assert connect(KubeSettings()).context == "emulator"


def test_unknown_context_lists_the_known_ones(kubeconfig: Path) -> None:
    with pytest.raises(KubeconfigError) as caught:
        connect(KubeSettings(kubeconfig=str(kubeconfig), context="prod"))
    assert caught.value.hint == "contexts in it: elsewhere, emulator"


def test_missing_kubeconfig(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    with pytest.raises(KubeconfigError, match="no kubeconfig found at"):
        connect(KubeSettings(kubeconfig=str(tmp_path / "nope")))


def test_unreachable_cluster(emulator: Emulator, tmp_path: Path) -> None:
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    emulator.port = port  # a port where nothing listens
    path = emulator.write_kubeconfig(tmp_path / "kubeconfig")
    api = connect(KubeSettings(kubeconfig=str(path)))
    with pytest.raises(ClusterUnreachable) as caught:
        api.list(POD, "default")
    assert caught.value.message.startswith(
        f"cannot reach the Kubernetes API server at http://127.0.0.1:{port}"
    )


def test_bad_credentials(emulator: Emulator, kubeconfig: Path) -> None:
    api = connect(KubeSettings(kubeconfig=str(kubeconfig)))
    emulator.token = "rotated"
    with pytest.raises(ApiRequestFailed) as caught:
        api.list(POD, "default")
    assert caught.value.status == 401
    assert caught.value.message == "the API server rejected your credentials (Unauthorized)"
