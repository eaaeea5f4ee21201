"""Which of the target's variables a local process gets, and how they combine with the local ones."""

from __future__ import annotations

import pytest

from pymirrord.remote_env import (
    DEFAULT_EXCLUDED,
    TargetEnvironment,
    compose,
    describe_names,
    name_matches,
    pattern_problem,
    select_variables,
)

POD = {
    "DATABASE_URL": "postgres://db:5432/users",
    "FEATURE_NEW_CHECKOUT": "on",
    "FEATURE_OLD": "off",
    "API_TOKEN": "t0k3n",
    "PATH": "/usr/local/bin:/usr/bin",
    "HOME": "/root",
    "HOSTNAME": "user-service-6d4f9c7b8-ax0z",
    "PYTHONPATH": "/app",
    "LD_PRELOAD": "/lib/libjemalloc.so",
    "KUBERNETES_SERVICE_HOST": "10.96.0.1",
    "KUBERNETES_PORT": "tcp://10.96.0.1:443",
    "PYMIRRORD_LAYER_SOCKET": "/tmp/x",
}


@pytest.mark.parametrize(
    ("pattern", "name", "expected"),
    [
        ("FEATURE_*", "FEATURE_X", True),
        ("FEATURE_*", "FEATURE_", True),
        ("FEATURE_*", "MY_FEATURE_X", False),
        ("*_URL", "DATABASE_URL", True),
        ("DB?", "DB1", True),
        ("DB?", "DB12", False),
        ("a.b", "aXb", False),  # only * and ? are special
        ("[AB]", "A", False),
        ("Path", "PATH", False),  # names are case-sensitive
        ("*", "", True),
    ],
)
def test_patterns(pattern: str, name: str, expected: bool) -> None:
    assert name_matches(pattern, name) is expected


@pytest.mark.parametrize(
    ("pattern", "position"),
    [("", 0), ("A=B", 1), ("A B", 1), ("TAB\tX", 3), ("NUL\x00", 3)],
)
def test_pattern_problems_say_where(pattern: str, position: int) -> None:
    problem = pattern_problem(pattern)
    assert problem is not None and problem[0] == position


def test_everything_but_what_would_break_a_local_process_by_default() -> None:
    chosen = select_variables(POD, None)
    assert sorted(chosen) == ["API_TOKEN", "DATABASE_URL", "FEATURE_NEW_CHECKOUT", "FEATURE_OLD"]
    assert chosen["DATABASE_URL"] == POD["DATABASE_URL"]


def test_include_takes_only_what_matches_and_a_default_exclusion_only_by_its_name() -> None:
    assert sorted(select_variables(POD, ["FEATURE_*", "PATH"])) == [
        "FEATURE_NEW_CHECKOUT",
        "FEATURE_OLD",
        "PATH",
    ]
    # A wildcard does not bring back what is left out by default.
    assert sorted(select_variables(POD, ["*"])) == sorted(select_variables(POD, None))
    assert select_variables(POD, ["KUBERNETES_*"]) == {}
    assert select_variables(POD, ["KUBERNETES_PORT"]) == {"KUBERNETES_PORT": "tcp://10.96.0.1:443"}


def test_exclude_removes_matches() -> None:
    assert sorted(select_variables(POD, None, ["FEATURE_*", "API_TOKEN"])) == ["DATABASE_URL"]


def test_the_defaults_cover_the_named_variables() -> None:
    for name in (
        "PATH",
        "HOME",
        "PYTHONPATH",
        "LD_PRELOAD",
        "KUBERNETES_SERVICE_HOST",
        "PYMIRRORD_LAYER_CONFIG",
    ):
        assert any(name_matches(pattern, name) for pattern in DEFAULT_EXCLUDED), name


def test_precedence_is_override_then_env_file_then_target_then_local() -> None:
    base = {"A": "local", "B": "local", "C": "local", "D": "local"}
    target = TargetEnvironment(
        remote={"B": "pod", "C": "pod", "D": "pod"}, env_file={"C": "file", "D": "file"}
    )
    changes = compose(base, target, {"D": "override"}, ())
    result = changes.apply(base)
    assert result == {"A": "local", "B": "pod", "C": "file", "D": "override"}
    assert changes.from_target == ("B",)
    assert changes.unset == ()


def test_unset_removes_local_and_target_variables_case_insensitively() -> None:
    base = {"AWS_PROFILE": "me", "aws_profile": "me too", "KEEP": "1"}
    target = TargetEnvironment(remote={"AWS_PROFILE": "pod", "X": "pod"})
    changes = compose(base, target, {}, ["Aws_Profile", "NOT_HERE"])
    assert changes.apply(base) == {"KEEP": "1", "X": "pod"}
    # Names are returned as written too, for an editor whose environment is not the helper's.
    assert changes.unset == ("AWS_PROFILE", "Aws_Profile", "NOT_HERE", "aws_profile")
    assert changes.from_target == ("X",)


def test_an_override_may_set_an_unset_name_again() -> None:
    changes = compose(
        {"AWS_PROFILE": "me"}, TargetEnvironment(), {"AWS_PROFILE": "pod-role"}, ["AWS_PROFILE"]
    )
    assert changes.apply({"AWS_PROFILE": "me"}) == {"AWS_PROFILE": "pod-role"}
    assert changes.unset == ()


def test_names_are_listed_with_a_limit() -> None:
    assert describe_names(["A", "B"]) == "A, B"
    assert describe_names([f"V{i}" for i in range(25)], limit=3) == "V0, V1, V2 and 22 more"
