"""The exceptions of ``pymirrord.config``."""

from __future__ import annotations

from pymirrord.config.diagnostics import Diagnostic
from pymirrord.errors import PymirrordError


class ConfigError(PymirrordError):
    """The configuration cannot be used; ``diagnostics`` holds every located problem (errors and warnings)."""

    def __init__(self, message: str, hint: str = "", diagnostics: tuple[Diagnostic, ...] = ()) -> None:
        super().__init__(message, hint)
        self.diagnostics = diagnostics
