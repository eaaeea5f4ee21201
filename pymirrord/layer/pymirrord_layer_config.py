"""The layer's settings: the JSON that ``pymirrord exec`` puts in ``PYMIRRORD_LAYER_CONFIG``.

Shape (unknown keys are ignored, so a newer session can add settings for a newer layer)::

    {"incoming": {"mode": "mirror" | "steal" | "off", "ports": [int] | null, "ignore_ports": [int],
                  "port_mapping": [[local, remote]], "listen_ports": [[requested, actual]],
                  "ignore_localhost": bool},
     "outgoing": {"tcp": bool, "udp": bool, "ignore_localhost": bool, "filter": FILTER | null},
     "dns": {"enabled": bool, "filter": FILTER | null},
     "skip_processes": [str]}

    FILTER = {"mode": "remote" | "local",
              "rules": [{"protocol": "any" | "tcp" | "udp", "kind": "any" | "name" | "ip" | "subnet",
                         "host": str | null, "port": int | null}]}

``ports``, ``ignore_ports``, ``port_mapping`` and ``listen_ports`` are keyed by the port the app binds
(its local port), as the app's own code and the user's config both speak of that port.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

CONFIG_ENV = "PYMIRRORD_LAYER_CONFIG"
MODES = ("mirror", "steal", "off")


class LayerConfigError(ValueError):
    """The config in the environment is malformed; the message names the key."""


@dataclass(frozen=True)
class IncomingConfig:
    """How listeners of the app are treated."""

    mode: str = "mirror"
    ports: frozenset[int] | None = None
    """Only these local ports are served; ``None`` means every port."""
    ignore_ports: frozenset[int] = frozenset()
    port_mapping: Mapping[int, int] = field(default_factory=dict)
    """Local port the app binds -> the pod's port whose traffic it gets."""
    listen_ports: Mapping[int, int] = field(default_factory=dict)
    """Local port the app binds -> the port it really listens on (otherwise a free port)."""
    ignore_localhost: bool = False

    def pod_port(self, port: int) -> int | None:
        """The pod port whose traffic a listener on local ``port`` gets, or ``None`` to leave it alone."""
        # Port 0 asks for any free port: nothing in the pod can be meant by it.
        if self.mode == "off" or port == 0 or port in self.ignore_ports:
            return None
        if self.ports is not None and port not in self.ports:
            return None
        return self.port_mapping.get(port, port)

    def real_port(self, port: int) -> int:
        """Where a served listener for local ``port`` really binds; 0 lets the kernel pick a free port."""
        return self.listen_ports.get(port, 0)


@dataclass(frozen=True)
class FilterRule:
    """One outgoing or DNS filter entry: ``[tcp|udp|any://][name|ip|subnet/len][:port]``, already parsed."""

    protocol: str = "any"
    kind: str = "any"
    """``any`` (only a port), ``name``, ``ip`` or ``subnet``."""
    host: str | None = None
    port: int | None = None


@dataclass(frozen=True)
class TrafficFilter:
    """``remote``: only matching traffic goes through the target. ``local``: matching traffic stays local."""

    mode: str
    rules: tuple[FilterRule, ...]


@dataclass(frozen=True)
class OutgoingConfig:
    tcp: bool = True
    udp: bool = True
    ignore_localhost: bool = False
    filter: TrafficFilter | None = None

    @property
    def enabled(self) -> bool:
        return self.tcp or self.udp


@dataclass(frozen=True)
class DnsConfig:
    enabled: bool = True
    filter: TrafficFilter | None = None


@dataclass(frozen=True)
class LayerConfig:
    incoming: IncomingConfig = field(default_factory=IncomingConfig)
    outgoing: OutgoingConfig = field(default_factory=OutgoingConfig)
    dns: DnsConfig = field(default_factory=DnsConfig)
    skip_processes: tuple[str, ...] = ()

    def skips(self, names: frozenset[str]) -> bool:
        """Whether this process, known by any of ``names``, is one the user asked to leave alone."""
        return any(name in names for name in self.skip_processes)


def parse_config(text: str | None) -> LayerConfig:
    """Parses the environment's JSON; absent or empty means every default."""
    if text is None or not text.strip():
        return LayerConfig()
    try:
        raw = json.loads(text)
    except ValueError as error:
        raise LayerConfigError(f"{CONFIG_ENV} is not valid JSON: {error}") from None
    document = _object(raw, CONFIG_ENV)
    incoming = _object(document.get("incoming"), f"{CONFIG_ENV}: incoming")
    outgoing = _object(document.get("outgoing"), f"{CONFIG_ENV}: outgoing")
    dns = _object(document.get("dns"), f"{CONFIG_ENV}: dns")
    return LayerConfig(
        incoming=_parse_incoming(incoming),
        outgoing=OutgoingConfig(
            tcp=_bool(outgoing.get("tcp"), "outgoing.tcp", True),
            udp=_bool(outgoing.get("udp"), "outgoing.udp", True),
            ignore_localhost=_bool(outgoing.get("ignore_localhost"), "outgoing.ignore_localhost", False),
            filter=_parse_filter(outgoing.get("filter"), "outgoing.filter"),
        ),
        dns=DnsConfig(
            enabled=_bool(dns.get("enabled"), "dns.enabled", True),
            filter=_parse_filter(dns.get("filter"), "dns.filter"),
        ),
        skip_processes=tuple(_strings(document.get("skip_processes"), "skip_processes")),
    )


def _parse_incoming(raw: dict[str, Any]) -> IncomingConfig:
    mode = raw.get("mode", "mirror")
    if mode is None:
        mode = "mirror"
    if mode not in MODES:
        raise LayerConfigError(
            f"{CONFIG_ENV}: incoming.mode must be one of {', '.join(MODES)}, found {json.dumps(mode)}"
        )
    ports_raw = raw.get("ports")
    ignore_localhost = raw.get("ignore_localhost", False)
    if ignore_localhost is None:
        ignore_localhost = False
    if not isinstance(ignore_localhost, bool):
        raise LayerConfigError(
            f"{CONFIG_ENV}: incoming.ignore_localhost must be true or false,"
            f" found {json.dumps(ignore_localhost)}"
        )
    return IncomingConfig(
        mode=mode,
        ports=None if ports_raw is None else frozenset(_ports(ports_raw, "incoming.ports")),
        ignore_ports=frozenset(_ports(raw.get("ignore_ports"), "incoming.ignore_ports")),
        port_mapping=_pairs(raw.get("port_mapping"), "incoming.port_mapping"),
        listen_ports=_pairs(raw.get("listen_ports"), "incoming.listen_ports"),
        ignore_localhost=ignore_localhost,
    )


def _bool(value: Any, key: str, default: bool) -> bool:
    if value is None:
        return default
    if not isinstance(value, bool):
        raise LayerConfigError(f"{CONFIG_ENV}: {key} must be true or false, found {json.dumps(value)}")
    return value


_PROTOCOLS = ("any", "tcp", "udp")
_KINDS = ("any", "name", "ip", "subnet")


def _parse_filter(value: Any, key: str) -> TrafficFilter | None:
    if value is None:
        return None
    raw = _object(value, f"{CONFIG_ENV}: {key}")
    mode = raw.get("mode")
    if mode not in ("remote", "local"):
        raise LayerConfigError(f"{CONFIG_ENV}: {key}.mode must be remote or local, found {json.dumps(mode)}")
    rules = []
    for index, item in enumerate(_list(raw.get("rules"), f"{key}.rules")):
        where = f"{key}.rules[{index}]"
        entry = _object(item, f"{CONFIG_ENV}: {where}")
        protocol = entry.get("protocol", "any")
        kind = entry.get("kind", "any")
        host = entry.get("host")
        port = entry.get("port")
        if protocol not in _PROTOCOLS or kind not in _KINDS:
            raise LayerConfigError(
                f"{CONFIG_ENV}: {where} has protocol {json.dumps(protocol)} and kind {json.dumps(kind)};"
                f" protocol is one of {', '.join(_PROTOCOLS)}, kind one of {', '.join(_KINDS)}"
            )
        if (host is None) != (kind == "any") or (host is not None and not isinstance(host, str)):
            raise LayerConfigError(f"{CONFIG_ENV}: {where}.host must be a string unless kind is any")
        rules.append(FilterRule(protocol, kind, host, None if port is None else _port(port, f"{where}.port")))
    return TrafficFilter(mode, tuple(rules))


def _object(value: Any, where: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise LayerConfigError(f"{where} must be a JSON object, found {json.dumps(value)}")
    return value


def _list(value: Any, key: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise LayerConfigError(f"{CONFIG_ENV}: {key} must be a list, found {json.dumps(value)}")
    return value


def _port(value: Any, key: str) -> int:
    # bool is an int to Python but never a port to a user.
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 65535:
        raise LayerConfigError(
            f"{CONFIG_ENV}: {key} must be a port number (0-65535), found {json.dumps(value)}"
        )
    return value


def _ports(value: Any, key: str) -> list[int]:
    return [_port(item, f"{key}[{index}]") for index, item in enumerate(_list(value, key))]


def _pairs(value: Any, key: str) -> dict[int, int]:
    pairs: dict[int, int] = {}
    for index, item in enumerate(_list(value, key)):
        if not isinstance(item, list) or len(item) != 2:
            raise LayerConfigError(
                f"{CONFIG_ENV}: {key}[{index}] must be a pair [port, port], found {json.dumps(item)}"
            )
        pairs[_port(item[0], f"{key}[{index}][0]")] = _port(item[1], f"{key}[{index}][1]")
    return pairs


def _strings(value: Any, key: str) -> list[str]:
    items = _list(value, key)
    for index, item in enumerate(items):
        if not isinstance(item, str):
            raise LayerConfigError(f"{CONFIG_ENV}: {key}[{index}] must be a string, found {json.dumps(item)}")
    return items


def process_names() -> frozenset[str]:
    """The names ``skip_processes`` may use for this process: interpreter, script, or ``-m`` module.

    At ``sitecustomize`` time ``sys.argv`` holds ``-m`` rather than the module, so the module comes
    from ``sys.orig_argv`` where the interpreter has it (3.10+).
    """
    names = {os.path.basename(sys.executable)}
    argv = getattr(sys, "argv", None) or []
    if argv and argv[0] not in ("-c", "-m", ""):
        names.add(os.path.basename(argv[0]))
    orig_argv: list[str] = getattr(sys, "orig_argv", None) or []
    for index, arg in enumerate(orig_argv[:-1]):
        if arg == "-m":
            names.add(orig_argv[index + 1])
            break
    names.discard("")
    return frozenset(names)
