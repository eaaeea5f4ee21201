"""Target strings: what the schema accepts, and their parts."""

from __future__ import annotations

import pytest

from pymirrord.config.targets import (
    Target,
    compatible_target_types,
    is_valid_target,
    parse_target,
    target_from_object,
)


@pytest.mark.parametrize(
    ("text", "target"),
    [
        ("targetless", Target("targetless")),
        ("pod/api-7d9f", Target("pod", "api-7d9f")),
        ("deployment/api/container/main", Target("deployment", "api", "main")),
        ("deploy/api", Target("deployment", "api")),
        ("rollout/web", Target("rollout", "web")),
        ("job/nightly", Target("job", "nightly")),
        ("cronjob/nightly", Target("cronjob", "nightly")),
        ("statefulset/db/container/pg", Target("statefulset", "db", "pg")),
        ("service/front", Target("service", "front")),
        ("replicaset/api-5c6", Target("replicaset", "api-5c6")),
        ("netns/demo", Target("netns", "demo")),
        ("pid/4242", Target("pid", "4242")),
    ],
)
def test_valid_targets_parse(text: str, target: Target) -> None:
    assert is_valid_target(text)
    assert parse_target(text) == target


@pytest.mark.parametrize(
    "text", ["", "pod", "pod/", "container/x", "pod/a/b", "netns/a/container/b", "pid/0", "pid/x", "pod/a b"]
)
def test_invalid_targets(text: str) -> None:
    assert not is_valid_target(text)
    with pytest.raises(ValueError):
        parse_target(text)


def test_every_compatible_type_has_a_valid_example() -> None:
    for kind in compatible_target_types():
        example = "targetless" if kind == "targetless" else f"{kind}/{'1' if kind == 'pid' else 'x'}"
        assert is_valid_target(example), kind


def test_object_spelling_becomes_the_string_form() -> None:
    assert target_from_object({"deployment": "api", "container": "main"}) == "deployment/api/container/main"
    assert target_from_object({"cron_job": "nightly"}) == "cronjob/nightly"
    assert target_from_object({"stateful_set": "db", "container": None}) == "statefulset/db"
