"""HTTP filter descriptions as they travel from session to agent (stdlib only: the layer loads the protocol).

The agent compiles them with ``pymirrord.http_filter``; here they are plain data.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Optional


class FilterKind(str, Enum):
    """What one filter part looks at."""

    HEADER = "header"
    """A regex searched, case-insensitively, in each ``Name: Value`` header line."""
    PATH = "path"
    """A regex searched in the path, then in the path with its query string."""
    METHOD = "method"
    """A method name, compared case-insensitively."""


@dataclass(frozen=True)
class FilterPart:
    """One member of ``all_of`` / ``any_of``."""

    kind: FilterKind
    value: str


@dataclass(frozen=True)
class HttpFilterSpec:
    """Which HTTP requests a subscription takes: exactly one of the five fields is set.

    ``all_of`` / ``any_of`` hold their parts in the order the user wrote them (an empty tuple is unset).
    """

    header: Optional[str] = None
    path: Optional[str] = None
    method: Optional[str] = None
    all_of: tuple[FilterPart, ...] = ()
    any_of: tuple[FilterPart, ...] = ()
