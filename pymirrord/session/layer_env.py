"""The environment that injects the layer into a process and points it at its session.

``pymirrord exec`` and the editor helper's ``prepareLaunch`` both build the app's environment here, from
``layer_settings_for`` and ``layer_environment``, so a debug launch and a terminal run get exactly the same
layer.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pymirrord.layer

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
