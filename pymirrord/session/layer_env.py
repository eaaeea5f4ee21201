"""The environment that injects the layer into a process and points it at its session.

``pymirrord exec`` and the editor helper's ``prepareLaunch`` both build the app's environment here, with
``process_environment``: the target's variables, the env file and the overrides (``feature.env``), then the
layer on top. A debug launch and a terminal run so get exactly the same variables and the same layer.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pymirrord.layer
from pymirrord.remote_env import TargetEnvironment, compose

if TYPE_CHECKING:
    from pymirrord.config import ResolvedConfig

SOCKET_VARIABLE = "PYMIRRORD_LAYER_SOCKET"
CONFIG_VARIABLE = "PYMIRRORD_LAYER_CONFIG"


def layer_path() -> str:
    """The folder that goes on PYTHONPATH: it holds ``sitecustomize`` and uniquely named modules only."""
    return str(Path(pymirrord.layer.__file__).resolve().parent)


def layer_settings_for(config: ResolvedConfig) -> dict[str, Any]:
    """The layer's settings for a resolved config: incoming, outgoing, DNS and the processes to skip.

    The one place that picks the config's sections for the layer; ``exec`` and ``prepareLaunch`` both call it.
    """
    return layer_settings(config.incoming, tuple(config.skip_processes), config.outgoing, config.dns)


def layer_settings(
    incoming: Any, skip_processes: tuple[str, ...], outgoing: Any = None, dns: Any = None
) -> dict[str, Any]:
    """The part of the resolved config the layer acts on, as plain JSON data.

    ``outgoing`` and ``dns`` are the resolved config's sections; without them the layer's defaults apply
    (outgoing TCP and UDP through the target, names resolved in the target).
    """
    settings = {
        "incoming": {
            "mode": incoming.mode,
            "ports": list(incoming.ports) if incoming.ports is not None else None,
            "ignore_ports": list(incoming.ignore_ports),
            "port_mapping": [list(pair) for pair in incoming.port_mapping],
            "listen_ports": [list(pair) for pair in incoming.listen_ports],
            "ignore_localhost": incoming.ignore_localhost,
        },
        "skip_processes": list(skip_processes),
    }
    if outgoing is not None:
        settings["outgoing"] = {
            "tcp": outgoing.tcp,
            "udp": outgoing.udp,
            "ignore_localhost": outgoing.ignore_localhost,
            "filter": _traffic_filter(outgoing.filter),
        }
    if dns is not None:
        settings["dns"] = {"enabled": dns.enabled, "filter": _traffic_filter(dns.filter)}
    return settings


def _traffic_filter(traffic_filter: Any) -> dict[str, Any] | None:
    if traffic_filter is None:
        return None
    return {
        "mode": traffic_filter.mode,
        "rules": [
            {"protocol": rule.protocol, "kind": rule.host_kind, "host": rule.host, "port": rule.port}
            for rule in traffic_filter.rules
        ],
    }


def layer_environment(
    settings: Mapping[str, Any], socket_path: str, base: Mapping[str, str]
) -> tuple[dict[str, str], list[str]]:
    """Variables to set on top of ``base`` (the layer first on PYTHONPATH), and variables to unset."""
    existing = base.get("PYTHONPATH", "")
    entries = [layer_path()] + [entry for entry in existing.split(os.pathsep) if entry]
    added = {
        "PYTHONPATH": os.pathsep.join(dict.fromkeys(entries)),
        SOCKET_VARIABLE: socket_path,
        CONFIG_VARIABLE: json.dumps(settings, separators=(",", ":")),
    }
    # A token meant for the agent must never reach the app or its children.
    unset = [name for name in ("PYMIRRORD_AGENT_TOKEN",) if name in base]
    return added, unset


@dataclass(frozen=True)
class ProcessEnvironment:
    """A process's environment as changes to a local one: remove ``unset``, then apply ``set``.

    ``from_target`` names (sorted) the variables whose value is the target's.
    """

    set: dict[str, str]
    unset: list[str]
    from_target: tuple[str, ...]

    def apply(self, base: Mapping[str, str]) -> dict[str, str]:
        gone = set(self.unset)
        return {name: value for name, value in base.items() if name not in gone} | self.set


def process_environment(
    config: ResolvedConfig, target: TargetEnvironment, socket_path: str, base: Mapping[str, str]
) -> ProcessEnvironment:
    """The environment of a process run under pymirrord, from the local ``base``: ``feature.env`` first
    (override > env_file > target > local, ``unset`` removed), then the layer's variables on top."""
    changes = compose(base, target, dict(config.env.override), config.env.unset)
    composed = changes.apply(base)
    added, layer_unset = layer_environment(layer_settings_for(config), socket_path, composed)
    chosen = {name: value for name, value in changes.set.items() if name not in layer_unset} | added
    unset = sorted((set(changes.unset) | set(layer_unset)) - set(chosen))
    from_target = tuple(name for name in changes.from_target if name in chosen and name not in added)
    return ProcessEnvironment(chosen, unset, from_target)
