"""Older spellings that still work but have a clearer modern form, each with its replacement.

- ``deploy/NAME`` is an alias of ``deployment/NAME``;
- mirrord's object spelling of a target (``{"deployment": "api", "container": "main"}``) is the string
  ``deployment/api/container/main``;
- ``agent.image`` as ``{"registry": ..., "tag": ...}`` is the string ``registry:tag``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pymirrord.config.sources import ParsedSource
from pymirrord.config.targets import target_from_object


@dataclass(frozen=True)
class Deprecation:
    pointer: str
    message: str
    replacement: str


def _target(value: Any, pointer: str) -> Deprecation | None:
    if isinstance(value, str) and value.startswith("deploy/"):
        replacement = "deployment/" + value.removeprefix("deploy/")
        return Deprecation(pointer, f'"deploy/" is an alias; write "{replacement}"', replacement)
    if isinstance(value, dict) and value and "path" not in value and "namespace" not in value:
        try:
            replacement = target_from_object(value)
        except ValueError:
            return None
        return Deprecation(
            pointer, f'the object form of a target is older; write "{replacement}"', replacement
        )
    return None


def deprecated_forms(parsed: ParsedSource) -> list[Deprecation]:
    data = parsed.data
    if not isinstance(data, dict):
        return []
    found: list[Deprecation] = []
    target = data.get("target")
    if isinstance(target, dict) and "path" in target:
        if (item := _target(target.get("path"), "/target/path")) is not None:
            found.append(item)
    elif (item := _target(target, "/target")) is not None:
        found.append(item)
    agent = data.get("agent")
    image = agent.get("image") if isinstance(agent, dict) else None
    if isinstance(image, dict) and image.get("registry"):
        replacement = f"{image['registry']}:{image.get('tag') or 'latest'}"
        found.append(
            Deprecation(
                "/agent/image", f'the object form of agent.image is older; write "{replacement}"', replacement
            )
        )
    return [item for item in found if item.pointer in parsed.source_map.spans]
