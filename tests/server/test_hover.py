"""Hover in config files: the key's description and default, from the schema."""

from __future__ import annotations

import pytest

from pymirrord.config.sources import Format
from pymirrord.server.hover import hover

ENV_JSON = """{
  "feature": {
    "env": {
      "include": "DATABASE_URL;FEATURE_*",
      "override": {"LOG_LEVEL": "debug"},
      "unset": ["AWS_PROFILE"],
      "env_file": ".env",
      "load_from_process": false
    }
  }
}
"""


def _hover_text(text: str, needle: str, fmt: Format = "json") -> str:
    result = hover(text, text.index(needle) + 1, fmt)
    assert result is not None, needle
    return str(result.contents.value)  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("key", "words"),
    [
        ("env", "--no-remote-env"),
        ("include", "MIRRORD_OVERRIDE_ENV_VARS_INCLUDE"),
        ("override", "--env NAME=VALUE"),
        ("unset", "case-insensitively"),
        ("env_file", "relative path is taken from the config file's folder"),
        ("load_from_process", "no effect in pymirrord"),
    ],
)
def test_each_feature_env_key_explains_itself(key: str, words: str) -> None:
    text = _hover_text(ENV_JSON, f'"{key}"')
    assert "feature.env" in text and words in text
    assert "Default:" in text


def test_exclude_in_yaml() -> None:
    text = _hover_text("feature:\n  env:\n    exclude: AWS_*\n", "exclude", "yaml")
    assert "MIRRORD_OVERRIDE_ENV_VARS_EXCLUDE" in text and "Default: `null`" in text
