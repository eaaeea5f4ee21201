"""mirrord-compatible configuration: reading, checking (with exact places) and resolving it.

The schema in ``schema/mirrord.schema.json`` defines the format; ``check_text`` checks an editor buffer,
``load_config`` a file with the environment applied, and ``resolve_config`` gives the final ``ResolvedConfig``
for a run (file < ``MIRRORD_*`` environment < command-line flags) or raises ``ConfigError``.
"""

from __future__ import annotations

from pymirrord.config.diagnostics import Diagnostic
from pymirrord.config.errors import ConfigError
from pymirrord.config.load import CheckResult, check_text, load_config, resolve_config
from pymirrord.config.model import ResolvedConfig
from pymirrord.config.overrides import ConfigOverrides

__all__ = [
    "CheckResult",
    "ConfigError",
    "ConfigOverrides",
    "Diagnostic",
    "ResolvedConfig",
    "check_text",
    "load_config",
    "resolve_config",
]
