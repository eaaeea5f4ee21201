"""check_text / load_config / resolve_config: located diagnostics, semantic checks, overrides, precedence."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from config_helpers import char_at, only, position_of

from pymirrord.config import ConfigError, ConfigOverrides, check_text, load_config, resolve_config
from pymirrord.config.model import FilterRule, HttpFilterConfig, InnerFilter, ResolvedConfig, TrafficFilter


def _steal(http_filter: str, extra: str = "") -> str:
    return (
        '{\n  "target": "netns/demo",\n  "feature": {\n    "network": {\n      "incoming": {\n'
        f'        "mode": "steal",\n        "http_filter": {http_filter}{extra}\n      }}\n    }}\n  }}\n}}\n'
    )


def test_mission_example_resolves_with_defaults_applied() -> None:
    text = (
        '{"feature":{"network":{"incoming":{"mode":"steal","http_filter":{"header_filter":"^X-MyFilter:"}}}}}'
    )
    result = check_text(text, filename="mirrord.json")
    assert result.config is not None
    incoming = result.config.incoming
    assert incoming.mode == "steal"
    assert incoming.http_filter == HttpFilterConfig(header_filter="^X-MyFilter:", ports=(80, 8080))
    assert result.config.target.path is None
    assert result.config.outgoing.tcp and result.config.outgoing.udp and result.config.dns.enabled
    # The default HTTP ports surprise people whose service listens elsewhere: say so.
    warning = only(result.diagnostics, "warning", "covers ports 80, 8080 only")
    assert (warning.line, warning.column) == position_of(text, '"http_filter"')


def test_empty_object_is_all_defaults() -> None:
    assert check_text("{}", filename="m.json").config == ResolvedConfig()
    assert check_text("", filename="m.yaml").config == ResolvedConfig()
    assert check_text("# nothing\n", filename="m.toml").config == ResolvedConfig()


def test_every_diagnostic_has_file_line_column_and_pointer() -> None:
    text = (
        '{\n  "target": "pod/x",\n  "operator": true,\n'
        '  "feature": {"fs": "read", "network": {"incoming": 7}}\n}'
    )
    result = check_text(text, filename="cfg.json")
    assert result.config is None
    for diagnostic in result.diagnostics:
        assert diagnostic.file == "cfg.json"
        assert diagnostic.line > 0 and diagnostic.column > 0
        assert diagnostic.pointer.startswith("/")
    warning = only(result.diagnostics, "warning", "operator")
    assert (warning.line, warning.column, warning.end_column) == (3, 3, 13)
    error = only(result.diagnostics, "error", "feature.network.incoming")
    assert error.pointer == "/feature/network/incoming"
    assert (error.line, error.column) == position_of(text, "7")


def test_unknown_key_is_located_at_the_key() -> None:
    text = '{\n  "feature": {\n    "netwrok": true\n  }\n}'
    error = only(check_text(text, filename="m.json").diagnostics, "error", "unknown key")
    assert (error.line, error.column, error.end_line, error.end_column) == (3, 5, 3, 14)
    assert 'did you mean "network"?' in error.hint


def test_invalid_regex_is_located_at_the_offending_character_despite_escapes() -> None:
    text = _steal('{ "header_filter": "^X-\\\\d+\\\\.\\\\w (foo" }')
    result = check_text(text, filename="m.json")
    error = only(result.diagnostics, "error", "not a valid regular expression")
    assert error.pointer == "/feature/network/incoming/http_filter/header_filter"
    assert char_at(text, error.line, error.column) == "("
    assert (error.line, error.column) == position_of(text, "(foo")
    assert error.end_column == error.column + 1


def test_invalid_regex_inside_all_of_is_located_in_its_item() -> None:
    text = _steal('{ "all_of": [{ "path": "^/a" }, { "header": "x-[ab" }] }')
    error = only(check_text(text, filename="m.json").diagnostics, "error", "this [ is never closed")
    assert error.pointer == "/feature/network/incoming/http_filter/all_of/1/header"
    assert (error.line, error.column) == position_of(text, "[ab")


def test_lookarounds_and_backreferences_compile() -> None:
    text = _steal('{ "header_filter": "^(?i)user-agent: (?!kube-probe)(\\\\w)\\\\1" }')
    assert check_text(text, filename="m.json").config is not None


def test_one_filter_kind_per_http_filter() -> None:
    text = _steal('{ "header_filter": "^a", "method_filter": "GET" }')
    error = only(
        check_text(text, filename="m.json").diagnostics, "error", "sets both header_filter and method_filter"
    )
    assert (error.line, error.column) == position_of(text, '"method_filter"')
    assert "all_of" in error.hint


def test_all_of_and_any_of_build_inner_filters() -> None:
    text = _steal('{ "any_of": [{ "header": "^x-a:" }, { "method": "post" }], "ports": 8080 }')
    config = check_text(text, filename="m.json").config
    assert config is not None and config.incoming.http_filter is not None
    assert config.incoming.http_filter.any_of == (
        InnerFilter("header", "^x-a:"),
        InnerFilter("method", "post"),
    )
    assert config.incoming.http_filter.ports == (8080,)


def test_ports_outside_http_filter_ports_warn() -> None:
    text = _steal(
        '{ "header_filter": "^a" }', ',\n        "ports": [8080, 3000],\n        "port_mapping": [[9000, 81]]'
    )
    result = check_text(text, filename="m.json")
    assert result.config is not None
    warning = only(result.diagnostics, "warning", "port 3000 is not in http_filter.ports")
    assert (warning.line, warning.column) == position_of(text, "3000")
    mapping = only(result.diagnostics, "warning", "remote port 81")
    assert (mapping.line, mapping.column) == position_of(text, "81]")


def test_steal_without_filter_warns_at_the_mode() -> None:
    text = '{"target": "pod/a", "feature": {"network": {"incoming": "steal"}}}'
    result = check_text(text, filename="m.json")
    assert result.config is not None
    warning = only(result.diagnostics, "warning", "health probes")
    assert (warning.line, warning.column) == position_of(text, '"steal"')


def test_http_filter_in_mirror_mode_filters_the_copies() -> None:
    text = (
        '{"feature": {"network": {"incoming": {"mode": "mirror", "ports": [3000], '
        '"http_filter": {"path_filter": "^/a"}}}}}'
    )
    diagnostics = check_text(text, filename="m.json").diagnostics
    assert not [d for d in diagnostics if "no effect" in d.message]
    warning = only(diagnostics, "warning", "nothing on it is mirrored")
    assert (warning.line, warning.column) == position_of(text, "3000]")


def test_http_filter_with_incoming_off_warns() -> None:
    text = '{"feature": {"network": {"incoming": {"mode": "off", "http_filter": {"path_filter": "^/a"}}}}}'
    warning = only(check_text(text, filename="m.json").diagnostics, "warning", "has no effect")
    assert (warning.line, warning.column) == position_of(text, '"http_filter"')


def test_steal_with_targetless_is_an_error() -> None:
    text = '{"target": "targetless", "feature": {"network": {"incoming": {"mode": "steal"}}}}'
    error = only(check_text(text, filename="m.json").diagnostics, "error", "needs a target")
    assert (error.line, error.column) == position_of(text, '"steal"')


def test_duplicate_port_mapping_targets_are_errors() -> None:
    text = '{"feature": {"network": {"incoming": {"port_mapping": [[9000, 80], [9001, 80]]}}}}'
    error = only(check_text(text, filename="m.json").diagnostics, "error", "remote port 80 appears in two")
    assert error.pointer == "/feature/network/incoming/port_mapping/1/1"
    assert (error.line, error.column) == position_of(text, "80", occurrence=1)


def test_duplicate_listen_ports_are_errors() -> None:
    text = '{"feature": {"network": {"incoming": {"listen_ports": [[80, 8080], [81, 8080]]}}}}'
    only(
        check_text(text, filename="m.json").diagnostics,
        "error",
        "local port 8080 appears in two listen_ports",
    )


def test_ports_with_ignore_ports_is_an_error_at_ignore_ports() -> None:
    text = '{"feature": {"network": {"incoming": {"ports": [80], "ignore_ports": [81]}}}}'
    error = only(check_text(text, filename="m.json").diagnostics, "error", "cannot be used together")
    assert (error.line, error.column) == position_of(text, '"ignore_ports"')


def test_ports_out_of_range() -> None:
    for bad in ("0", "65536", "-1"):
        text = f'{{"feature": {{"network": {{"incoming": {{"ports": [80, {bad}]}}}}}}}}'
        error = only(check_text(text, filename="m.json").diagnostics, "error", "not a valid port number")
        assert (error.line, error.column) == position_of(text, bad, occurrence=0 if bad != "0" else 1)


def test_outgoing_filter_grammar_errors_point_inside_the_string() -> None:
    text = (
        '{"feature": {"network": {"outgoing": {"filter": {"remote": ["db:5432", "tcp://10.0.0.0/8:99x"]}}}}}'
    )
    error = only(check_text(text, filename="m.json").diagnostics, "error", "not a valid port number")
    assert error.pointer == "/feature/network/outgoing/filter/remote/1"
    assert (error.line, error.column) == position_of(text, "99x")
    assert error.end_column - error.column == 3


def test_outgoing_and_dns_filters_are_parsed() -> None:
    text = json.dumps(
        {
            "feature": {
                "network": {
                    "outgoing": {"filter": {"local": ":53"}},
                    "dns": {"filter": {"remote": ["db.internal", "10.0.0.0/8"]}},
                }
            }
        }
    )
    config = check_text(text, filename="m.json").config
    assert config is not None
    assert config.outgoing.filter == TrafficFilter("local", (FilterRule("any", "any", None, 53),))
    assert config.dns.filter is not None and config.dns.filter.mode == "remote"
    assert [rule.host_kind for rule in config.dns.filter.rules] == ["name", "subnet"]


def test_dns_filter_entries_with_a_protocol_are_errors() -> None:
    text = '{"feature": {"network": {"dns": {"filter": {"local": "udp://x"}}}}}'
    only(check_text(text, filename="m.json").diagnostics, "error", "DNS filter entries have no protocol")


def test_shorthands_expand() -> None:
    off = check_text('{"feature": {"network": false, "env": false}}', filename="m.json").config
    assert off is not None
    assert (
        off.incoming.mode == "off" and not off.outgoing.tcp and not off.outgoing.udp and not off.dns.enabled
    )
    assert not off.env.enabled
    partial = check_text(
        '{"feature": {"network": {"incoming": false, "outgoing": false}}}', filename="m.json"
    ).config
    assert partial is not None and partial.incoming.mode == "off" and not partial.outgoing.udp
    assert partial.dns.enabled


def test_env_section_resolves() -> None:
    text = (
        '{"feature": {"env": {"include": "A;B_*", "exclude": ["C"], '
        '"override": {"X": "1"}, "unset": "AWS_PROFILE"}}}'
    )
    result = check_text(text, filename="m.json")
    assert result.config is not None
    env = result.config.env
    assert env.enabled and env.include == ("A", "B_*") and env.exclude is None
    assert env.override == (("X", "1"),) and env.unset == ("AWS_PROFILE",)
    only(result.diagnostics, "warning", "exclude is ignored")


def test_target_forms() -> None:
    forms = {
        '"pod/a"': ("pod/a", None),
        '{"path": "deploy/a", "namespace": "ns"}': ("deploy/a", "ns"),
        '{"path": {"deployment": "a", "container": "c"}}': ("deployment/a/container/c", None),
        '{"rollout": "r"}': ("rollout/r", None),
        '{"namespace": "only"}': (None, "only"),
    }
    for written, (path, namespace) in forms.items():
        config = check_text(f'{{"target": {written}}}', filename="m.json").config
        assert config is not None, written
        assert (config.target.path, config.target.namespace) == (path, namespace)


def test_agent_settings_and_image_object() -> None:
    text = '{"agent": {"image": {"registry": "r.io/agent", "tag": "1.2"}, "ttl": 5, "log_level": "debug"}}'
    config = check_text(text, filename="m.json").config
    assert config is not None
    assert (
        config.agent.image == "r.io/agent:1.2" and config.agent.ttl == 5 and config.agent.log_level == "debug"
    )


def test_yaml_diagnostics_are_exact() -> None:
    text = (
        "target: netns/demo\nfeature:\n  network:\n    incoming:\n      mode: steal\n"
        '      http_filter:\n        header_filter: "^x-\\\\d("\n  fs: read\n'
    )
    result = check_text(text, filename="m.yaml")
    error = only(result.diagnostics, "error", "never closed")
    assert (error.line, error.column) == position_of(text, "(")
    warning = only(result.diagnostics, "warning", "feature.fs")
    assert (warning.line, warning.column, warning.end_column) == (8, 3, 5)


def test_yaml_unknown_key_and_plain_regex() -> None:
    unknown = check_text("feature:\n  network: {}\n  fss: 1\n", filename="m.yml").diagnostics
    assert (only(unknown, "error", "unknown key").line, unknown[0].column) == (3, 3)
    text = (
        "feature:\n  network:\n    incoming:\n      mode: steal\n"
        "      http_filter:\n        path_filter: ^/a[\n"
    )
    error = only(check_text(text, filename="m.yml").diagnostics, "error", "never closed")
    assert (error.line, error.column) == position_of(text, "[")


def test_yaml_syntax_error_is_located() -> None:
    text = "target: netns/demo\nfeature:\n  network: [1, 2\n  env: true\n"
    (error,) = check_text(text, filename="m.yaml").diagnostics
    assert error.message.startswith("invalid YAML")
    assert (error.line, error.column) == (4, 6)
    (tabbed,) = check_text("feature:\n\tenv: true\n", filename="m.yaml").diagnostics
    assert (tabbed.line, tabbed.column) == (2, 1)


def test_yaml_must_be_a_mapping() -> None:
    (error,) = check_text("- a\n- b\n", filename="m.yaml").diagnostics
    assert "must be an object" in error.message


def test_toml_diagnostics_have_key_path_and_line() -> None:
    text = 'target = "netns/demo"\n\n[feature.network.incoming]\nmode = "stael"\n\n[agent]\nttl = "x"\n'
    result = check_text(text, filename="m.toml")
    mode = only(result.diagnostics, "error", "incoming.mode")
    assert mode.pointer == "/feature/network/incoming/mode"
    assert (mode.line, mode.column) == position_of(text, '"stael"')
    ttl = only(result.diagnostics, "error", "agent.ttl")
    assert ttl.line == 7


def test_toml_regex_error_points_into_the_string() -> None:
    text = "[feature.network.incoming]\nmode = 'steal'\nhttp_filter = { header_filter = 'a(' }\n"
    error = only(check_text(text, filename="m.toml").diagnostics, "error", "never closed")
    # Inside an inline table only the key's line is known.
    assert error.line == 3
    text = '[feature.network.incoming.http_filter]\nheader_filter = "^\\\\d("\n'
    error = only(check_text(text, filename="m.toml").diagnostics, "error", "never closed")
    assert (error.line, error.column) == position_of(text, "(")


def test_toml_syntax_error_is_located() -> None:
    (error,) = check_text("a = 1\nb = \n", filename="m.toml").diagnostics
    assert error.message.startswith("invalid TOML")
    assert (error.line, error.column) == (2, 5)


def test_unknown_extension() -> None:
    (error,) = check_text("{}", filename="mirrord.txt").diagnostics
    assert "cannot tell the format" in error.message
    assert check_text("{}", filename="mirrord.txt", fmt="json").config == ResolvedConfig()


def test_json_duplicate_key_warns() -> None:
    text = '{"target": "pod/a", "target": "pod/b"}'
    result = check_text(text, filename="m.json")
    assert result.config is not None and result.config.target.path == "pod/b"
    warning = only(result.diagnostics, "warning", "more than once")
    assert (warning.line, warning.column) == position_of(text, '"target"', occurrence=1)


# --- files, environment, command line ---------------------------------------------------------------------


def test_load_config_reads_the_file(tmp_path: Path) -> None:
    path = tmp_path / "mirrord.json"
    path.write_text('{"target": "netns/demo"}')
    result = load_config(str(path), env={})
    assert result.config is not None and result.config.target.path == "netns/demo"


def test_missing_directory_and_undecodable_files_are_clear_errors(tmp_path: Path) -> None:
    (missing,) = load_config(str(tmp_path / "nope.json"), env={}).diagnostics
    assert missing.message == "config file not found" and missing.line == 0
    (directory,) = load_config(str(tmp_path), env={}).diagnostics
    assert "directory" in directory.message
    binary = tmp_path / "bad.json"
    binary.write_bytes(b'{"a": "\xff"}')
    (undecodable,) = load_config(str(binary), env={}).diagnostics
    assert "not UTF-8" in undecodable.message


def test_unreadable_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "secret.json"
    path.write_text("{}")
    path.chmod(0)
    if os.geteuid() == 0:
        # root reads any file, so make the refusal happen the way the kernel would report it.
        def refuse(*args: object, **kwargs: object) -> None:
            raise PermissionError(13, "Permission denied")

        monkeypatch.setattr("builtins.open", refuse)
    (error,) = load_config(str(path), env={}).diagnostics
    assert "permission denied" in error.message
    assert error.file == str(path)


def test_no_path_uses_mirrord_config_file_then_defaults(tmp_path: Path) -> None:
    path = tmp_path / "from-env.yaml"
    path.write_text("target: pid/1\n")
    result = load_config(None, env={"MIRRORD_CONFIG_FILE": str(path)})
    assert result.config is not None and result.config.target.path == "pid/1"
    assert load_config(None, env={}).config == ResolvedConfig()


def test_environment_overrides_the_file(tmp_path: Path) -> None:
    path = tmp_path / "m.json"
    path.write_text(
        '{"target": "pod/a", "feature": {"network": {"incoming": {"mode": "mirror", '
        '"http_filter": {"path_filter": "^/x"}}}}}'
    )
    env = {
        "MIRRORD_IMPERSONATED_TARGET": "netns/demo",
        "MIRRORD_TARGET_NAMESPACE": "ns",
        "MIRRORD_AGENT_TCP_STEAL_TRAFFIC": "true",
        "MIRRORD_HTTP_HEADER_FILTER": "^X-Me:",
        "MIRRORD_HTTP_FILTER_PORTS": "3000,3001",
        "MIRRORD_TCP_OUTGOING": "false",
        "MIRRORD_UDP_OUTGOING": "False",
        "MIRRORD_REMOTE_DNS": "0",
        "MIRRORD_AGENT_NAMESPACE": "agents",
        "MIRRORD_AGENT_IMAGE": "img:1",
        "MIRRORD_KUBE_CONTEXT": "ctx",
        "MIRRORD_KUBECONFIG": "/k",
    }
    config = load_config(str(path), env=env).config
    assert config is not None
    assert (config.target.path, config.target.namespace) == ("netns/demo", "ns")
    assert config.incoming.mode == "steal"
    # The environment's filter replaces the file's filter rather than mixing with it.
    assert config.incoming.http_filter == HttpFilterConfig(header_filter="^X-Me:", ports=(3000, 3001))
    assert not config.outgoing.tcp and not config.outgoing.udp and not config.dns.enabled
    assert (config.agent.namespace, config.agent.image) == ("agents", "img:1")
    assert (config.kube_context, config.kubeconfig) == ("ctx", "/k")


def test_bad_environment_values_name_the_variable() -> None:
    result = load_config(
        None,
        env={
            "MIRRORD_TCP_OUTGOING": "maybe",
            "MIRRORD_HTTP_FILTER_PORTS": "80,http",
            "MIRRORD_IMPERSONATED_TARGET": "cluster/x",
            "MIRRORD_AGENT_TCP_STEAL_TRAFFIC": "true",
            "MIRRORD_HTTP_PATH_FILTER": "(",
        },
    )
    assert result.config is None
    messages = [d.message for d in result.errors]
    assert any(m.startswith("MIRRORD_TCP_OUTGOING='maybe'") for m in messages)
    assert any(m.startswith("MIRRORD_HTTP_FILTER_PORTS=") for m in messages)
    assert any(m.startswith("MIRRORD_IMPERSONATED_TARGET=") for m in messages)
    regex_error = only(
        result.diagnostics, "error", "MIRRORD_HTTP_PATH_FILTER is not a valid regular expression"
    )
    assert regex_error.file is None and regex_error.line == 0


def test_empty_environment_values_are_ignored() -> None:
    assert load_config(None, env={"MIRRORD_TCP_OUTGOING": ""}).config == ResolvedConfig()


def test_command_line_beats_environment_beats_file(tmp_path: Path) -> None:
    path = tmp_path / "m.json"
    path.write_text('{"target": "pod/file", "feature": {"network": {"incoming": "off"}}}')
    env = {"MIRRORD_IMPERSONATED_TARGET": "pod/env", "MIRRORD_AGENT_TCP_STEAL_TRAFFIC": "false"}
    config, warnings = resolve_config(
        str(path), env=env, overrides=ConfigOverrides(target="pod/cli", steal=True, no_outgoing=True)
    )
    assert config.target.path == "pod/cli"
    assert config.incoming.mode == "steal"
    assert not config.outgoing.tcp and not config.outgoing.udp
    assert any("health probes" in w.message for w in warnings)
    config, _ = resolve_config(
        str(path), env=env, overrides=ConfigOverrides(no_tcp_outgoing=True, no_remote_dns=True)
    )
    assert config.target.path == "pod/env" and config.incoming.mode == "mirror"
    assert not config.outgoing.tcp and config.outgoing.udp and not config.dns.enabled


def test_resolve_config_raises_with_every_located_error(tmp_path: Path) -> None:
    path = tmp_path / "m.json"
    text = '{\n  "target": "nope",\n  "agent": {"ttl": -1}\n}\n'
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        resolve_config(str(path), env={})
    error = caught.value
    assert "2 errors" in error.message
    line, column = position_of(text, '"nope"')
    assert f"{path}:{line}:{column}: error: target must be" in error.message
    line, column = position_of(text, "-1")
    assert f"{path}:{line}:{column}: error: agent.ttl must be at least 0" in error.message
    assert "verify-config" in error.hint
    assert len(error.diagnostics) == 2


def test_resolve_config_rejects_a_bad_cli_target() -> None:
    with pytest.raises(ConfigError) as caught:
        resolve_config(None, env={}, overrides=ConfigOverrides(target="pods/x"))
    assert "--target 'pods/x' is not a valid target" in caught.value.message


def test_schema_errors_do_not_hide_semantic_errors_elsewhere() -> None:
    text = json.dumps(
        {
            "feature": {"network": {"incoming": {"mode": "steal", "http_filter": {"header_filter": "(a"}}}},
            "agent": {"ttl": "five"},
            "bogus": 1,
        }
    )
    messages = [
        d.message for d in check_text(text, filename="mirrord.json").diagnostics if d.severity == "error"
    ]
    assert any("ttl" in m for m in messages)
    assert any("bogus" in m for m in messages)
    assert any("not a valid regular expression" in m for m in messages)


def test_a_bad_item_in_a_filter_list_is_reported_without_crashing_the_checks() -> None:
    text = json.dumps(
        {"feature": {"network": {"incoming": {"http_filter": {"all_of": [{"header": "a", "path": 1}]}}}}}
    )
    result = check_text(text, filename="mirrord.json")
    assert result.config is None and result.errors
