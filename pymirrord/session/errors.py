"""The session package's exception tree."""

from __future__ import annotations

from pymirrord.errors import PymirrordError


class SessionError(PymirrordError):
    """The session could not start or lost something it cannot work without."""


class AgentUnavailable(SessionError):
    """The agent could not be started, reached, or understood."""


class NotPermitted(SessionError):
    """This user lacks the privileges that the chosen target needs."""
