"""``pymirrord verify-config`` as a user runs it: the installed console script, as a subprocess."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _executable() -> str:
    beside = Path(sys.executable).parent / "pymirrord"
    found = str(beside) if beside.exists() else shutil.which("pymirrord")
    if found is None:
        pytest.fail("the pymirrord console script is not installed; run scripts/setup.sh --dev")
    return found


def _run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [_executable(), "verify-config", *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd,
        check=False,
    )


def test_shipped_examples_verify() -> None:
    for path in sorted((ROOT / "examples" / "configs").iterdir()):
        result = _run(str(path))
        assert result.returncode == 0, result.stdout + result.stderr
        assert result.stderr == ""


def test_error_report_with_caret_and_exit_status(tmp_path: Path) -> None:
    config = tmp_path / "mirrord.json"
    bad_line = '    "http_filter": {"path_filter": "^/a(b", "ports": [80]}}}}'
    config.write_text('{\n  "feature": {"network": {"incoming": {"mode": "steal",\n' + bad_line + "\n}\n")
    result = _run(str(config))
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    column = bad_line.index("(") + 1
    assert lines[0] == (
        f"{config}:3:{column}: error: feature.network.incoming.http_filter.path_filter is not a valid "
        "regular expression: this ( is never closed (at character 4)"
    )
    assert lines[1] == "    " + bad_line
    assert lines[2] == "    " + " " * (column - 1) + "^"
    assert lines[-1] == f"{config}: invalid (1 error)"
    assert "Traceback" not in result.stdout + result.stderr


@pytest.mark.parametrize(
    ("name", "content", "words"),
    [
        ("c.json", "{ // hello\n}", "comments are not allowed in JSON"),
        ("y.yaml", "a: [1,\n", "invalid YAML"),
        ("t.toml", "a = \n", "invalid TOML"),
        ("x.ini", "{}", "cannot tell the format"),
    ],
)
def test_unreadable_content_is_a_clear_error(tmp_path: Path, name: str, content: str, words: str) -> None:
    path = tmp_path / name
    path.write_text(content)
    result = _run(str(path))
    assert result.returncode == 1
    assert words in result.stdout
    assert "Traceback" not in result.stdout + result.stderr


def test_missing_file(tmp_path: Path) -> None:
    result = _run(str(tmp_path / "nope.json"))
    assert result.returncode == 1
    assert result.stdout.startswith(f"{tmp_path / 'nope.json'}: error: config file not found")


def test_ide_output_is_mirrords_json(tmp_path: Path) -> None:
    good = _run("--ide", str(ROOT / "examples" / "configs" / "steal-header-filter.json"))
    assert good.returncode == 0
    payload = json.loads(good.stdout)
    assert payload["type"] == "Success"
    assert payload["config"] == {"path": "netns/demo", "namespace": None}
    assert "netns" in payload["compatible_target_types"]
    bad_path = tmp_path / "bad.json"
    bad_path.write_text('{"target": 5}')
    bad = _run("--ide", str(bad_path))
    assert bad.returncode == 0
    assert json.loads(bad.stdout)["type"] == "Fail"
