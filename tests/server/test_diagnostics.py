from __future__ import annotations

from pymirrord.server.diagnostics import config_diagnostics


def test_regex_error_is_underlined_at_its_character_in_utf16() -> None:
    text = (
        '{"target": "pod/😀", "feature": {"network": {"incoming": {"mode": "steal",\n'
        ' "http_filter": {"header_filter": "😀(a"}}}}}'
    )
    found = {d.code: d for d in config_diagnostics(text, "m.json")}
    regex = found["invalid-regex"]
    line = text.splitlines()[1]
    # The ( comes after an astral character: two UTF-16 units.
    assert (regex.range.start.line, regex.range.start.character) == (1, line.index("(") + 1)
    assert regex.range.end.character == regex.range.start.character + 1


def test_deprecated_forms_are_hints_with_their_replacement() -> None:
    (found,) = config_diagnostics('{"target": "deploy/api"}', "m.json")
    assert found.code == "deprecated-form" and found.data == {
        "pointer": "/target",
        "replacement": "deployment/api",
    }


def test_unreadable_problems_sit_on_the_first_line() -> None:
    (found,) = config_diagnostics("{}", "m.txt")
    assert found.range.start.line == 0 and "format" in found.message
