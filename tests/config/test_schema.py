"""The schema file itself: valid 2020-12, documented and defaulted throughout, annotations coherent."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from pymirrord.config import schema as config_schema
from pymirrord.config.schema import (
    IGNORED,
    UNSUPPORTED,
    annotated_keys,
    load_schema,
    property_paths,
    validate,
)

REPO = Path(__file__).resolve().parents[2]


def test_schema_is_valid_against_the_2020_12_meta_schema() -> None:
    raw = json.loads((REPO / "schema" / "mirrord.schema.json").read_text())
    assert raw["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    Draft202012Validator.check_schema(raw)


def test_packaged_schema_is_the_repository_schema() -> None:
    link = REPO / "pymirrord" / "config" / "mirrord.schema.json"
    assert link.is_symlink()
    assert link.resolve() == (REPO / "schema" / "mirrord.schema.json").resolve()
    assert load_schema() == json.loads((REPO / "schema" / "mirrord.schema.json").read_text())


@pytest.mark.parametrize("pointer", sorted(property_paths()))
def test_every_property_has_a_description_and_a_default(pointer: str) -> None:
    node = property_paths()[pointer]
    assert isinstance(node.get("description"), str) and len(node["description"]) > 10, pointer
    assert "default" in node, pointer


def _property_validator(node: dict[str, Any]) -> Draft202012Validator:
    return Draft202012Validator({**node, "$defs": load_schema()["$defs"]})


@pytest.mark.parametrize("pointer", sorted(property_paths()))
def test_every_default_is_valid_for_its_property(pointer: str) -> None:
    node = property_paths()[pointer]
    default = node["default"]
    if default is None and "x-pymirrord-unsupported" in node:
        return
    errors = list(_property_validator(node).iter_errors(default))
    # A null default means "unset", which nearly every key accepts; a few required-name members do not.
    assert not errors or default is None, (pointer, default, errors)


def test_ignored_keys_warn_naming_the_key_and_unsupported_keys_fail() -> None:
    ignored = [p for p, node in property_paths().items() if node.get(IGNORED)]
    unsupported = [p for p, node in property_paths().items() if node.get(UNSUPPORTED)]
    assert {"/feature/fs", "/operator", "/feature/copy_target"} <= set(ignored)
    assert "/feature/network/incoming/http_filter/body_filter" in unsupported
    problems = annotated_keys(
        {"operator": True, "feature": {"fs": "read", "copy_target": {"scale_down": True}}}
    )
    assert [(p.pointer, p.severity) for p in problems] == [
        ("/operator", "warning"),
        ("/feature/fs", "warning"),
        ("/feature/copy_target", "warning"),
    ]
    assert "feature.fs" in problems[1].message and "ignored" in problems[1].message


def test_ignored_keys_set_to_null_do_not_warn() -> None:
    assert annotated_keys({"operator": None}) == []


def test_unknown_key_gets_a_suggestion_and_the_allowed_keys() -> None:
    (problem,) = validate({"feature": {"network": {"incoming": {"mdoe": "steal"}}}})
    assert problem.pointer == "/feature/network/incoming/mdoe"
    assert problem.at_key
    assert problem.message == 'unknown key "mdoe" in feature.network.incoming'
    assert 'did you mean "mode"?' in problem.hint


def test_misspelled_shorthand_lists_the_accepted_forms() -> None:
    (problem,) = validate({"feature": {"network": {"incoming": "stael"}}})
    assert '"mirror", "steal" or "off"' in problem.message
    assert "null" not in problem.message
    assert problem.hint == 'did you mean "steal"?'


def test_wrong_type_inside_an_alternative_is_reported_where_it_is() -> None:
    (problem,) = validate({"target": {"path": "pod/api", "namespace": 3}})
    assert problem.pointer == "/target/namespace"
    assert problem.message == "target.namespace must be a string, not the number 3"


def test_target_kinds_come_from_the_schema() -> None:
    kinds = config_schema.target_kinds()
    assert kinds[0] == "targetless"
    assert {"pod", "deployment", "rollout", "job", "cronjob", "statefulset", "service", "replicaset"} <= set(
        kinds
    )
    assert {"netns", "pid"} <= set(kinds)


def test_dotted_names() -> None:
    assert config_schema.dotted("/feature/network/incoming/http_filter/all_of/0/header") == (
        "feature.network.incoming.http_filter.all_of[0].header"
    )
    assert config_schema.dotted("") == "the top level"
