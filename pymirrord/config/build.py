"""Building the typed ``ResolvedConfig`` from checked settings, with the schema's defaults for the rest."""

from __future__ import annotations

import os
from typing import Any, Literal, cast

from pymirrord.config.filters import parse_filter_rule
from pymirrord.config.model import (
    AgentConfig,
    DnsConfig,
    EnvConfig,
    HttpFilterConfig,
    IncomingConfig,
    IncomingMode,
    InnerFilter,
    OutgoingConfig,
    ResolvedConfig,
    TargetConfig,
    TrafficFilter,
)
from pymirrord.config.settings import (
    DNS,
    ENV,
    HTTP_FILTER,
    INCOMING,
    OUTGOING,
    Settings,
    has_http_filter,
    value_of,
)


def _ports(value: Any) -> tuple[int, ...]:
    if value is None:
        return ()
    values = value if isinstance(value, list) else [value]
    # JSON and YAML may spell an integer as 80.0; the schema accepts it as an integer, so normalise it.
    return tuple(int(port) for port in values)


def _pairs(value: Any) -> tuple[tuple[int, int], ...]:
    return tuple((int(pair[0]), int(pair[1])) for pair in value or [])


def _names(value: Any) -> tuple[str, ...] | None:
    """A list, or mirrord's ``"A;B;C"`` single-string spelling, as a tuple of names."""
    if value is None:
        return None
    items = value.split(";") if isinstance(value, str) else value
    return tuple(item.strip() for item in items if item.strip())


def _inner(value: Any) -> tuple[InnerFilter, ...] | None:
    if value is None:
        return None
    filters = []
    for item in value:
        ((kind, text),) = item.items()
        filters.append(InnerFilter(cast(Literal["header", "path", "method"], kind), text))
    return tuple(filters)


def _traffic_filter(value: Any, *, allow_protocol: bool) -> TrafficFilter | None:
    if value is None:
        return None
    ((mode, entries),) = value.items()
    listed = entries if isinstance(entries, list) else [entries]
    rules = tuple(parse_filter_rule(entry, allow_protocol=allow_protocol) for entry in listed)
    return TrafficFilter(cast(Literal["remote", "local"], mode), rules)


def env_file_path(settings: Settings, base_dir: str | None) -> str | None:
    """The env file's path: as written when absolute or without ``base_dir``, else joined to ``base_dir``."""
    written = value_of(settings, f"{ENV}/env_file")
    if not written:
        return None
    path = os.path.expanduser(str(written))
    return path if base_dir is None else os.path.normpath(os.path.join(base_dir, path))


def build(settings: Settings, *, base_dir: str | None = None) -> ResolvedConfig:
    """The resolved config. ``settings`` must have passed the schema and the checks.

    ``base_dir`` is the folder relative paths in the file (``env_file``) are taken from.
    """

    def get(pointer: str) -> Any:
        return value_of(settings, pointer)

    http_filter = None
    if has_http_filter(settings):
        http_filter = HttpFilterConfig(
            header_filter=get(f"{HTTP_FILTER}/header_filter"),
            path_filter=get(f"{HTTP_FILTER}/path_filter"),
            method_filter=get(f"{HTTP_FILTER}/method_filter"),
            all_of=_inner(get(f"{HTTP_FILTER}/all_of")),
            any_of=_inner(get(f"{HTTP_FILTER}/any_of")),
            ports=_ports(get(f"{HTTP_FILTER}/ports")),
        )
    ports = get(f"{INCOMING}/ports")
    override = get(f"{ENV}/override") or {}
    include = _names(get(f"{ENV}/include"))
    return ResolvedConfig(
        target=TargetConfig(path=get("/target/path"), namespace=get("/target/namespace")),
        incoming=IncomingConfig(
            mode=cast(IncomingMode, get(f"{INCOMING}/mode")),
            http_filter=http_filter,
            ports=None if ports is None else _ports(ports),
            ignore_ports=_ports(get(f"{INCOMING}/ignore_ports")),
            port_mapping=_pairs(get(f"{INCOMING}/port_mapping")),
            listen_ports=_pairs(get(f"{INCOMING}/listen_ports")),
            ignore_localhost=bool(get(f"{INCOMING}/ignore_localhost")),
        ),
        outgoing=OutgoingConfig(
            tcp=bool(get(f"{OUTGOING}/tcp")),
            udp=bool(get(f"{OUTGOING}/udp")),
            ignore_localhost=bool(get(f"{OUTGOING}/ignore_localhost")),
            filter=_traffic_filter(get(f"{OUTGOING}/filter"), allow_protocol=True),
        ),
        dns=DnsConfig(
            enabled=bool(get(f"{DNS}/enabled")),
            filter=_traffic_filter(get(f"{DNS}/filter"), allow_protocol=False),
        ),
        env=EnvConfig(
            enabled=bool(get(ENV)),
            include=include,
            # include wins over exclude (checks.check_env warns when both are set).
            exclude=None if include is not None else _names(get(f"{ENV}/exclude")),
            override=tuple((str(name), str(value)) for name, value in override.items()),
            unset=_names(get(f"{ENV}/unset")) or (),
            env_file=env_file_path(settings, base_dir),
        ),
        agent=AgentConfig(
            namespace=get("/agent/namespace"),
            image=get("/agent/image"),
            ttl=int(get("/agent/ttl")),
            startup_timeout=int(get("/agent/startup_timeout")),
            ephemeral=bool(get("/agent/ephemeral")),
            privileged=bool(get("/agent/privileged")),
            log_level=str(get("/agent/log_level")),
        ),
        kubeconfig=get("/kubeconfig"),
        kube_context=get("/kube_context"),
        accept_invalid_certificates=bool(get("/accept_invalid_certificates")),
        skip_processes=_names(get("/skip_processes")) or (),
    )
