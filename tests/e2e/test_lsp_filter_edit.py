"""The filter editor's requests against the real helper: read a config's filter, write one back."""

from __future__ import annotations

from pathlib import Path

import pytest

from e2e.text_edits import apply_text_edits
from pymirrord.server.rpc_client import HelperClient, RpcError

TOML = '# the team\'s config\ntarget = "netns/shop"\n\n[feature.network]\nincoming = "steal"  # é\n'


def test_filter_document_reads_the_file_on_disk(helper: HelperClient, tmp_path: Path) -> None:
    config = tmp_path / ".mirrord" / "mirrord.toml"
    config.parent.mkdir()
    config.write_text(TOML, encoding="utf-8")
    shown = helper.request("pymirrord/filterDocument", {"uri": config.as_uri()})
    assert shown == {
        "uri": config.as_uri(),
        "version": None,
        "format": "toml",
        "mode": "steal",
        "filter": None,
        "error": None,
    }


def test_filter_edit_writes_the_open_document_and_diagnostics_follow(
    helper: HelperClient, tmp_path: Path
) -> None:
    uri = (tmp_path / ".mirrord" / "mirrord.toml").as_uri()
    helper.open(uri, TOML, language_id="toml")
    before = helper.diagnostics(uri, version=1)
    assert [d["message"].split(" without")[0] for d in before] == ["steal"]
    http_filter = {"header_filter": "^X-User: (alice|bob)", "ports": [8080]}
    result = helper.request("pymirrord/filterEdit", {"uri": uri, "filter": http_filter})
    assert result["version"] == 1 and len(result["edits"]) == 1
    written = apply_text_edits(TOML, result["edits"])
    assert written.startswith(TOML.split("incoming", maxsplit=1)[0])
    assert 'incoming = { mode = "steal", http_filter = { header_filter = "^X-User: (alice|bob)"' in written
    assert written.endswith("  # é\n")
    helper.change(uri, written, version=2)
    assert helper.diagnostics(uri, version=2) == []
    shown = helper.request("pymirrord/filterDocument", {"uri": uri})
    assert (shown["version"], shown["filter"]) == (2, http_filter)
    # The same filter again: nothing to change.
    assert helper.request("pymirrord/filterEdit", {"uri": uri, "filter": http_filter})["edits"] == []


def test_a_config_that_does_not_parse_is_shown_and_never_edited(helper: HelperClient, tmp_path: Path) -> None:
    uri = (tmp_path / "mirrord.json").as_uri()
    helper.open(uri, '{\n  "target": "a",\n  "feature": {\n}\n')
    shown = helper.request("pymirrord/filterDocument", {"uri": uri})
    assert shown["filter"] is None
    assert shown["error"]["message"].startswith("the file does not parse: invalid JSON")
    assert shown["error"]["line"] == 5
    with pytest.raises(RpcError) as raised:
        helper.request("pymirrord/filterEdit", {"uri": uri, "filter": {"path_filter": "^/api"}})
    assert raised.value.code == -32001
    assert "does not parse" in raised.value.message


def test_filter_requests_name_what_is_missing(helper: HelperClient, tmp_path: Path) -> None:
    with pytest.raises(RpcError, match="uri is missing"):
        helper.request("pymirrord/filterDocument", {})
    with pytest.raises(RpcError, match="not a pymirrord config file"):
        helper.request("pymirrord/filterDocument", {"uri": (tmp_path / "app.py").as_uri()})
    with pytest.raises(RpcError, match="filter is missing"):
        helper.request("pymirrord/filterEdit", {"uri": (tmp_path / "mirrord.json").as_uri()})
    with pytest.raises(RpcError, match="config file not found"):
        helper.request("pymirrord/filterDocument", {"uri": (tmp_path / "none" / "mirrord.json").as_uri()})


def test_config_files_have_an_edit_filter_lens(helper: HelperClient, tmp_path: Path) -> None:
    uri = (tmp_path / ".mirrord" / "mirrord.yaml").as_uri()
    helper.open(uri, "target: a\nfeature:\n  network:\n    incoming: steal\n", language_id="yaml")
    lenses = helper.request("textDocument/codeLens", {"textDocument": {"uri": uri}})
    assert lenses == [
        {
            "range": {"start": {"line": 3, "character": 0}, "end": {"line": 3, "character": 0}},
            "command": {
                "title": "Edit HTTP filter…",
                "command": "pymirrord.editFilter",
                "arguments": [uri],
            },
        }
    ]
