"""Settings: each configured value under its canonical JSON pointer, with where it came from.

mirrord's format has shorthands (``"incoming": "steal"``, ``"outgoing": false``, ``"target": "pod/x"``)
and a value can also come from a ``MIRRORD_*`` variable or a command-line flag. Everything is first brought
to one canonical pointer per model field (``/feature/network/incoming/mode``), remembering its ``Origin``, so
that the checks can say exactly where a bad value was written, whichever of the three places that was.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pymirrord.config.positions import split_pointer
from pymirrord.config.schema import default_at
from pymirrord.config.targets import target_from_object


@dataclass(frozen=True)
class Origin:
    """Where a value was set: a pointer in the file, or an environment variable, or a command-line flag.

    For the environment and the command line, ``pointer`` is the canonical pointer of the setting.
    """

    pointer: str
    env: str | None = None
    flag: str | None = None

    @property
    def in_file(self) -> bool:
        return self.env is None and self.flag is None

    def describe(self) -> str:
        if self.env is not None:
            return f"environment variable {self.env}"
        if self.flag is not None:
            return f"command-line flag {self.flag}"
        return "the config file"


@dataclass(frozen=True)
class Setting:
    value: Any
    origin: Origin


Settings = dict[str, Setting]

INCOMING = "/feature/network/incoming"
HTTP_FILTER = f"{INCOMING}/http_filter"
OUTGOING = "/feature/network/outgoing"
DNS = "/feature/network/dns"
ENV = "/feature/env"

# One pointer per model field. The shorthand pointers of SCHEMA_FIELDS (``/target``, ``/feature/env`` as a
# toggle, ...) are expanded onto these.
CANONICAL: tuple[str, ...] = (
    "/target/path",
    "/target/namespace",
    f"{INCOMING}/mode",
    f"{HTTP_FILTER}/header_filter",
    f"{HTTP_FILTER}/path_filter",
    f"{HTTP_FILTER}/method_filter",
    f"{HTTP_FILTER}/all_of",
    f"{HTTP_FILTER}/any_of",
    f"{HTTP_FILTER}/ports",
    f"{INCOMING}/ports",
    f"{INCOMING}/ignore_ports",
    f"{INCOMING}/port_mapping",
    f"{INCOMING}/listen_ports",
    f"{INCOMING}/ignore_localhost",
    f"{OUTGOING}/tcp",
    f"{OUTGOING}/udp",
    f"{OUTGOING}/ignore_localhost",
    f"{OUTGOING}/filter",
    f"{DNS}/enabled",
    f"{DNS}/filter",
    ENV,
    f"{ENV}/include",
    f"{ENV}/exclude",
    f"{ENV}/override",
    f"{ENV}/unset",
    f"{ENV}/env_file",
    "/agent/namespace",
    "/agent/image",
    "/agent/ttl",
    "/agent/startup_timeout",
    "/agent/ephemeral",
    "/agent/privileged",
    "/agent/log_level",
    "/kubeconfig",
    "/kube_context",
    "/accept_invalid_certificates",
    "/skip_processes",
)

HTTP_FILTER_KINDS: tuple[str, ...] = ("header_filter", "path_filter", "method_filter", "all_of", "any_of")


def _lookup(data: Any, pointer: str) -> Any:
    """The value at ``pointer`` when every step on the way is an object; None otherwise."""
    for part in split_pointer(pointer):
        if not isinstance(data, dict):
            return None
        data = data.get(part)
    return data


def from_document(data: Any) -> Settings:
    """The settings a schema-valid document makes, shorthands expanded, each with its origin in the file."""
    settings: Settings = {}

    def put(pointer: str, value: Any, origin: str) -> None:
        # null means "not set" throughout mirrord's format.
        if value is not None:
            settings[pointer] = Setting(value, Origin(origin))

    for pointer in CANONICAL:
        value = _lookup(data, pointer)
        if pointer == ENV:
            continue  # a toggle that is also an object; handled below
        if isinstance(value, dict) and pointer == "/target/path":
            value = target_from_object(value)
        if pointer == "/agent/image" and isinstance(value, dict):
            value = _image_from_object(value)
        put(pointer, value, pointer)

    target = _lookup(data, "/target")
    if isinstance(target, str):
        put("/target/path", target, "/target")
    elif isinstance(target, dict) and "path" not in target and "namespace" not in target and target:
        put("/target/path", target_from_object(target), "/target")

    network = _lookup(data, "/feature/network")
    if network is False:
        put(f"{INCOMING}/mode", "off", "/feature/network")
        put(f"{OUTGOING}/tcp", False, "/feature/network")
        put(f"{OUTGOING}/udp", False, "/feature/network")
        put(f"{DNS}/enabled", False, "/feature/network")

    incoming = _lookup(data, INCOMING)
    if isinstance(incoming, bool):
        put(f"{INCOMING}/mode", "mirror" if incoming else "off", INCOMING)
    elif isinstance(incoming, str):
        put(f"{INCOMING}/mode", incoming, INCOMING)

    outgoing = _lookup(data, OUTGOING)
    if isinstance(outgoing, bool):
        put(f"{OUTGOING}/tcp", outgoing, OUTGOING)
        put(f"{OUTGOING}/udp", outgoing, OUTGOING)

    dns = _lookup(data, DNS)
    if isinstance(dns, bool):
        put(f"{DNS}/enabled", dns, DNS)

    env = _lookup(data, ENV)
    if isinstance(env, bool):
        put(ENV, env, ENV)
    elif isinstance(env, dict):
        put(ENV, True, ENV)
    return settings


def _image_from_object(value: dict[str, Any]) -> str | None:
    registry = value.get("registry")
    if not registry:
        return None
    return f"{registry}:{value.get('tag') or 'latest'}"


def value_of(settings: Settings, pointer: str) -> Any:
    """The setting's value, or the schema's default when nothing set it."""
    setting = settings.get(pointer)
    return setting.value if setting is not None else default_at(pointer)


def has_http_filter(settings: Settings) -> bool:
    return any(f"{HTTP_FILTER}/{kind}" in settings for kind in HTTP_FILTER_KINDS)
