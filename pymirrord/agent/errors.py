"""The agent's exception tree.

Everything the agent raises on purpose derives from ``AgentError``, so the CLI can print ``render()`` (message
plus hint) instead of a traceback.
"""

from __future__ import annotations

from pymirrord.errors import PymirrordError


class AgentError(PymirrordError):
    """Something the agent could not do; carries a message and a hint for the user."""


class TargetError(AgentError):
    """A local target string could not be turned into a network namespace."""


class InvalidTarget(TargetError):
    """The target string has neither the ``netns/NAME`` nor the ``pid/PID`` form."""


class TargetNotFound(TargetError):
    """The named namespace or process does not exist."""


class TargetPermissionDenied(TargetError):
    """The target exists, but this process may not look at or enter its network namespace."""


class NamespaceEntryFailed(AgentError):
    """``setns`` into the target's network namespace failed."""


class IptablesError(AgentError):
    """An iptables command failed, or iptables is missing."""


class GuardError(AgentError):
    """The guard process that removes rules after the agent's death could not be started."""
