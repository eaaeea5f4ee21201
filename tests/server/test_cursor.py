from __future__ import annotations

import pytest

from pymirrord.config.sources import Format
from pymirrord.server.cursor import CursorContext, context_at


def at(fmt: Format, marked: str) -> CursorContext | None:
    offset = marked.index("|")
    return context_at(marked.replace("|", "", 1), offset, fmt)


@pytest.mark.parametrize(
    ("fmt", "marked", "kind", "path", "prefix"),
    [
        (
            "json",
            '{"feature": {"network": {"incoming": {"mo|"}}}}',
            "key",
            ("feature", "network", "incoming"),
            "mo",
        ),
        (
            "json",
            '{"feature": {"network": {"incoming": {"mode": "st|',
            "value",
            ("feature", "network", "incoming", "mode"),
            "st",
        ),
        ("json", '{"a": [1, 2], "target": tr|}', "value", ("target",), "tr"),
        (
            "json",
            '{"f": {"http_filter": {"all_of": [{"x": 1}, {"|',
            "key",
            ("f", "http_filter", "all_of", 1),
            "",
        ),
        (
            "yaml",
            "feature:\n  network:\n    incoming:\n      mo|\n",
            "key",
            ("feature", "network", "incoming"),
            "mo",
        ),
        (
            "yaml",
            "a:\n  all_of:\n    - header: x\n    - path: y\n      me|\n",
            "key",
            ("a", "all_of", 1),
            "me",
        ),
        ("yaml", "a:\n  all_of:\n  - header: x\n  - pa|\n", "key", ("a", "all_of", 1), "pa"),
        (
            "yaml",
            "feature:\n  network:\n    incoming: st|\n",
            "value",
            ("feature", "network", "incoming"),
            "st",
        ),
        (
            "toml",
            '[feature.network.incoming]\nmode = "st|"\n',
            "value",
            ("feature", "network", "incoming", "mode"),
            "st",
        ),
        ("toml", "[[a.b]]\nx = 1\n[[a.b]]\ny|\n", "key", ("a", "b", 1), "y"),
    ],
)
def test_contexts(fmt: Format, marked: str, kind: str, path: tuple[object, ...], prefix: str) -> None:
    context = at(fmt, marked)
    assert context is not None
    assert (context.kind, context.path, context.prefix) == (kind, path, prefix)


def test_existing_keys_include_those_after_the_cursor() -> None:
    context = at("json", '{"target": "x", "|": 1, "agent": {}}')
    assert context is not None and context.existing == {"target", "agent"}
    context = at("yaml", "target: x\n|\nagent:\n  ttl: 1\n")
    assert context is not None and context.existing == {"target", "agent"}


def test_nothing_to_type_between_a_key_and_its_colon() -> None:
    assert at("json", '{"target" | : 1}') is None
    assert at("yaml", "# a comment |\n") is None
