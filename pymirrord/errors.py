"""The root of every exception that pymirrord raises on purpose.

Each package (config, protocol, agent, session, ...) derives its own tree from ``PymirrordError``.
Errors that reach a user carry a message (what went wrong) and a hint (what to do about it).
Stdlib only: the layer imports this inside the user's interpreter.
"""

from __future__ import annotations


class PymirrordError(Exception):
    """An error that pymirrord reports to its user as a message plus an optional hint."""

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message

    def render(self) -> str:
        """The text the CLI prints: the message, then the hint on its own line."""
        if self.hint:
            return f"{self.message}\n  hint: {self.hint}"
        return self.message
