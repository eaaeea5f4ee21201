"""Target strings (``pod/api``, ``deployment/api/container/main``, ``netns/demo``, ``targetless``, ...).

Which spellings are valid is decided by the schema's ``$defs/TargetPath``; this module parses a valid one
into its parts and turns mirrord's object spelling (``{"deployment": "api", "container": "main"}``) into
the string form.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any

from jsonschema import Draft202012Validator

from pymirrord.config.schema import load_schema, target_kinds

# mirrord's object spelling uses Rust-style field names for some kinds.
_OBJECT_KINDS = {
    "pod": "pod",
    "deployment": "deployment",
    "rollout": "rollout",
    "job": "job",
    "cron_job": "cronjob",
    "stateful_set": "statefulset",
    "service": "service",
    "replica_set": "replicaset",
}
_ALIASES = {"deploy": "deployment"}


@dataclass(frozen=True)
class Target:
    """A parsed target: its kind (``pod``, ``netns``, ...), name (None when targetless) and container."""

    kind: str
    name: str | None = None
    container: str | None = None


@cache
def _target_validator() -> Draft202012Validator:
    root = load_schema()
    return Draft202012Validator({"$ref": "#/$defs/TargetPath", "$defs": root["$defs"]})


def is_valid_target(text: str) -> bool:
    """Whether ``text`` is a target string the schema accepts."""
    return bool(_target_validator().is_valid(text))


def compatible_target_types() -> list[str]:
    """The kinds of target a config may name, as ``verify-config --ide`` reports them."""
    return list(target_kinds())


def parse_target(text: str) -> Target:
    """Split a valid target string into its parts; raises ValueError for an invalid one."""
    if not is_valid_target(text):
        raise ValueError(f"not a valid target: {text!r}")
    if text == "targetless":
        return Target("targetless")
    kind, _, rest = text.partition("/")
    kind = _ALIASES.get(kind, kind)
    name, _, container = rest.partition("/container/")
    return Target(kind, name, container or None)


def target_from_object(value: dict[str, Any]) -> str:
    """mirrord's object spelling of a target as the equivalent string (the schema has validated its shape)."""
    container = value.get("container")
    for key, kind in _OBJECT_KINDS.items():
        if isinstance(value.get(key), str):
            text = f"{kind}/{value[key]}"
            return f"{text}/container/{container}" if container else text
    raise ValueError("no target kind in object")
