"""pymirrord: run a local Python process as if it ran inside a Kubernetes pod or a network namespace.

This package must stay importable without third-party packages on Python 3.9: the injected layer
loads ``pymirrord.protocol`` from inside the user's interpreter.
"""

from __future__ import annotations

__version__ = "0.1.0"
