"""Checks the schema cannot express, run on the merged settings (file, environment, command line).

Errors: regular expressions that do not compile (located at the offending character), more than one filter
kind in one ``http_filter``, duplicate ``port_mapping``/``listen_ports`` ports, ``ports`` with
``ignore_ports``, steal (or an ephemeral agent) without a target, malformed outgoing/DNS filter entries,
``feature.env`` names that no variable can have (located at the character). Warnings: settings that work but
surprise, such as stealing without a filter (health probes are stolen too), an HTTP filter while the service
listens on a port the filter does not cover, or ``feature.env.exclude`` next to ``include`` (which decides).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from pymirrord import http_filter, remote_env
from pymirrord.config.diagnostics import Severity
from pymirrord.config.filters import FilterSyntaxError, parse_filter_rule
from pymirrord.config.schema import dotted
from pymirrord.config.settings import (
    DNS,
    ENV,
    HTTP_FILTER,
    HTTP_FILTER_KINDS,
    INCOMING,
    OUTGOING,
    Origin,
    Setting,
    Settings,
    has_http_filter,
    value_of,
)


@dataclass(frozen=True)
class Finding:
    """A problem found by a check, before it is located in the text.

    ``chars`` is a character range inside the string value ``text`` written at ``origin.pointer``.
    """

    severity: Severity
    message: str
    origin: Origin
    hint: str = ""
    chars: tuple[int, int] | None = None
    text: str | None = None
    at_key: bool = False


def _below(origin: Origin, suffix: str) -> Origin:
    """The origin of a part of a value: more precise inside the file; the same variable or flag otherwise."""
    return Origin(origin.pointer + suffix) if origin.in_file else origin


def _name(origin: Origin) -> str:
    return origin.env or origin.flag or dotted(origin.pointer)


def _regex_finding(pattern: str, origin: Origin) -> Finding | None:
    problem = http_filter.pattern_problem(pattern)
    if problem is not None:
        position, reason = problem.position, problem.reason
        return Finding(
            "error",
            f"{_name(origin)} is not a valid regular expression: {reason} (at character {position + 1})",
            origin,
            hint="escape characters meant literally, for example \\( or \\. (in JSON, \\\\( and \\\\.)",
            chars=(position, position + 1),
            text=pattern,
        )
    return None


def _patterns(settings: Settings) -> Iterator[tuple[str, Origin]]:
    for kind in ("header_filter", "path_filter"):
        setting = settings.get(f"{HTTP_FILTER}/{kind}")
        if setting is not None and isinstance(setting.value, str):
            yield setting.value, setting.origin
    for group in ("all_of", "any_of"):
        setting = settings.get(f"{HTTP_FILTER}/{group}")
        if setting is None:
            continue
        for index, item in enumerate(setting.value):
            for key in ("header", "path"):
                if isinstance(item.get(key), str):
                    yield item[key], _below(setting.origin, f"/{index}/{key}")


def check_patterns(settings: Settings) -> list[Finding]:
    return [f for pattern, origin in _patterns(settings) if (f := _regex_finding(pattern, origin))]


def check_filter_kinds(settings: Settings) -> list[Finding]:
    present = [
        (kind, settings[f"{HTTP_FILTER}/{kind}"])
        for kind in HTTP_FILTER_KINDS
        if f"{HTTP_FILTER}/{kind}" in settings
    ]
    findings = []
    first_kind = present[0][0] if present else ""
    for kind, setting in present[1:]:
        findings.append(
            Finding(
                "error",
                f"http_filter sets both {first_kind} and {kind}; one filter takes exactly one kind",
                setting.origin,
                hint='to require several conditions use all_of: [{"header": ...}, {"path": ...}]; '
                "to accept any of them use any_of",
                at_key=True,
            )
        )
    return findings


def _port_items(setting: Setting) -> Iterator[tuple[int, Any, Origin]]:
    values = setting.value if isinstance(setting.value, list) else [setting.value]
    for index, value in enumerate(values):
        suffix = f"/{index}" if isinstance(setting.value, list) else ""
        yield index, value, _below(setting.origin, suffix)


def check_ports(settings: Settings) -> list[Finding]:
    findings: list[Finding] = []
    ports = settings.get(f"{INCOMING}/ports")
    ignore = settings.get(f"{INCOMING}/ignore_ports")
    if ports is not None and ignore is not None:
        findings.append(
            Finding(
                "error",
                "incoming.ports and incoming.ignore_ports cannot be used together",
                ignore.origin,
                hint="ports already lists the only ports taken; remove ignore_ports, or remove ports and "
                "list what to leave alone in ignore_ports",
                at_key=True,
            )
        )
    for pointer in (f"{INCOMING}/ports", f"{INCOMING}/ignore_ports", f"{HTTP_FILTER}/ports"):
        setting = settings.get(pointer)
        if setting is None:
            continue
        seen: set[int] = set()
        for _, port, origin in _port_items(setting):
            if port in seen:
                findings.append(
                    Finding("warning", f"port {port} is listed twice in {_name(setting.origin)}", origin)
                )
            seen.add(port)
    for name, sides in (("port_mapping", ("local", "remote")), ("listen_ports", ("remote", "local"))):
        setting = settings.get(f"{INCOMING}/{name}")
        if setting is None:
            continue
        for side, label in enumerate(sides):
            first_at: dict[int, int] = {}
            for index, pair in enumerate(setting.value):
                port = pair[side]
                if port in first_at:
                    findings.append(
                        Finding(
                            "error",
                            f"{label} port {port} appears in two {name} entries "
                            f"([{first_at[port]}] and [{index}])",
                            _below(setting.origin, f"/{index}/{side}"),
                            hint=f"each {label} port may be mapped only once",
                        )
                    )
                else:
                    first_at[port] = index
    return findings


def check_target(settings: Settings) -> list[Finding]:
    findings: list[Finding] = []
    if value_of(settings, "/target/path") != "targetless":
        return findings
    mode = settings.get(f"{INCOMING}/mode")
    if mode is not None and mode.value == "steal":
        findings.append(
            Finding(
                "error",
                'incoming mode steal needs a target, but the target is "targetless"',
                mode.origin,
                hint="a targetless session has no pod whose traffic could be stolen; choose a target, "
                "or use mirror/off",
            )
        )
    ephemeral = settings.get("/agent/ephemeral")
    if ephemeral is not None and ephemeral.value is True:
        findings.append(
            Finding(
                "error",
                'agent.ephemeral needs a target, but the target is "targetless"',
                ephemeral.origin,
                hint="an ephemeral agent runs inside the target pod; choose a target or drop agent.ephemeral",
            )
        )
    return findings


def check_address_filters(settings: Settings) -> list[Finding]:
    findings: list[Finding] = []
    for pointer, allow_protocol in ((f"{OUTGOING}/filter", True), (f"{DNS}/filter", False)):
        setting = settings.get(pointer)
        if setting is None:
            continue
        for mode, entries in setting.value.items():
            listed = entries if isinstance(entries, list) else [entries]
            for index, entry in enumerate(listed):
                suffix = f"/{mode}/{index}" if isinstance(entries, list) else f"/{mode}"
                try:
                    parse_filter_rule(entry, allow_protocol=allow_protocol)
                except FilterSyntaxError as error:
                    origin = _below(setting.origin, suffix)
                    findings.append(
                        Finding(
                            "error",
                            f"{_name(origin)}: {error.message} in filter entry {entry!r}",
                            origin,
                            hint=error.hint,
                            chars=(error.start, error.end),
                            text=entry,
                        )
                    )
    outgoing_filter = settings.get(f"{OUTGOING}/filter")
    if (
        outgoing_filter is not None
        and not value_of(settings, f"{OUTGOING}/tcp")
        and not value_of(settings, f"{OUTGOING}/udp")
    ):
        findings.append(
            Finding(
                "warning",
                "outgoing.filter has no effect while both outgoing.tcp and outgoing.udp are off",
                outgoing_filter.origin,
                at_key=True,
            )
        )
    return findings


def _name_items(value: Any) -> Iterator[tuple[str, int, str, str]]:
    """``(name, start, text, suffix)`` for each name of a ``StringList``: its place in the string ``text``
    written at the pointer plus ``suffix``."""
    if isinstance(value, str):
        offset = 0
        for piece in value.split(";"):
            stripped = piece.strip()
            # "A;B;" is common; an empty piece is no name rather than a mistake.
            if stripped:
                yield stripped, offset + piece.index(stripped), value, ""
            offset += len(piece) + 1
    elif isinstance(value, list):
        for index, item in enumerate(value):
            if isinstance(item, str):
                stripped = item.strip()
                yield stripped, item.index(stripped) if stripped else 0, item, f"/{index}"


def _env_name_findings(setting: Setting, what: str, *, wildcards: bool) -> Iterator[Finding]:
    for name, start, text, suffix in _name_items(setting.value):
        origin = _below(setting.origin, suffix)
        problem = remote_env.pattern_problem(name)
        if problem is None and not wildcards and remote_env.is_wildcard(name):
            problem = (name.index("*") if "*" in name else name.index("?")), f"{what} takes exact names"
        if problem is None:
            continue
        position, reason = problem
        yield Finding(
            "error",
            f"{_name(origin)}: {name!r} is not a valid {what}: {reason} (at character {position + 1})",
            origin,
            hint="write names like DATABASE_URL; in include and exclude, * stands for any run of characters "
            "and ? for one",
            chars=(start + position, start + position + 1),
            text=text,
        )


def check_env(settings: Settings) -> list[Finding]:
    findings: list[Finding] = []
    include = settings.get(f"{ENV}/include")
    exclude = settings.get(f"{ENV}/exclude")
    if include is not None and exclude is not None:
        # mirrord's own complete example sets both, so this stays a warning: include decides alone.
        findings.append(
            Finding(
                "warning",
                f"{_name(exclude.origin)} is ignored because {_name(include.origin)} is set",
                exclude.origin,
                hint="include copies only the listed variables; remove exclude, or remove include to copy "
                "all but the excluded ones",
                at_key=True,
            )
        )
    for pointer, what, wildcards in (
        (f"{ENV}/include", "name pattern", True),
        (f"{ENV}/exclude", "name pattern", True),
        (f"{ENV}/unset", "variable name", False),
    ):
        setting = settings.get(pointer)
        if setting is not None:
            findings.extend(_env_name_findings(setting, what, wildcards=wildcards))
    override = settings.get(f"{ENV}/override")
    if override is not None and isinstance(override.value, dict):
        for name in override.value:
            problem = remote_env.pattern_problem(name)
            if problem is None and remote_env.is_wildcard(name):
                problem = (name.index("*") if "*" in name else name.index("?")), "override takes exact names"
            if problem is not None:
                origin = _below(override.origin, "/" + name.replace("~", "~0").replace("/", "~1"))
                findings.append(
                    Finding(
                        "error",
                        f"feature.env.override: {name!r} is not a valid variable name: {problem[1]}",
                        origin,
                        hint="write names like DATABASE_URL",
                        at_key=True,
                    )
                )
    return findings


def _filter_ports(settings: Settings) -> list[int]:
    ports = value_of(settings, f"{HTTP_FILTER}/ports")
    return [ports] if isinstance(ports, int) else list(ports or [])


def check_surprises(settings: Settings, *, http_filter_origin: Origin | None) -> list[Finding]:
    """Warnings for configurations that are valid but rarely do what their author expects."""
    findings: list[Finding] = []
    mode_setting = settings.get(f"{INCOMING}/mode")
    mode = value_of(settings, f"{INCOMING}/mode")
    filtered = has_http_filter(settings)
    mode_origin = mode_setting.origin if mode_setting else Origin(f"{INCOMING}/mode")
    if mode == "steal" and not filtered:
        findings.append(
            Finding(
                "warning",
                "steal without an http_filter takes every connection to the target's ports, Kubernetes "
                "health probes included: the pod may be restarted while your process sits at a "
                "breakpoint",
                mode_origin,
                hint='add http_filter, for example {"header_filter": "^X-MyFilter:"}, to take only your own '
                "requests",
            )
        )
    if filtered and mode not in ("steal", "mirror") and http_filter_origin is not None:
        findings.append(
            Finding(
                "warning",
                f"http_filter has no effect with incoming mode {mode}",
                http_filter_origin,
                hint='set "mode": "steal" to take the matching requests, or "mirror" to get copies of them',
                at_key=True,
            )
        )
    if not filtered or mode not in ("steal", "mirror"):
        return findings
    verb = "stolen" if mode == "steal" else "mirrored"
    covered = _filter_ports(settings)
    covered_text = ", ".join(str(port) for port in covered)
    ports = settings.get(f"{INCOMING}/ports")
    mapping = settings.get(f"{INCOMING}/port_mapping")
    explicit_ports = f"{HTTP_FILTER}/ports" in settings
    if ports is not None:
        for _, port, origin in _port_items(ports):
            if port not in covered:
                findings.append(
                    Finding(
                        "warning",
                        f"port {port} is not in http_filter.ports ({covered_text}): with an HTTP filter, "
                        f"nothing on it is {verb}",
                        origin,
                        hint=f"add {port} to http_filter.ports to filter it as HTTP",
                    )
                )
    if mapping is not None:
        for index, pair in enumerate(mapping.value):
            if pair[1] not in covered:
                findings.append(
                    Finding(
                        "warning",
                        f"remote port {pair[1]} of port_mapping is not in http_filter.ports "
                        f"({covered_text}): with an HTTP filter, nothing on it is {verb}",
                        _below(mapping.origin, f"/{index}/1"),
                        hint=f"add {pair[1]} to http_filter.ports to filter it as HTTP",
                    )
                )
    if ports is None and mapping is None and not explicit_ports and http_filter_origin is not None:
        findings.append(
            Finding(
                "warning",
                f"the HTTP filter covers ports {covered_text} only (the default http_filter.ports); "
                f"requests to any other port of the target are not {verb}",
                http_filter_origin,
                hint="if the service listens elsewhere, set http_filter.ports, for example [3000]",
                at_key=True,
            )
        )
    return findings


def run_checks(settings: Settings, *, http_filter_origin: Origin | None) -> list[Finding]:
    """Every semantic check, in a stable order."""
    return [
        *check_patterns(settings),
        *check_filter_kinds(settings),
        *check_ports(settings),
        *check_target(settings),
        *check_address_filters(settings),
        *check_env(settings),
        *check_surprises(settings, http_filter_origin=http_filter_origin),
    ]
