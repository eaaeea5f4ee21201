from __future__ import annotations

from pymirrord.server.documents import config_format, is_config_path, uri_to_path


def test_which_files_are_configs() -> None:
    assert config_format("file:///p/.mirrord/mirrord.json") == "json"
    assert config_format("file:///p/.mirrord/dev.yml") == "yaml"
    assert config_format("file:///p/.mirrord/a.toml") == "toml"
    assert config_format("file:///p/my-mirrord.json") == "json"
    assert config_format("file:///p/package.json") is None
    assert not is_config_path("/p/mirrord/x.json")
    assert uri_to_path("file:///a%20b/.mirrord/m.json") == "/a b/.mirrord/m.json"
