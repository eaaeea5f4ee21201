"""verify-config's two outputs: the human report with source line and caret, and mirrord's --ide JSON."""

from __future__ import annotations

import io
import json
from pathlib import Path

from pymirrord.config.targets import compatible_target_types
from pymirrord.config.verify import run_verify_config


def _run(path: Path, *, ide: bool = False) -> tuple[int, str]:
    out = io.StringIO()
    status = run_verify_config(str(path), ide=ide, out=out)
    return status, out.getvalue()


def test_human_report_shows_place_source_line_caret_and_hint(tmp_path: Path) -> None:
    path = tmp_path / "mirrord.json"
    path.write_text('{\n  "feature": {\n\t"netwrok": true\n  }\n}\n')
    status, output = _run(path)
    assert status == 1
    lines = output.splitlines()
    assert lines[0] == f'{path}:3:2: error: unknown key "netwrok" in feature'
    assert lines[1] == '    \t"netwrok": true'
    # The caret keeps the tab, so it lines up whatever the terminal's tab width.
    assert lines[2] == "    \t^~~~~~~~~"
    assert lines[3].startswith('  hint: did you mean "network"?')
    assert lines[-1] == f"{path}: invalid (1 error)"


def test_warnings_only_exit_zero(tmp_path: Path) -> None:
    path = tmp_path / "mirrord.json"
    path.write_text('{"operator": false}')
    status, output = _run(path)
    assert status == 0
    assert f"{path}:1:2: warning: operator is a mirrord setting" in output
    assert output.splitlines()[-1] == f"{path}: valid (1 warning)"


def test_clean_file_says_ok(tmp_path: Path) -> None:
    path = tmp_path / "mirrord.toml"
    path.write_text('target = "netns/demo"\n')
    assert _run(path) == (0, f"{path}: OK\n")


def test_missing_file_is_one_clear_line(tmp_path: Path) -> None:
    path = tmp_path / "absent.json"
    status, output = _run(path)
    assert status == 1
    assert output.splitlines()[0] == f"{path}: error: config file not found"
    assert "Traceback" not in output


def test_ide_success_shape(tmp_path: Path) -> None:
    path = tmp_path / "mirrord.json"
    path.write_text('{"target": {"path": "pod/api", "namespace": "shop"}, "feature": {"fs": "read"}}')
    status, output = _run(path, ide=True)
    assert status == 0
    payload = json.loads(output)
    assert payload["type"] == "Success"
    assert payload["config"] == {"path": "pod/api", "namespace": "shop"}
    assert len(payload["warnings"]) == 1 and "feature.fs" in payload["warnings"][0]
    assert payload["compatible_target_types"] == compatible_target_types()
    assert set(payload) == {"type", "config", "warnings", "compatible_target_types"}


def test_ide_keeps_an_unset_target_null(tmp_path: Path) -> None:
    path = tmp_path / "mirrord.json"
    path.write_text("{}")
    payload = json.loads(_run(path, ide=True)[1])
    assert payload["config"] == {"path": None, "namespace": None}
    assert payload["warnings"] == []


def test_ide_targetless(tmp_path: Path) -> None:
    path = tmp_path / "mirrord.json"
    path.write_text('{"target": "targetless"}')
    assert json.loads(_run(path, ide=True)[1])["config"]["path"] == "targetless"


def test_ide_fail_shape_exits_zero(tmp_path: Path) -> None:
    path = tmp_path / "mirrord.json"
    path.write_text('{"target": "nope", // comment\n}')
    status, output = _run(path, ide=True)
    assert status == 0
    payload = json.loads(output)
    assert payload["type"] == "Fail"
    assert set(payload) == {"type", "errors"}
    assert "comments are not allowed" in payload["errors"][0]
    assert "line 1, column 20" in payload["errors"][0]
