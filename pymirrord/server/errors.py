"""The helper's errors: each becomes a JSON-RPC error whose message says what went wrong and what to do."""

from __future__ import annotations

from typing import Any

from pymirrord.errors import PymirrordError

# JSON-RPC error codes of the helper's own requests (the -32000..-32099 range is the server's to define).
INVALID_PARAMS = -32602
CONFIG_INVALID = -32001
NO_TARGET = -32002
LAUNCH_INVALID = -32004
SESSION_FAILED = -32005
UNKNOWN_SESSION = -32006
NOT_PERMITTED = -32007


class HelperError(PymirrordError):
    """A request failed for a reason the user can act on. ``code`` is its JSON-RPC error code."""

    def __init__(self, message: str, hint: str = "", *, code: int = INVALID_PARAMS, **data: Any) -> None:
        super().__init__(message, hint)
        self.code = code
        self.data = data

    def rpc_message(self) -> str:
        """The JSON-RPC error message: what went wrong, then what to do."""
        return f"{self.message}. {_capital(self.hint)}." if self.hint else f"{self.message}."

    def rpc_data(self) -> dict[str, Any]:
        return {"hint": self.hint, **self.data}


def _capital(text: str) -> str:
    text = text.rstrip(".")
    return text[:1].upper() + text[1:]
