"""``feature.env`` in a config: every form mirrord reads, located errors, overrides, and no values shown."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from config_helpers import char_at, only, position_of

from pymirrord.config import ConfigError, ConfigOverrides, check_text, load_config, resolve_config
from pymirrord.config.model import EnvConfig

SECRET = "hunter2-do-not-show"


def _env(section: object) -> str:
    return json.dumps({"feature": {"env": section}}, indent=2) + "\n"


def test_default_is_on_and_false_turns_it_off() -> None:
    assert check_text("{}", filename="m.json").config.env == EnvConfig()  # type: ignore[union-attr]
    off = check_text(_env(False), filename="m.json").config
    assert off is not None and off.env.enabled is False
    on = check_text(_env(True), filename="m.json").config
    assert on is not None and on.env.enabled is True


@pytest.mark.parametrize("fmt", ["json", "yaml", "toml"])
def test_every_key_in_every_format(tmp_path: Path, fmt: str) -> None:
    (tmp_path / "pod.env").write_text("FROM_FILE=1\n")
    texts = {
        "json": _env(
            {
                "include": ["DATABASE_URL", "FEATURE_*"],
                "override": {"LOG_LEVEL": "debug"},
                "unset": "AWS_PROFILE;AWS_REGION",
                "env_file": "pod.env",
                "load_from_process": True,
            }
        ),
        "yaml": "feature:\n  env:\n    include: DATABASE_URL;FEATURE_*\n"
        "    override:\n      LOG_LEVEL: debug\n"
        "    unset: [AWS_PROFILE, AWS_REGION]\n    env_file: pod.env\n    load_from_process: true\n",
        "toml": '[feature.env]\ninclude = "DATABASE_URL;FEATURE_*"\nunset = ["AWS_PROFILE", "AWS_REGION"]\n'
        'env_file = "pod.env"\nload_from_process = true\n[feature.env.override]\nLOG_LEVEL = "debug"\n',
    }
    path = tmp_path / f"mirrord.{fmt}"
    path.write_text(texts[fmt])
    result = load_config(str(path), env={})
    assert result.config is not None, result.diagnostics
    env = result.config.env
    assert env.include == ("DATABASE_URL", "FEATURE_*") and env.exclude is None
    assert env.override == (("LOG_LEVEL", "debug"),)
    assert env.unset == ("AWS_PROFILE", "AWS_REGION")
    assert env.env_file == str(tmp_path / "pod.env")  # relative to the config file's folder
    warning = only(result.diagnostics, "warning", "load_from_process has no effect")
    assert "reads the variables from the target's process" in warning.message


def test_exclude_as_a_semicolon_list() -> None:
    config = check_text(_env({"exclude": "AWS_*; DEBUG;"}), filename="m.json").config
    assert config is not None and config.env.exclude == ("AWS_*", "DEBUG") and config.env.include is None


def test_include_with_exclude_warns_and_include_decides() -> None:
    text = _env({"include": "A", "exclude": "B"})
    result = check_text(text, filename="m.json")
    assert (
        result.config is not None
        and result.config.env.include == ("A",)
        and result.config.env.exclude is None
    )
    warning = only(result.diagnostics, "warning", "exclude is ignored")
    assert (warning.line, warning.column) == position_of(text, '"exclude"')


def test_an_invalid_pattern_is_an_error_at_its_character() -> None:
    text = _env({"include": "DATABASE_URL;FEATURE =X"})
    result = check_text(text, filename="m.json")
    error = only(result.errors, "error", "is not a valid name pattern")
    assert "white space" in error.message
    assert (error.line, error.column) == position_of(text, " =X")
    text = _env({"exclude": ["OK", "BAD=1"]})
    error = only(check_text(text, filename="m.json").errors, "error", "'BAD=1'")
    assert char_at(text, error.line, error.column) == "="
    assert error.pointer == "/feature/env/exclude/1"


def test_unset_and_override_take_exact_names() -> None:
    text = _env({"unset": ["AWS_*"], "override": {"A B": "1"}})
    errors = check_text(text, filename="m.json").errors
    star = only(errors, "error", "'AWS_*'")
    assert char_at(text, star.line, star.column) == "*"
    spaced = only(errors, "error", "'A B'")
    assert (spaced.line, spaced.column) == position_of(text, '"A B"')


def test_an_unreadable_env_file_is_an_error_at_its_line_and_column(tmp_path: Path) -> None:
    text = _env({"env_file": "missing.env"})
    path = tmp_path / "mirrord.json"
    path.write_text(text)
    (error,) = load_config(str(path), env={}).errors
    assert "feature.env.env_file" in error.message and "not found" in error.message
    assert (error.file, error.line, error.column) == (str(path), *position_of(text, '"missing.env"'))
    with pytest.raises(ConfigError, match=r"missing\.env not found"):
        resolve_config(str(path), env={})
    # Editors check the unsaved text the same way when asked to read files.
    assert check_text(text, filename=str(path), read_files=True).errors[0].line == error.line
    assert check_text(text, filename=str(path)).ok  # pure by default


def test_a_bad_env_file_line_is_named_without_its_values(tmp_path: Path) -> None:
    (tmp_path / "bad.env").write_text(f"OK=1\nAPI_TOKEN='{SECRET}\n")
    text = _env({"env_file": "bad.env"})
    path = tmp_path / "mirrord.json"
    path.write_text(text)
    (error,) = load_config(str(path), env={}).errors
    assert "bad.env, line 2, column 11" in error.message and "no closing" in error.message
    assert SECRET not in error.message + error.hint


def test_override_values_never_appear_in_diagnostics() -> None:
    text = json.dumps({"feature": {"env": {"override": {"API_TOKEN": 73519, "DB_PASSWORD": [SECRET]}}}})
    result = check_text(text, filename="m.json")
    assert len(result.errors) == 2
    for diagnostic in result.diagnostics:
        assert "73519" not in diagnostic.message and SECRET not in diagnostic.message + diagnostic.hint
    assert any("override.API_TOKEN must be a string, not a number" in d.message for d in result.errors)


def test_environment_overrides_include_and_exclude() -> None:
    text = _env({"exclude": "AWS_*"})
    path_env = {"MIRRORD_OVERRIDE_ENV_VARS_INCLUDE": "DATABASE_URL;FEATURE_*"}
    result = check_text(text, filename="m.json")
    assert result.config is not None and result.config.env.exclude == ("AWS_*",)
    config, _ = resolve_config(None, env=path_env)
    assert config.env.include == ("DATABASE_URL", "FEATURE_*")
    config, _ = resolve_config(None, env={"MIRRORD_OVERRIDE_ENV_VARS_EXCLUDE": "SECRET_*"})
    assert config.env.exclude == ("SECRET_*",) and config.env.include is None


def test_the_environment_replaces_the_files_other_list(tmp_path: Path) -> None:
    path = tmp_path / "mirrord.json"
    path.write_text(_env({"exclude": "AWS_*"}))
    config, diagnostics = resolve_config(str(path), env={"MIRRORD_OVERRIDE_ENV_VARS_INCLUDE": "A"})
    assert config.env.include == ("A",) and config.env.exclude is None
    assert not [d for d in diagnostics if "ignored" in d.message]


def test_a_bad_pattern_in_the_environment_names_the_variable() -> None:
    with pytest.raises(ConfigError) as caught:
        resolve_config(None, env={"MIRRORD_OVERRIDE_ENV_VARS_EXCLUDE": "A=B"})
    assert "MIRRORD_OVERRIDE_ENV_VARS_EXCLUDE" in caught.value.message


def test_command_line_env_flags_win_over_the_files_override(tmp_path: Path) -> None:
    path = tmp_path / "mirrord.json"
    path.write_text(_env({"override": {"A": "file", "B": "file"}}))
    overrides = ConfigOverrides(env=("B=flag", "C=x=y"), no_remote_env=True)
    config, _ = resolve_config(str(path), env={}, overrides=overrides)
    assert dict(config.env.override) == {"A": "file", "B": "flag", "C": "x=y"}
    assert config.env.enabled is False


def test_a_bad_env_flag_is_refused_without_echoing_a_value() -> None:
    with pytest.raises(ConfigError) as caught:
        resolve_config(None, env={}, overrides=ConfigOverrides(env=("NO_EQUALS_SIGN",)))
    assert "--env 'NO_EQUALS_SIGN' is not NAME=VALUE" in caught.value.message
    with pytest.raises(ConfigError) as caught:
        resolve_config(None, env={}, overrides=ConfigOverrides(env=(f"A B={SECRET}",)))
    assert "not a variable name" in caught.value.message and SECRET not in caught.value.message
