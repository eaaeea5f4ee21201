"""Shipped example configs and the schema corpus: valid ones pass, invalid ones fail at the right place."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from pymirrord.config import check_text
from pymirrord.config.verify import run_verify_config

ROOT = Path(__file__).resolve().parents[2]
VALID = sorted(
    [*(ROOT / "examples" / "configs").iterdir(), *(ROOT / "schema" / "examples" / "valid").iterdir()]
)
INVALID_DIR = ROOT / "schema" / "examples" / "invalid"

# file -> (line, column, words of the first error). Every file in schema/examples/invalid must be listed.
INVALID: dict[str, tuple[int, int, str]] = {
    "bad-indentation.yaml": (6, 6, "invalid YAML"),
    "body-filter-unsupported.json": (8, 11, "does not support HTTP body filters"),
    "comment-in-json.json": (2, 27, "comments are not allowed in JSON"),
    "duplicate-port-mapping-source.json": (5, 39, "local port 9000 appears in two port_mapping entries"),
    "env-include-bad-pattern.json": (5, 45, "'FEATURE_FLAGS=on' is not a valid name pattern"),
    "incoming-mode-misspelled.json": (3, 51, 'must be "mirror", "steal" or "off"'),
    "inner-filter-two-keys.json": (9, 13, "all_of[0] must be exactly one of"),
    "missing-equals.toml": (4, 6, "invalid TOML"),
    "outgoing-filter-bad-protocol.json": (5, 53, "unknown protocol 'http'"),
    "outgoing-filter-bad-subnet.json": (5, 31, "'10.0.0.0/33' is not a valid subnet"),
    "port-out-of-range.json": (5, 25, "70000 is not a valid port number"),
    "ports-with-ignore-ports.json": (6, 9, "cannot be used together"),
    "regex-invalid.toml": (7, 31, "min repeat greater than max repeat"),
    "regex-invalid.yaml": (7, 29, "this ( is never closed"),
    "regex-unbalanced-paren.json": (7, 52, "this [ is never closed"),
    "steal-targetless.json": (5, 19, "steal needs a target"),
    "target-unknown-kind.json": (2, 13, "target must be a target such as"),
    "trailing-comma.json": (4, 16, "trailing comma"),
    "two-filter-kinds.json": (9, 11, "sets both header_filter and path_filter"),
    "unknown-key-typo.json": (5, 9, 'unknown key "mdoe"'),
    "wrong-type-ttl.json": (3, 12, 'agent.ttl must be an integer, not the string "30"'),
}


@pytest.mark.parametrize("path", VALID, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_valid_configs_verify_as_success(path: Path) -> None:
    out = io.StringIO()
    assert run_verify_config(str(path), ide=False, out=out) == 0, out.getvalue()
    result = check_text(path.read_text(), filename=path.name)
    assert result.config is not None
    for warning in result.warnings:
        assert warning.line > 0


def test_every_invalid_example_is_listed() -> None:
    assert sorted(p.name for p in INVALID_DIR.iterdir()) == sorted(INVALID)


@pytest.mark.parametrize("name", sorted(INVALID))
def test_invalid_configs_fail_at_the_stated_place(name: str) -> None:
    path = INVALID_DIR / name
    line, column, words = INVALID[name]
    out = io.StringIO()
    assert run_verify_config(str(path), ide=False, out=out) == 1
    result = check_text(path.read_text(), filename=str(path))
    assert result.config is None
    first = result.errors[0]
    assert words in first.message, first
    assert (first.line, first.column) == (line, column), first
    assert f"{path}:{line}:{column}: error: " in out.getvalue()


def test_real_world_mirrord_file_only_warns_about_unimplemented_keys() -> None:
    path = ROOT / "schema" / "examples" / "valid" / "mirrord-complete.json"
    result = check_text(path.read_text(), filename=path.name)
    assert result.config is not None
    ignored = {d.pointer for d in result.warnings if "does not implement" in d.message}
    assert {"/operator", "/feature/fs", "/feature/copy_target", "/agent/json_log", "/telemetry"} <= ignored
    others = [d.message for d in result.warnings if "does not implement" not in d.message]
    # Besides unimplemented keys, the file sets include and exclude together, and relies on the default
    # HTTP ports; both are worth knowing.
    assert len(others) == 2, others
