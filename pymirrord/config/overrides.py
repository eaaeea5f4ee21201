"""Values that override the file: mirrord's ``MIRRORD_*`` environment variables, then command-line flags.

Precedence is file < environment < command line. A bad environment value is reported naming the variable
(it has no place in the file); the value is then left out, so one typo does not hide the rest of the report.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

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
)
from pymirrord.config.targets import is_valid_target

CONFIG_FILE_VARIABLE = "MIRRORD_CONFIG_FILE"

_Kind = Literal["text", "bool", "target", "steal", "ports", "env_names"]

# variable -> (canonical pointer, how to read it)
ENVIRONMENT: dict[str, tuple[str, _Kind]] = {
    "MIRRORD_IMPERSONATED_TARGET": ("/target/path", "target"),
    "MIRRORD_TARGET_NAMESPACE": ("/target/namespace", "text"),
    "MIRRORD_AGENT_TCP_STEAL_TRAFFIC": (f"{INCOMING}/mode", "steal"),
    "MIRRORD_HTTP_HEADER_FILTER": (f"{HTTP_FILTER}/header_filter", "text"),
    "MIRRORD_HTTP_PATH_FILTER": (f"{HTTP_FILTER}/path_filter", "text"),
    "MIRRORD_HTTP_FILTER_PORTS": (f"{HTTP_FILTER}/ports", "ports"),
    "MIRRORD_TCP_OUTGOING": (f"{OUTGOING}/tcp", "bool"),
    "MIRRORD_UDP_OUTGOING": (f"{OUTGOING}/udp", "bool"),
    "MIRRORD_REMOTE_DNS": (f"{DNS}/enabled", "bool"),
    "MIRRORD_AGENT_NAMESPACE": ("/agent/namespace", "text"),
    "MIRRORD_AGENT_IMAGE": ("/agent/image", "text"),
    "MIRRORD_KUBE_CONTEXT": ("/kube_context", "text"),
    "MIRRORD_KUBECONFIG": ("/kubeconfig", "text"),
    "MIRRORD_OVERRIDE_ENV_VARS_INCLUDE": (f"{ENV}/include", "env_names"),
    "MIRRORD_OVERRIDE_ENV_VARS_EXCLUDE": (f"{ENV}/exclude", "env_names"),
}

_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}


@dataclass(frozen=True)
class OverrideProblem:
    """A bad override value: which variable or flag, what is wrong, what to do."""

    origin: Origin
    message: str
    hint: str = ""


@dataclass(frozen=True)
class ConfigOverrides:
    """The ``pymirrord exec`` flags that override the config. None / False mean "not given"."""

    target: str | None = None
    target_namespace: str | None = None
    steal: bool | None = None
    no_outgoing: bool = False
    no_tcp_outgoing: bool = False
    no_udp_outgoing: bool = False
    no_remote_dns: bool = False
    env: tuple[str, ...] = ()
    """``--env NAME=VALUE`` flags, in order (a later one wins)."""
    no_remote_env: bool = False


def _parse_bool(text: str) -> bool | None:
    lowered = text.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    return None


def _parse_ports(text: str) -> list[int] | None:
    parts = [part.strip() for part in re.split(r"[,;\s]+", text.strip()) if part.strip()]
    if not parts or not all(part.isdigit() and 1 <= int(part) <= 65535 for part in parts):
        return None
    return [int(part) for part in parts]


def _replace_http_filter(settings: Settings) -> None:
    # An HTTP filter given in the environment replaces the file's filter as a whole: mixing a header filter
    # from one place with a path filter from another is never what anybody meant.
    for kind in HTTP_FILTER_KINDS:
        setting = settings.get(f"{HTTP_FILTER}/{kind}")
        if setting is not None and setting.origin.in_file:
            del settings[f"{HTTP_FILTER}/{kind}"]


def apply_environment(settings: Settings, env: Mapping[str, str]) -> list[OverrideProblem]:
    """Overlay the ``MIRRORD_*`` variables onto ``settings`` (in place); return the bad ones."""
    problems: list[OverrideProblem] = []
    for variable, (pointer, kind) in ENVIRONMENT.items():
        raw = env.get(variable)
        if raw is None or raw.strip() == "":
            continue
        origin = Origin(pointer, env=variable)
        value: object
        if kind in ("bool", "steal"):
            flag = _parse_bool(raw)
            if flag is None:
                problems.append(
                    OverrideProblem(origin, f"{variable}={raw!r} is not true or false", "use true or false")
                )
                continue
            value = ("steal" if flag else "mirror") if kind == "steal" else flag
        elif kind == "ports":
            ports = _parse_ports(raw)
            if ports is None:
                problems.append(
                    OverrideProblem(
                        origin,
                        f"{variable}={raw!r} is not a list of port numbers",
                        "write ports 1 to 65535 separated by commas, for example 80,8080",
                    )
                )
                continue
            value = ports
        elif kind == "target":
            if not is_valid_target(raw.strip()):
                problems.append(
                    OverrideProblem(origin, f"{variable}={raw!r} is not a valid target", _TARGET_HINT)
                )
                continue
            value = raw.strip()
        else:
            value = raw
        if pointer.startswith(HTTP_FILTER + "/") and kind == "text":
            _replace_http_filter(settings)
        if kind == "env_names":
            # include and exclude cannot be combined: the one given here replaces the file's other one.
            other = f"{ENV}/exclude" if pointer.endswith("/include") else f"{ENV}/include"
            setting = settings.get(other)
            if setting is not None and setting.origin.in_file:
                del settings[other]
        settings[pointer] = Setting(value, origin)
    return problems


_TARGET_HINT = (
    'targets look like "pod/NAME", "deployment/NAME", "deployment/NAME/container/CONTAINER", '
    '"netns/NAME", "pid/PID" or "targetless"'
)


def apply_command_line(settings: Settings, overrides: ConfigOverrides) -> list[OverrideProblem]:
    """Overlay the command-line flags onto ``settings`` (in place); return the bad ones."""
    problems: list[OverrideProblem] = []

    def put(pointer: str, value: object, flag: str) -> None:
        settings[pointer] = Setting(value, Origin(pointer, flag=flag))

    if overrides.target is not None:
        if is_valid_target(overrides.target):
            put("/target/path", overrides.target, "--target")
        else:
            problems.append(
                OverrideProblem(
                    Origin("/target/path", flag="--target"),
                    f"--target {overrides.target!r} is not a valid target",
                    _TARGET_HINT,
                )
            )
    if overrides.target_namespace is not None:
        put("/target/namespace", overrides.target_namespace, "--target-namespace")
    if overrides.steal is not None:
        put(f"{INCOMING}/mode", "steal" if overrides.steal else "mirror", "--steal")
    if overrides.no_outgoing:
        put(f"{OUTGOING}/tcp", False, "--no-outgoing")
        put(f"{OUTGOING}/udp", False, "--no-outgoing")
    if overrides.no_tcp_outgoing:
        put(f"{OUTGOING}/tcp", False, "--no-tcp-outgoing")
    if overrides.no_udp_outgoing:
        put(f"{OUTGOING}/udp", False, "--no-udp-outgoing")
    if overrides.no_remote_dns:
        put(f"{DNS}/enabled", False, "--no-remote-dns")
    if overrides.no_remote_env:
        put(ENV, False, "--no-remote-env")
    if overrides.env:
        problems.extend(_apply_env_flags(settings, overrides.env))
    return problems


def _apply_env_flags(settings: Settings, flags: tuple[str, ...]) -> list[OverrideProblem]:
    """``--env NAME=VALUE`` on top of the file's ``override`` (the flags win, name by name)."""
    problems: list[OverrideProblem] = []
    pointer = f"{ENV}/override"
    existing = settings.get(pointer)
    merged = dict(existing.value) if existing is not None and isinstance(existing.value, dict) else {}
    for flag in flags:
        name, sep, value = flag.partition("=")
        if not sep or not name or any(char.isspace() or char in "*?" for char in name):
            # The value is never echoed: it may be a secret.
            problems.append(
                OverrideProblem(
                    Origin(pointer, flag="--env"),
                    f"--env {name!r} is not NAME=VALUE"
                    if not sep
                    else f"--env: {name!r} is not a variable name",
                    "write --env NAME=VALUE, for example --env LOG_LEVEL=debug",
                )
            )
            continue
        merged[name] = value
    # Keeping the file's origin lets a bad name written in the file still be shown where it is written.
    origin = existing.origin if existing is not None else Origin(pointer, flag="--env")
    settings[pointer] = Setting(merged, origin)
    return problems
