from __future__ import annotations

from pymirrord.server.code_actions import fixes, target_actions
from pymirrord.server.diagnostics import config_diagnostics
from pymirrord.server.text_positions import TextPositions

URI = "file:///p/.mirrord/mirrord.json"


def test_fixes_for_unknown_ignored_and_deprecated() -> None:
    text = '{"target": {"deployment": "api"}, "operator": true, "agnet": {}}'
    diagnostics = config_diagnostics(text, "mirrord.json")
    titles = [a.title for a in fixes(URI, text, "json", diagnostics, TextPositions(text))]
    assert 'Rename "agnet" to "agent"' in titles
    assert 'Remove unknown key "agnet"' in titles
    assert 'Remove "operator" (ignored by pymirrord)' in titles
    assert 'Replace with "deployment/api"' in titles


def test_target_actions_only_without_a_target() -> None:
    text = '{"feature": {}}'
    actions = target_actions(URI, text, "json", ["netns/a", "pid/3"], TextPositions(text))
    assert [a.title for a in actions] == [
        "Choose a target for pymirrord…",
        "Set target to netns/a",
        "Set target to pid/3",
    ]
    assert actions[0].command is not None and actions[0].command.arguments == [URI]
    assert target_actions(URI, '{"target": "pod/x"}', "json", ["netns/a"], TextPositions("")) == []
