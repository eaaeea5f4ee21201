from __future__ import annotations

import json
from typing import Any

import yaml

from pymirrord.config.sources import Format, parse_source
from pymirrord.server.edits import Edit, remove_key, rename_key, replace_value, set_target


def _toml(text: str) -> Any:
    return parse_source(text, "toml").data


def apply(text: str, edit: Edit | None) -> str:
    assert edit is not None
    return text[: edit.start] + edit.new_text + text[edit.end :]


JSON = '{\n  "target": "pod/x",\n  "bogus": 1,\n  "feature": {"fs": "read", "env": true}\n}\n'


def test_remove_keys_keeps_json_valid() -> None:
    assert json.loads(apply(JSON, remove_key(JSON, "json", "/bogus"))) == {
        "target": "pod/x",
        "feature": {"fs": "read", "env": True},
    }
    assert json.loads(apply(JSON, remove_key(JSON, "json", "/feature/env")))["feature"] == {"fs": "read"}
    assert json.loads(apply(JSON, remove_key(JSON, "json", "/feature/fs")))["feature"] == {"env": True}
    assert remove_key("{", "json", "/x") is None


def test_remove_in_yaml_and_toml() -> None:
    text = "target: pod/x\nbogus: 1\nfeature:\n  fs: read\n  env: true\n"
    assert yaml.safe_load(apply(text, remove_key(text, "yaml", "/feature/fs"))) == {
        "target": "pod/x",
        "bogus": 1,
        "feature": {"env": True},
    }
    toml = 'target = "pod/x"\nbogus = 1\n[feature.fs]\nmode = "read"\n[agent]\nttl = 3\n'
    assert _toml(apply(toml, remove_key(toml, "toml", "/feature/fs"))) == {
        "target": "pod/x",
        "bogus": 1,
        "agent": {"ttl": 3},
    }


def test_rename_and_replace() -> None:
    assert '"agent": 1' in apply(JSON, rename_key(JSON, "json", "/bogus", "agent"))
    assert apply(
        "target: deploy/x\n", replace_value("target: deploy/x\n", "yaml", "/target", "deployment/x")
    ) == ("target: deployment/x\n")


def test_set_target_in_each_format() -> None:
    cases: list[tuple[Format, str]] = [
        ("json", "{}"),
        ("json", '{"agent": {}}'),
        ("json", JSON),
        ("json", '{"target": {"path": null, "namespace": "a"}}'),
        ("yaml", ""),
        ("yaml", "feature:\n  env: true\n"),
        ("toml", "[agent]\nttl = 3\n"),
    ]
    for fmt, text in cases:
        written = apply(text, set_target(text, fmt, "netns/demo"))
        data = (
            json.loads(written)
            if fmt == "json"
            else yaml.safe_load(written)
            if fmt == "yaml"
            else _toml(written)
        )
        target = data["target"]
        assert (target["path"] if isinstance(target, dict) else target) == "netns/demo", (fmt, text, written)
