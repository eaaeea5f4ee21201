"""The typed model: it cannot drift from the schema, and it survives a trip through JSON unchanged."""

from __future__ import annotations

import dataclasses
import typing
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pymirrord.config.build import build
from pymirrord.config.model import (
    SCHEMA_FIELDS,
    FilterRule,
    HttpFilterConfig,
    IncomingConfig,
    InnerFilter,
    ResolvedConfig,
    TrafficFilter,
)
from pymirrord.config.schema import IGNORED, UNSUPPORTED, property_paths


def _model_fields(cls: type, prefix: str = "") -> dict[str, Any]:
    """Every model field path; nested dataclasses are walked unless SCHEMA_FIELDS maps the whole field."""
    mapped = set(SCHEMA_FIELDS.values())
    found: dict[str, Any] = {}
    hints = typing.get_type_hints(cls)
    for field in dataclasses.fields(cls):
        path = f"{prefix}{field.name}"
        annotation = hints[field.name]
        nested = [
            a
            for a in typing.get_args(annotation) or (annotation,)
            if isinstance(a, type) and dataclasses.is_dataclass(a)
        ]
        if nested and path not in mapped:
            found.update(_model_fields(nested[0], path + "."))
        else:
            found[path] = annotation
    return found


def _covered(pointer: str) -> bool:
    parts = pointer.split("/")
    for length in range(len(parts), 1, -1):
        ancestor = "/".join(parts[:length])
        node = property_paths().get(ancestor, {})
        if ancestor in SCHEMA_FIELDS or node.get(IGNORED) or node.get(UNSUPPORTED):
            return True
    return False


def test_every_schema_property_maps_to_a_model_field_or_is_ignored() -> None:
    paths = property_paths()
    # Sections such as /feature or /agent only group other properties; their leaves are what must map.
    leaves = [p for p in paths if not any(other.startswith(p + "/") for other in paths)]
    assert [pointer for pointer in leaves if not _covered(pointer)] == []


def test_every_mapped_pointer_exists_in_the_schema_and_every_field_exists_in_the_model() -> None:
    fields = _model_fields(ResolvedConfig)
    for pointer, field in SCHEMA_FIELDS.items():
        assert pointer in property_paths(), pointer
        assert field in fields, field
        assert not property_paths()[pointer].get(IGNORED), pointer


def test_every_model_field_is_filled_from_the_schema() -> None:
    assert set(_model_fields(ResolvedConfig)) == set(SCHEMA_FIELDS.values())


def test_model_defaults_equal_the_schema_defaults() -> None:
    assert build({}) == ResolvedConfig()


def test_http_filter_ports_default_to_80_and_8080() -> None:
    assert HttpFilterConfig().ports == (80, 8080)


def _text() -> st.SearchStrategy[str]:
    return st.text(max_size=12)


_ports = st.integers(min_value=1, max_value=65535)
_rules = st.builds(
    FilterRule,
    protocol=st.sampled_from(["any", "tcp", "udp"]),
    host_kind=st.sampled_from(["any", "name", "ip", "subnet"]),
    host=st.none() | _text(),
    port=st.none() | _ports,
)
_inner = st.builds(InnerFilter, kind=st.sampled_from(["header", "path", "method"]), value=_text())
_http = st.builds(
    HttpFilterConfig,
    header_filter=st.none() | _text(),
    path_filter=st.none() | _text(),
    method_filter=st.none() | _text(),
    all_of=st.none() | st.tuples(_inner) | st.tuples(_inner, _inner),
    any_of=st.none() | st.lists(_inner, max_size=3).map(tuple),
    ports=st.lists(_ports, max_size=3).map(tuple),
)
_pairs = st.lists(st.tuples(_ports, _ports), max_size=3).map(tuple)
_configs = st.builds(
    ResolvedConfig,
    incoming=st.builds(
        IncomingConfig,
        mode=st.sampled_from(["mirror", "steal", "off"]),
        http_filter=st.none() | _http,
        ports=st.none() | st.lists(_ports, max_size=3).map(tuple),
        ignore_ports=st.lists(_ports, max_size=3).map(tuple),
        port_mapping=_pairs,
        listen_ports=_pairs,
        ignore_localhost=st.booleans(),
    ),
    outgoing=st.builds(
        lambda tcp, udp, rules: dataclasses.replace(
            ResolvedConfig().outgoing, tcp=tcp, udp=udp, filter=rules
        ),
        st.booleans(),
        st.booleans(),
        st.none()
        | st.builds(
            TrafficFilter,
            mode=st.sampled_from(["remote", "local"]),
            rules=st.lists(_rules, max_size=3).map(tuple),
        ),
    ),
    kubeconfig=st.none() | _text(),
    skip_processes=st.lists(_text(), max_size=3).map(tuple),
)


@given(_configs)
def test_json_round_trip_is_exact(config: ResolvedConfig) -> None:
    assert ResolvedConfig.from_json(config.to_json()) == config


def test_round_trip_of_every_example_config() -> None:
    from pathlib import Path

    from pymirrord.config import load_config

    root = Path(__file__).resolve().parents[2]
    for path in sorted((root / "examples" / "configs").iterdir()):
        config = load_config(str(path), env={}).config
        assert config is not None, path
        assert ResolvedConfig.from_json(config.to_json()) == config


@pytest.mark.parametrize(
    "text",
    [
        "not json",
        "[]",
        '{"target": {}}',
        ResolvedConfig().to_json().replace('"mode":"mirror"', '"mode":"borrow"'),
        ResolvedConfig().to_json().replace('"ttl":1', '"ttl":"1"'),
        ResolvedConfig().to_json().replace('"ttl":1', '"ttl":1,"extra":2'),
    ],
)
def test_from_json_rejects_what_to_json_cannot_produce(text: str) -> None:
    with pytest.raises(ValueError):
        ResolvedConfig.from_json(text)
