from __future__ import annotations

from pymirrord.config.sources import Format
from pymirrord.server.completion import complete


def items(fmt: Format, marked: str, targets: tuple[str, ...] = ()) -> dict[str, str]:
    offset = marked.index("|")
    found = complete(marked.replace("|", "", 1), offset, fmt, targets)
    return {item.label: item.text_edit.new_text for item in found if item.text_edit is not None}


def test_keys_in_each_syntax() -> None:
    assert items("json", '{"agent": {"tt|"}}')["ttl"] == '"ttl": '
    assert items("json", '{"agent": {"tt|": 3}}')["ttl"] == '"ttl"', "a colon follows already"
    assert items("json", '{"agent": {|}}')["ttl"] == '"ttl": '
    assert items("yaml", "agent:\n  tt|\n")["ttl"] == "ttl: "
    assert items("toml", "[agent]\ntt|\n")["ttl"] == "ttl = "


def test_values_shorthands_booleans_and_methods() -> None:
    incoming = items("json", '{"feature": {"network": {"incoming": |}}}')
    assert {"mirror", "steal", "off", "true", "false"} <= set(incoming)
    assert items("yaml", "feature:\n  env: |\n")["true"] == "true"
    methods = items("json", '{"feature": {"network": {"incoming": {"http_filter": {"method_filter": "|"}}}}}')
    assert methods["POST"] == '"POST"'


def test_target_paths_come_from_the_targets_available() -> None:
    found = items("json", '{"target": "|"}', ("netns/demo", "pid/42"))
    assert found["netns/demo"] == '"netns/demo"'
    assert found["deployment/"] == '"deployment/"'
    assert items("yaml", "target:\n  path: |\n", ("netns/demo",))["netns/demo"] == "netns/demo"


def test_unknown_places_complete_nothing() -> None:
    assert items("json", '{"nope": {|}}') == {}


ENV_KEYS = ("include", "exclude", "override", "unset", "env_file", "load_from_process", "mapping")


def test_every_feature_env_key_completes_with_its_documentation() -> None:
    text = '{"feature": {"env": {|}}}'
    offset = text.index("|")
    found = {item.label: item for item in complete(text.replace("|", ""), offset, "json", ())}
    for key in ENV_KEYS:
        item = found[key]
        assert item.documentation is not None and f"feature.env.{key}" in str(item.documentation)
    assert "Default" in str(found["env_file"].documentation)
    assert found["load_from_process"].detail == "ignored by pymirrord"
    assert found["include"].detail is None and found["env_file"].detail is None
    assert items("yaml", "feature:\n  env:\n    load_from_process: |\n")["true"] == "true"
