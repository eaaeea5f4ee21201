"""A two-host lab on this machine: a "pod" and a "client" network namespace joined by a veth pair.

The demo runs the mission document's story in it, and the integration tests build their targets with
it. Everything it creates is named with a unique suffix and removed by ``close`` (also when setup
fails half way), so runs never collide and never leave namespaces behind.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import subprocess
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from pymirrord.errors import PymirrordError


class LabError(PymirrordError):
    """The lab could not be built (not root, no ``ip`` command, kernel refused)."""


def _ip(*args: str) -> None:
    try:
        subprocess.run(["ip", *args], check=True, capture_output=True, text=True)
    except FileNotFoundError:
        raise LabError(
            "the 'ip' command is missing", "install iproute2 (apt-get install -y iproute2)"
        ) from None
    except subprocess.CalledProcessError as error:
        raise LabError(
            f"'ip {' '.join(args)}' failed: {error.stderr.strip()}",
            "network namespaces need root (or CAP_NET_ADMIN and CAP_SYS_ADMIN)",
        ) from None


def in_namespace(namespace: str, argv: Sequence[str]) -> list[str]:
    """The argv that runs ``argv`` inside ``namespace``."""
    return ["ip", "netns", "exec", namespace, *argv]


@dataclass
class Lab:
    """Two namespaces on a private /24: ``pod`` (``pod_ip``) and ``client`` (``client_ip``)."""

    pod: str
    client: str
    pod_ip: str
    client_ip: str
    _created: list[str] = field(default_factory=list)

    @classmethod
    def create(cls, prefix: str = "pmd") -> Lab:
        suffix = secrets.token_hex(3)
        # A /24 per lab, chosen at random inside 10.200.0.0/13 and only ever routed between our namespaces.
        subnet = f"10.{200 + secrets.randbelow(8)}.{secrets.randbelow(256)}"
        lab = cls(f"{prefix}-pod-{suffix}", f"{prefix}-cli-{suffix}", f"{subnet}.1", f"{subnet}.2")
        try:
            lab._build(suffix)
        except BaseException:
            lab.close()
            raise
        return lab

    def _build(self, suffix: str) -> None:
        for namespace in (self.pod, self.client):
            _ip("netns", "add", namespace)
            self._created.append(namespace)
            _ip("-n", namespace, "link", "set", "lo", "up")
        pod_end, client_end = f"pmdp{suffix}", f"pmdc{suffix}"
        _ip("link", "add", pod_end, "type", "veth", "peer", "name", client_end)
        try:
            _ip("link", "set", pod_end, "netns", self.pod)
            _ip("link", "set", client_end, "netns", self.client)
        except LabError:
            with contextlib.suppress(LabError):
                _ip("link", "del", pod_end)
            raise
        for namespace, device, address in (
            (self.pod, pod_end, self.pod_ip),
            (self.client, client_end, self.client_ip),
        ):
            _ip("-n", namespace, "addr", "add", f"{address}/24", "dev", device)
            _ip("-n", namespace, "link", "set", device, "up")

    def close(self) -> None:
        """Deletes the namespaces (their veth ends go with them); safe to call more than once."""
        while self._created:
            namespace = self._created.pop()
            with contextlib.suppress(LabError):
                _ip("netns", "del", namespace)

    def __enter__(self) -> Lab:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def target(self) -> str:
        return f"netns/{self.pod}"


@contextlib.contextmanager
def lab(prefix: str = "pmd") -> Iterator[Lab]:
    built = Lab.create(prefix)
    try:
        yield built
    finally:
        built.close()


def namespace_exists(name: str) -> bool:
    return os.path.exists(os.path.join("/run/netns", name))
