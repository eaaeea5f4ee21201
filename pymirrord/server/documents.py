"""Which editor documents are pymirrord config files, and what their URIs name on disk."""

from __future__ import annotations

import os
import re
from typing import TYPE_CHECKING, Literal
from urllib.parse import unquote, urlparse

if TYPE_CHECKING:
    from pymirrord.config.sources import Format

# The same extensions as pymirrord.config.sources, without importing the config engine at start-up.
_EXTENSIONS: dict[str, Literal["json", "toml", "yaml"]] = {
    ".json": "json",
    ".toml": "toml",
    ".yaml": "yaml",
    ".yml": "yaml",
}

# `.mirrord/<anything>.json|toml|yaml|yml`, and `*mirrord.json` wherever it lives (mirrord's own rule).
_IN_MIRRORD_FOLDER = re.compile(r"(^|/)\.mirrord/[^/]+\.(json|toml|ya?ml)$", re.IGNORECASE)
_MIRRORD_JSON = re.compile(r"mirrord\.json$", re.IGNORECASE)


def uri_to_path(uri: str) -> str:
    """The file system path of a ``file:`` URI; other URIs (``untitled:``) come back as their path part."""
    parsed = urlparse(uri)
    path = unquote(parsed.path)
    if parsed.scheme == "file" and parsed.netloc and parsed.netloc != "localhost":
        path = f"//{parsed.netloc}{path}"
    return path


def path_to_uri(path: str) -> str:
    from pathlib import Path

    return Path(os.path.abspath(path)).as_uri()


def is_config_path(path: str) -> bool:
    """Whether a path names a mirrord config file the helper checks."""
    normalized = path.replace("\\", "/")
    return bool(_IN_MIRRORD_FOLDER.search(normalized) or _MIRRORD_JSON.search(normalized))


def config_format(uri: str, language_id: str | None = None) -> Format | None:
    """The format of a config document (from its name; an editor's language id decides for untitled ones)."""
    path = uri_to_path(uri)
    if not is_config_path(path):
        return None
    found = next((fmt for ext, fmt in _EXTENSIONS.items() if path.lower().endswith(ext)), None)
    if found is None and language_id in ("json", "jsonc"):
        return "json"
    if found is None and language_id == "yaml":
        return "yaml"
    if found is None and language_id == "toml":
        return "toml"
    return found
