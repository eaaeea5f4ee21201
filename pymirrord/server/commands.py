"""The names of the helper's workspace commands (``workspace/executeCommand``)."""

from __future__ import annotations

# Run by the "Choose a target…" code action: the helper asks with a message and buttons (an editor
# extension may show its own picker instead and call SET_TARGET_COMMAND with the choice).
CHOOSE_TARGET_COMMAND = "pymirrord.chooseTarget"
# Arguments [uri, target]: write the target into that config document (through workspace/applyEdit).
SET_TARGET_COMMAND = "pymirrord.setTarget"
# The config files' "Edit HTTP filter…" code lens runs this with [uri]; it is the editor's own command (the VS
# Code extension opens its filter editor), so the helper does not list it among the commands it executes.
EDIT_FILTER_COMMAND = "pymirrord.editFilter"
