"""Code actions on config files: fix what a diagnostic points at, and write a picked target into the file.

- an unknown key: remove it, or rename it to the key the hint suggests (``did you mean "mode"?``);
- a key pymirrord ignores: remove it;
- an older spelling (``deploy/api``, a target object): replace it with the modern one;
- no target yet: "Set target to ..." for the targets available, and "Choose a target..." which runs the
  ``pymirrord.chooseTarget`` command (an editor shows its own picker, then calls ``pymirrord.setTarget``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from lsprotocol import types

from pymirrord.config.sources import Format
from pymirrord.server.commands import CHOOSE_TARGET_COMMAND
from pymirrord.server.diagnostics import SOURCE
from pymirrord.server.edits import Edit, parse, remove_key, rename_key, replace_value, set_target
from pymirrord.server.text_positions import TextPositions

_SUGGESTION = re.compile(r'did you mean "([^"]+)"\?')
# Enough direct choices to be useful without burying the other actions.
MAX_TARGET_ACTIONS = 5


def text_edit(edit: Edit, positions: TextPositions) -> types.TextEdit:
    return types.TextEdit(
        types.Range(
            types.Position(*positions.position(edit.start)), types.Position(*positions.position(edit.end))
        ),
        edit.new_text,
    )


def _action(
    title: str,
    uri: str,
    edit: Edit | None,
    positions: TextPositions,
    diagnostic: types.Diagnostic | None,
    *,
    preferred: bool = False,
) -> types.CodeAction | None:
    if edit is None:
        return None
    return types.CodeAction(
        title=title,
        kind=types.CodeActionKind.QuickFix,
        diagnostics=[diagnostic] if diagnostic is not None else None,
        is_preferred=preferred or None,
        edit=types.WorkspaceEdit(changes={uri: [text_edit(edit, positions)]}),
    )


def _data(diagnostic: types.Diagnostic) -> dict[str, Any]:
    data = diagnostic.data
    return data if isinstance(data, dict) else {}


def fixes(
    uri: str, text: str, fmt: Format, diagnostics: Sequence[types.Diagnostic], positions: TextPositions
) -> list[types.CodeAction]:
    """Quick fixes for the given diagnostics (those the editor sent with the request)."""
    parsed = parse(text, fmt)
    if parsed is None:
        return []
    actions: list[types.CodeAction | None] = []
    for diagnostic in diagnostics:
        if diagnostic.source != SOURCE:
            continue
        data = _data(diagnostic)
        pointer = data.get("pointer")
        if not isinstance(pointer, str):
            continue
        name = pointer.rsplit("/", 1)[-1]
        if diagnostic.code == "unknown-key":
            suggestion = _SUGGESTION.search(str(data.get("hint", "")))
            if suggestion:
                edit = rename_key(text, fmt, pointer, suggestion.group(1), parsed)
                actions.append(
                    _action(
                        f'Rename "{name}" to "{suggestion.group(1)}"',
                        uri,
                        edit,
                        positions,
                        diagnostic,
                        preferred=True,
                    )
                )
            edit = remove_key(text, fmt, pointer, parsed)
            actions.append(_action(f'Remove unknown key "{name}"', uri, edit, positions, diagnostic))
        elif diagnostic.code == "ignored-key":
            edit = remove_key(text, fmt, pointer, parsed)
            actions.append(
                _action(f'Remove "{name}" (ignored by pymirrord)', uri, edit, positions, diagnostic)
            )
        elif diagnostic.code == "deprecated-form" and isinstance(data.get("replacement"), str):
            replacement = data["replacement"]
            edit = replace_value(text, fmt, pointer, replacement, parsed)
            actions.append(
                _action(f'Replace with "{replacement}"', uri, edit, positions, diagnostic, preferred=True)
            )
    return [action for action in actions if action is not None]


def target_is_unset(text: str, fmt: Format) -> bool:
    parsed = parse(text, fmt)
    if parsed is None or not isinstance(parsed.data, dict):
        return False
    target = parsed.data.get("target")
    return target is None or (isinstance(target, dict) and target.get("path") is None and "path" in target)


def target_actions(
    uri: str, text: str, fmt: Format, targets: Sequence[str], positions: TextPositions
) -> list[types.CodeAction]:
    """When the file names no target: set one of ``targets`` directly, or choose one in the editor."""
    if not target_is_unset(text, fmt):
        return []
    actions: list[types.CodeAction] = [
        types.CodeAction(
            title="Choose a target for pymirrord…",
            kind=types.CodeActionKind.QuickFix,
            command=types.Command("Choose a target", CHOOSE_TARGET_COMMAND, arguments=[uri]),
        )
    ]
    for target in targets[:MAX_TARGET_ACTIONS]:
        action = _action(f"Set target to {target}", uri, set_target(text, fmt, target), positions, None)
        if action is not None:
            actions.append(action)
    return actions


def set_target_edit(
    uri: str, text: str, fmt: Format, target: str, positions: TextPositions
) -> types.WorkspaceEdit | None:
    edit = set_target(text, fmt, target)
    if edit is None:
        return None
    return types.WorkspaceEdit(changes={uri: [text_edit(edit, positions)]})
