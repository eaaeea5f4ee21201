"""The helper over stdio as an editor sees it: diagnostics, completion, hover, code actions on configs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from pymirrord.server.rpc_client import HelperClient

BROKEN_JSON = """{
  "target": "pod/api",
  "feature": {
    "network": {
      "incoming": {
        "mode": "steal",
        "http_filter": {"header_filter": "^X-(My: 1"}
      }
    }
  },
  "agnet": {}
}
"""

BROKEN_YAML = """target: pod/api
feature:
  network:
    incoming:
      mode: stael
"""


def _uri(tmp_path: Path, name: str) -> str:
    return (tmp_path / ".mirrord" / name).as_uri()


def _by_code(diagnostics: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {str(d["code"]): d for d in diagnostics}


def _range(d: dict[str, Any]) -> tuple[int, int, int, int]:
    r = d["range"]
    return r["start"]["line"], r["start"]["character"], r["end"]["line"], r["end"]["character"]


def _apply(text: str, edits: list[dict[str, Any]]) -> str:
    lines = text.splitlines(keepends=True)
    starts = [0]
    for line in lines:
        starts.append(starts[-1] + len(line))

    def offset(position: dict[str, int]) -> int:
        return starts[position["line"]] + position["character"]

    for edit in sorted(edits, key=lambda e: offset(e["range"]["start"]), reverse=True):
        start, end = offset(edit["range"]["start"]), offset(edit["range"]["end"])
        text = text[:start] + edit["newText"] + text[end:]
        starts = [0]
        for line in text.splitlines(keepends=True):
            starts.append(starts[-1] + len(line))
    return text


def test_diagnostics_for_broken_json_point_at_the_offending_characters(
    helper: HelperClient, tmp_path: Path
) -> None:
    uri = _uri(tmp_path, "mirrord.json")
    helper.open(uri, BROKEN_JSON)
    found = _by_code(helper.diagnostics(uri))
    # The ( that is never closed: line 7, inside the string, escapes accounted for.
    line = BROKEN_JSON.splitlines()[6]
    assert _range(found["invalid-regex"]) == (6, line.index("(My"), 6, line.index("(My") + 1)
    assert found["invalid-regex"]["severity"] == 1
    assert _range(found["unknown-key"]) == (10, 2, 10, 9)
    assert 'did you mean "agent"?' in found["unknown-key"]["message"]

    # Republished on every change: a syntax error, then the fixed file.
    helper.change(uri, BROKEN_JSON.replace('"mode": "steal",', '"mode": "steal"'), 2)
    (syntax,) = helper.diagnostics(uri, version=2)
    assert syntax["message"].startswith("invalid JSON: unexpected character")
    assert _range(syntax)[0] == 6
    helper.change(uri, json.dumps({"target": "pod/api"}), 3)
    assert helper.diagnostics(uri, version=3) == []


def test_diagnostics_for_broken_yaml(helper: HelperClient, tmp_path: Path) -> None:
    uri = _uri(tmp_path, "mirrord.yaml")
    helper.open(uri, BROKEN_YAML, "yaml")
    (mode,) = helper.diagnostics(uri)
    assert _range(mode) == (4, 12, 4, 17)
    assert 'did you mean "steal"?' in mode["message"]
    helper.change(uri, "target: pod/api\nfeature: [\n", 2)
    (syntax,) = helper.diagnostics(uri, version=2)
    assert syntax["severity"] == 1 and _range(syntax)[0] >= 1


def _complete(helper: HelperClient, uri: str, text: str) -> dict[str, dict[str, Any]]:
    line, _, _rest = text.partition("|")
    row = line.count("\n")
    column = len(line) - (line.rfind("\n") + 1)
    result = helper.request(
        "textDocument/completion",
        {"textDocument": {"uri": uri}, "position": {"line": row, "character": column}},
    )
    return {item["label"]: item for item in result["items"]}


def test_completion_at_several_positions(helper: HelperClient, tmp_path: Path) -> None:
    uri = _uri(tmp_path, "mirrord.json")
    cases = [
        ('{"feature": {"network": {"incoming": {"mo|"}}}}', "mode", '"mode": '),
        ('{"feature": {"network": {"incoming": {"mode": "st|"}}}}', "steal", '"steal"'),
        ('{"feature": {"network": {"incoming": |}}}', "steal", '"steal"'),
        ('{"target": "pod/api", |}', "feature", '"feature": '),
        (
            '{"feature": {"network": {"incoming": {"http_filter": {"all_of": [{"|"}]}}}}}',
            "header",
            '"header": ',
        ),
    ]
    for version, (text, label, new_text) in enumerate(cases, start=1):
        helper.change(uri, text.replace("|", ""), version) if version > 1 else helper.open(
            uri, text.replace("|", "")
        )
        items = _complete(helper, uri, text)
        assert label in items, (text, sorted(items))
        assert items[label]["textEdit"]["newText"] == new_text
    # Keys already written are not offered again; keys pymirrord ignores come last, marked.
    helper.change(uri, cases[3][0].replace("|", ""), 99)
    items = _complete(helper, uri, cases[3][0])
    assert "target" not in items
    assert items["operator"]["sortText"] > items["feature"]["sortText"]

    yaml_uri = _uri(tmp_path, "mirrord.yaml")
    yaml_text = "feature:\n  network:\n    incoming:\n      mode: |\n"
    helper.open(yaml_uri, yaml_text.replace("|", ""), "yaml")
    items = _complete(helper, yaml_uri, yaml_text)
    assert items["steal"]["textEdit"]["newText"] == "steal"
    assert items["off"]["textEdit"]["newText"] == '"off"', "YAML would read a bare off as false"

    toml_uri = _uri(tmp_path, "mirrord.toml")
    toml_text = "[feature.network.incoming]\nmo|\n"
    helper.open(toml_uri, toml_text.replace("|", ""), "toml")
    assert _complete(helper, toml_uri, toml_text)["mode"]["textEdit"]["newText"] == "mode = "


def test_hover_shows_description_and_default(helper: HelperClient, tmp_path: Path) -> None:
    uri = _uri(tmp_path, "mirrord.json")
    text = '{\n  "feature": {"network": {"incoming": {"mode": "steal"}}}\n}\n'
    helper.open(uri, text)
    column = text.splitlines()[1].index('"mode"') + 2
    hover = helper.request(
        "textDocument/hover", {"textDocument": {"uri": uri}, "position": {"line": 1, "character": column}}
    )
    assert "**feature.network.incoming.mode**" in hover["contents"]["value"]
    assert 'Default: `"mirror"`' in hover["contents"]["value"]
    assert hover["range"]["start"] == {"line": 1, "character": column - 2}


def _actions(helper: HelperClient, uri: str, diagnostics: list[dict[str, Any]]) -> dict[str, Any]:
    actions = helper.request(
        "textDocument/codeAction",
        {
            "textDocument": {"uri": uri},
            "range": {"start": {"line": 0, "character": 0}, "end": {"line": 0, "character": 0}},
            "context": {"diagnostics": diagnostics},
        },
    )
    return {action["title"]: action for action in actions}


def test_code_actions_fix_the_file(helper: HelperClient, tmp_path: Path) -> None:
    uri = _uri(tmp_path, "mirrord.json")
    text = '{\n  "target": "deploy/api",\n  "feature": {"fs": "read"},\n  "agnet": {"ttl": 3}\n}\n'
    helper.open(uri, text)
    diagnostics = helper.diagnostics(uri)
    actions = _actions(helper, uri, diagnostics)
    assert set(actions) >= {
        'Rename "agnet" to "agent"',
        'Remove unknown key "agnet"',
        'Remove "fs" (ignored by pymirrord)',
        'Replace with "deployment/api"',
    }
    fixed = text
    for title in (
        'Rename "agnet" to "agent"',
        'Remove "fs" (ignored by pymirrord)',
        'Replace with "deployment/api"',
    ):
        helper.change(uri, fixed, 2 + len(fixed))
        fresh = _actions(helper, uri, helper.diagnostics(uri, version=2 + len(fixed)))
        fixed = _apply(fixed, fresh[title]["edit"]["changes"][uri])
    assert json.loads(fixed) == {"target": "deployment/api", "feature": {}, "agent": {"ttl": 3}}


def test_a_picked_target_is_written_into_the_file(helper: HelperClient, tmp_path: Path) -> None:
    uri = _uri(tmp_path, "mirrord.yaml")
    text = "feature:\n  network:\n    incoming: steal\n"
    helper.open(uri, text, "yaml")
    helper.diagnostics(uri)
    assert "Choose a target for pymirrord…" in _actions(helper, uri, [])
    result = helper.request(
        "workspace/executeCommand", {"command": "pymirrord.setTarget", "arguments": [uri, "netns/demo"]}
    )
    assert result == {"applied": True, "target": "netns/demo"}
    (edit,) = helper.applied_edits
    assert yaml.safe_load(_apply(text, edit["changes"][uri]))["target"] == "netns/demo"
