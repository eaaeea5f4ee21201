from __future__ import annotations

from typing import Any

import pytest

from pymirrord.config.sources import Format, parse_source
from pymirrord.server.errors import HelperError
from pymirrord.server.filter_edit import (
    apply_edit,
    filter_document,
    filter_edit,
    filter_lens_offset,
)

HEADER = {"header_filter": "^X-User: alice", "ports": [80, 8080]}
ALL_OF = {"all_of": [{"header": "^X-A: 1"}, {"path": "^/api"}]}


def _written(text: str, fmt: Format, http_filter: dict[str, Any] | None) -> str:
    edit = filter_edit(text, fmt, http_filter)
    return text if edit is None else apply_edit(text, edit)


def _filter_of(text: str, fmt: Format) -> Any:
    data = parse_source(text, fmt).data
    return data.get("feature", {}).get("network", {}).get("incoming", {}).get("http_filter")


@pytest.mark.parametrize(
    ("fmt", "before", "after"),
    [
        (
            "json",
            '{\n  "target": "pod/a", // not JSON, but kept\n}',
            None,
        ),
        (
            "json",
            '{\n    "target": "pod/a"\n}\n',
            '{\n    "target": "pod/a",\n    "feature": {\n        "network": {\n            "incoming": {\n'
            '                "http_filter": {\n                    "header_filter": "^X-User: alice",\n'
            '                    "ports": [80, 8080]\n                }\n'
            "            }\n        }\n    }\n}\n",
        ),
        (
            "json",
            '{"feature": {"network": {"incoming": "steal"}}, "target": "a"}',
            '{"feature": {"network": {"incoming": {"mode": "steal", "http_filter": '
            '{"header_filter": "^X-User: alice", "ports": [80, 8080]}}}}, "target": "a"}',
        ),
        (
            "yaml",
            "# top\nfeature:\n  network:\n    incoming: steal  # mode\n    outgoing: true\ntarget: a\n",
            "# top\nfeature:\n  network:\n    incoming:\n      mode: steal\n      http_filter:\n"
            '        header_filter: "^X-User: alice"\n        ports: [80, 8080]\n'
            "    outgoing: true\ntarget: a\n",
        ),
        (
            "yaml",
            "feature:\n    network:\n        incoming:\n            mode: steal\n            http_filter:\n"
            "                path_filter: x\n\n        # note\n        dns: true\n",
            "feature:\n    network:\n        incoming:\n            mode: steal\n            http_filter:\n"
            '                header_filter: "^X-User: alice"\n                ports: [80, 8080]\n\n'
            "        # note\n        dns: true\n",
        ),
        (
            "yaml",
            "{feature: {network: {incoming: {mode: steal}}}}\n",
            '{feature: {network: {incoming: {mode: steal, "http_filter": '
            '{"header_filter": "^X-User: alice", "ports": [80, 8080]}}}}}\n',
        ),
        (
            "toml",
            '[feature.network]\nincoming = "steal" # m\n\n[target]\npath = "a"\n',
            '[feature.network]\nincoming = { mode = "steal", http_filter = '
            '{ header_filter = "^X-User: alice", ports = [80, 8080] } } # m\n\n[target]\npath = "a"\n',
        ),
        (
            "toml",
            '[feature.network.incoming]\nmode = "steal"\n\n[target]\npath = "a"\n',
            '[feature.network.incoming]\nmode = "steal"\n\n[feature.network.incoming.http_filter]\n'
            'header_filter = "^X-User: alice"\nports = [80, 8080]\n\n[target]\npath = "a"\n',
        ),
        (
            "toml",
            '[feature.network.incoming]\nmode = "steal"\n\n[feature.network.incoming.http_filter]\n'
            'path_filter = "x"\n\n# end\n',
            '[feature.network.incoming]\nmode = "steal"\n\n[feature.network.incoming.http_filter]\n'
            'header_filter = "^X-User: alice"\nports = [80, 8080]\n\n# end\n',
        ),
        (
            "toml",
            '[feature.network.incoming]\nmode = "steal"\nhttp_filter = { path_filter = "x" } # c\n',
            '[feature.network.incoming]\nmode = "steal"\n'
            'http_filter = { header_filter = "^X-User: alice", ports = [80, 8080] } # c\n',
        ),
    ],
)
def test_the_filter_is_written_in_the_files_own_style(fmt: Format, before: str, after: str | None) -> None:
    if after is None:
        with pytest.raises(HelperError, match="does not parse") as raised:
            filter_edit(before, fmt, HEADER)
        assert raised.value.data["line"] == 2
        return
    assert _written(before, fmt, HEADER) == after


CONFIGS: list[tuple[Format, str]] = [
    ("json", "{}"),
    ("json", '{\n  "target": "pod/a",\n  "feature": {"network": {"incoming": {"mode": "mirror"}}}\n}\n'),
    ("json", '{"feature": {"network": {"incoming": {"http_filter": {"path_filter": "x"}}}}}'),
    ("yaml", ""),
    ("yaml", "target: pod/a\r\nfeature:\r\n  network:\r\n    dns: false\r\n"),
    ("yaml", "feature:\n  network:\n    incoming:\n      http_filter: {path_filter: x}\n"),
    ("toml", ""),
    ("toml", 'target = "pod/a"\n'),
    ("toml", '[feature.network]\nincoming = { mode = "steal" }\n'),
    ("toml", '[feature]\nnetwork.incoming.mode = "steal"\n'),
    ("json", '{\r\n\t"feature": {\r\n\t\t"network": {"dns": false}\r\n\t}\r\n}'),
    ("yaml", "feature:\n  network:\n    incoming:\n      mode: steal\n# last words"),
    ("toml", '[feature.network.incoming]\r\nmode = "steal"\r\n\r\n[agent]\r\nttl = 5'),
]


@pytest.mark.parametrize(("fmt", "text"), CONFIGS)
@pytest.mark.parametrize("http_filter", [HEADER, ALL_OF, {"method_filter": "POST", "ports": [8080]}])
def test_every_layout_reads_back_with_only_the_filter_changed(
    fmt: Format, text: str, http_filter: dict[str, Any]
) -> None:
    before = parse_source(text, fmt).data
    written = _written(text, fmt, http_filter)
    assert _filter_of(written, fmt) == http_filter
    after = parse_source(written, fmt).data
    after["feature"]["network"]["incoming"].pop("http_filter")
    for key, value in before.items():
        if key != "feature":
            assert after[key] == value
    # Writing it again changes nothing; removing it gives a config without a filter.
    assert filter_edit(written, fmt, http_filter) is None
    assert _filter_of(_written(written, fmt, None), fmt) is None


def test_removing_keeps_what_follows_the_filter() -> None:
    text = "feature:\n  network:\n    incoming:\n      mode: steal\n"
    text += "      http_filter:\n        path_filter: x\n"
    text += "    # outgoing next\n    outgoing: false\n"
    assert _written(text, "yaml", None) == (
        "feature:\n  network:\n    incoming:\n      mode: steal\n    # outgoing next\n    outgoing: false\n"
    )
    alone = "feature:\n  network:\n    incoming:\n      http_filter:\n        path_filter: x"
    assert _written(alone, "yaml", None) == "feature:\n  network:\n    incoming: {}"
    toml = '[feature.network.incoming.http_filter]\npath_filter = "x"\n\n# kept\n[target]\npath = "a"\n'
    assert _written(toml, "toml", None) == '\n# kept\n[target]\npath = "a"\n'
    assert filter_edit('{"feature": {"network": {"incoming": "steal"}}}', "json", None) is None


def test_a_layout_it_cannot_edit_in_place_is_refused_whole() -> None:
    # The filter written as dotted keys: rewriting it would mean moving lines around.
    text = '[feature.network.incoming]\nhttp_filter.path_filter = "x"\n'
    with pytest.raises(HelperError, match="cannot write the filter here") as raised:
        filter_edit(text, "toml", HEADER)
    assert raised.value.hint.startswith("edit feature.network.incoming.http_filter by hand")
    assert '"^X-User: alice"' in raised.value.hint


def test_a_filter_that_is_not_an_object_is_refused() -> None:
    with pytest.raises(HelperError, match="http_filter object"):
        filter_edit("{}", "json", ["x"])  # type: ignore[arg-type]


def test_the_document_gives_mode_filter_or_the_parse_error() -> None:
    assert filter_document('{"feature": {"network": {"incoming": "steal"}}}', "json") == {
        "format": "json",
        "mode": "steal",
        "filter": None,
        "error": None,
    }
    shown = filter_document("[feature.network.incoming]\nhttp_filter = { path_filter = 'x' }\n", "toml")
    assert (shown["mode"], shown["filter"]) == ("mirror", {"path_filter": "x"})
    broken = filter_document("feature:\n  network: [\n", "yaml")
    assert broken["filter"] is None
    assert broken["error"]["message"].startswith("the file does not parse: invalid YAML")
    assert broken["error"]["line"] >= 2


def test_the_lens_sits_on_the_filter_or_on_incoming() -> None:
    text = '{\n  "feature": {"network": {\n    "incoming": {"http_filter": {}}}}\n}'
    assert filter_lens_offset(text, "json") == text.index('    "incoming"')
    yaml_text = "target: a\nfeature:\n  network:\n    incoming: steal\n"
    assert filter_lens_offset(yaml_text, "yaml") == yaml_text.index("    incoming")
    assert filter_lens_offset("{", "json") == 0
