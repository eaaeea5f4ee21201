"""The resolved configuration: frozen, typed, every default applied, ready for the session, agent and layer.

Built by ``pymirrord.config.load`` from the file, the ``MIRRORD_*`` environment and command-line flags. Field
defaults equal the schema's ``default``s (a test checks it), and ``SCHEMA_FIELDS`` says which schema property
fills which field, so that schema and model cannot drift apart unnoticed.

``ResolvedConfig.to_json`` / ``from_json`` carry it to other processes unchanged (tuples stay tuples).
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from dataclasses import dataclass, field
from typing import Any, Literal

IncomingMode = Literal["mirror", "steal", "off"]
FilterProtocol = Literal["any", "tcp", "udp"]
HostKind = Literal["any", "name", "ip", "subnet"]


@dataclass(frozen=True)
class TargetConfig:
    """What to join: ``path`` as written (``pod/api``, ``netns/demo``, ``targetless``), None if not chosen."""

    path: str | None = None
    namespace: str | None = None


@dataclass(frozen=True)
class InnerFilter:
    """One member of ``all_of``/``any_of``: a header regex, a path regex or a method."""

    kind: Literal["header", "path", "method"]
    value: str


@dataclass(frozen=True)
class HttpFilterConfig:
    """Which HTTP requests a steal takes. Exactly one of the five filter fields is set."""

    header_filter: str | None = None
    path_filter: str | None = None
    method_filter: str | None = None
    all_of: tuple[InnerFilter, ...] | None = None
    any_of: tuple[InnerFilter, ...] | None = None
    ports: tuple[int, ...] = (80, 8080)


@dataclass(frozen=True)
class IncomingConfig:
    """Traffic reaching the target's ports. ``port_mapping`` pairs are (local, remote); ``listen_ports`` pairs
    are (requested, actual local)."""

    mode: IncomingMode = "mirror"
    http_filter: HttpFilterConfig | None = None
    ports: tuple[int, ...] | None = None
    ignore_ports: tuple[int, ...] = ()
    port_mapping: tuple[tuple[int, int], ...] = ()
    listen_ports: tuple[tuple[int, int], ...] = ()
    ignore_localhost: bool = False


@dataclass(frozen=True)
class FilterRule:
    """One outgoing/DNS filter entry. ``host`` is the name, address or subnet as written (None: any host)."""

    protocol: FilterProtocol
    host_kind: HostKind
    host: str | None
    port: int | None


@dataclass(frozen=True)
class TrafficFilter:
    """``remote``: only matching traffic goes through the target. ``local``: matching traffic stays local."""

    mode: Literal["remote", "local"]
    rules: tuple[FilterRule, ...]


@dataclass(frozen=True)
class OutgoingConfig:
    tcp: bool = True
    udp: bool = True
    ignore_localhost: bool = False
    filter: TrafficFilter | None = None


@dataclass(frozen=True)
class DnsConfig:
    enabled: bool = True
    filter: TrafficFilter | None = None


@dataclass(frozen=True)
class EnvConfig:
    """Which of the target's environment variables the local process gets, and what else it is given.

    ``enabled``: copy the target's variables at all. ``include``/``exclude`` hold name patterns (``*`` and
    ``?``); None means "not restricted". ``env_file`` is the dotenv file's absolute path. Precedence:
    ``override`` > ``env_file`` > the target > the local environment; ``unset`` names leave the local one.
    """

    enabled: bool = True
    include: tuple[str, ...] | None = None
    exclude: tuple[str, ...] | None = None
    override: tuple[tuple[str, str], ...] = ()
    unset: tuple[str, ...] = ()
    env_file: str | None = None


@dataclass(frozen=True)
class AgentConfig:
    namespace: str | None = None
    image: str | None = None
    ttl: int = 1
    startup_timeout: int = 60
    ephemeral: bool = False
    privileged: bool = False
    log_level: str = "info"


@dataclass(frozen=True)
class ResolvedConfig:
    """The whole configuration after file, environment and command line were merged and checked."""

    target: TargetConfig = field(default_factory=TargetConfig)
    incoming: IncomingConfig = field(default_factory=IncomingConfig)
    outgoing: OutgoingConfig = field(default_factory=OutgoingConfig)
    dns: DnsConfig = field(default_factory=DnsConfig)
    env: EnvConfig = field(default_factory=EnvConfig)
    agent: AgentConfig = field(default_factory=AgentConfig)
    kubeconfig: str | None = None
    kube_context: str | None = None
    accept_invalid_certificates: bool = False
    skip_processes: tuple[str, ...] = ()

    def to_json(self) -> str:
        """Serialise for another process; ``from_json`` gives back an equal object."""
        return json.dumps(_encode(self), sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> ResolvedConfig:
        """The inverse of ``to_json``; raises ValueError when ``text`` is not a serialised ResolvedConfig."""
        try:
            data = json.loads(text)
        except json.JSONDecodeError as error:
            raise ValueError(f"not a serialised config: {error}") from None
        decoded = _decode(cls, data, "config")
        assert isinstance(decoded, ResolvedConfig)
        return decoded


# Which schema property (JSON pointer) fills which model field (dotted path). A pointer whose value is a
# shorthand (``"incoming": "steal"``, ``"env": false``) maps to the field the shorthand sets. Properties
# below a pointer listed here (the members of ``all_of``, the keys of an outgoing ``filter``) belong to that
# field.
SCHEMA_FIELDS: dict[str, str] = {
    "/target": "target.path",
    "/target/path": "target.path",
    "/target/namespace": "target.namespace",
    "/feature/network/incoming": "incoming.mode",
    "/feature/network/incoming/mode": "incoming.mode",
    "/feature/network/incoming/http_filter/header_filter": "incoming.http_filter.header_filter",
    "/feature/network/incoming/http_filter/path_filter": "incoming.http_filter.path_filter",
    "/feature/network/incoming/http_filter/method_filter": "incoming.http_filter.method_filter",
    "/feature/network/incoming/http_filter/all_of": "incoming.http_filter.all_of",
    "/feature/network/incoming/http_filter/any_of": "incoming.http_filter.any_of",
    "/feature/network/incoming/http_filter/ports": "incoming.http_filter.ports",
    "/feature/network/incoming/ports": "incoming.ports",
    "/feature/network/incoming/ignore_ports": "incoming.ignore_ports",
    "/feature/network/incoming/port_mapping": "incoming.port_mapping",
    "/feature/network/incoming/listen_ports": "incoming.listen_ports",
    "/feature/network/incoming/ignore_localhost": "incoming.ignore_localhost",
    "/feature/network/outgoing": "outgoing.tcp",
    "/feature/network/outgoing/tcp": "outgoing.tcp",
    "/feature/network/outgoing/udp": "outgoing.udp",
    "/feature/network/outgoing/ignore_localhost": "outgoing.ignore_localhost",
    "/feature/network/outgoing/filter": "outgoing.filter",
    "/feature/network/dns": "dns.enabled",
    "/feature/network/dns/enabled": "dns.enabled",
    "/feature/network/dns/filter": "dns.filter",
    "/feature/env": "env.enabled",
    "/feature/env/include": "env.include",
    "/feature/env/exclude": "env.exclude",
    "/feature/env/override": "env.override",
    "/feature/env/unset": "env.unset",
    "/feature/env/env_file": "env.env_file",
    "/agent/namespace": "agent.namespace",
    "/agent/image": "agent.image",
    "/agent/ttl": "agent.ttl",
    "/agent/startup_timeout": "agent.startup_timeout",
    "/agent/ephemeral": "agent.ephemeral",
    "/agent/privileged": "agent.privileged",
    "/agent/log_level": "agent.log_level",
    "/kubeconfig": "kubeconfig",
    "/kube_context": "kube_context",
    "/accept_invalid_certificates": "accept_invalid_certificates",
    "/skip_processes": "skip_processes",
}


def _encode(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _encode(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, tuple):
        return [_encode(item) for item in value]
    return value


def _decode(annotation: Any, data: Any, where: str) -> Any:
    """Rebuild a value of type ``annotation`` from its JSON form, checking every type on the way."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(annotation)
        if data is None and type(None) in options:
            return None
        errors = []
        for option in options:
            if option is type(None):
                continue
            try:
                return _decode(option, data, where)
            except ValueError as error:
                errors.append(str(error))
        raise ValueError("; ".join(errors))
    if origin is Literal:
        if data not in typing.get_args(annotation):
            raise ValueError(f"{where}: {data!r} is not one of {typing.get_args(annotation)}")
        return data
    if origin is tuple:
        args = typing.get_args(annotation)
        if not isinstance(data, list):
            raise ValueError(f"{where}: expected a list")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_decode(args[0], item, f"{where}[{i}]") for i, item in enumerate(data))
        if len(args) != len(data):
            raise ValueError(f"{where}: expected {len(args)} items")
        pairs = enumerate(zip(args, data, strict=True))
        return tuple(_decode(arg, item, f"{where}[{i}]") for i, (arg, item) in pairs)
    if isinstance(annotation, type) and dataclasses.is_dataclass(annotation):
        if not isinstance(data, dict):
            raise ValueError(f"{where}: expected an object")
        hints = typing.get_type_hints(annotation)
        names = {f.name for f in dataclasses.fields(annotation)}
        if set(data) != names:
            raise ValueError(f"{where}: expected the keys {sorted(names)}, got {sorted(data)}")
        return annotation(**{name: _decode(hints[name], data[name], f"{where}.{name}") for name in names})
    if annotation is bool:
        if not isinstance(data, bool):
            raise ValueError(f"{where}: expected true or false")
        return data
    if annotation is int:
        if not isinstance(data, int) or isinstance(data, bool):
            raise ValueError(f"{where}: expected an integer")
        return data
    if annotation is str:
        if not isinstance(data, str):
            raise ValueError(f"{where}: expected a string")
        return data
    raise TypeError(f"{where}: cannot decode {annotation!r}")
