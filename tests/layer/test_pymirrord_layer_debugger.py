from __future__ import annotations

import pytest

from pymirrord.layer.pymirrord_layer_debugger import (
    DETECT_ENV,
    IGNORE_ENV,
    debugger_port,
    detect,
    parse_range,
)

VSCODE = [
    "/home/u/venv/bin/python",
    "/home/u/.vscode/extensions/ms-python.debugpy-2024.0.0/bundled/libs/debugpy",
    "--connect",
    "127.0.0.1:57141",
    "--configure-qt",
    "none",
    "--adapter-access-token",
    "c2d7",
    "/home/u/app.py",
]
LAUNCHER = ["/usr/bin/python3", "/ext/bundled/libs/debugpy/launcher", "41235", "--", "/home/u/app.py"]
PYCHARM = [
    "/path/to/python",
    "/path/to/pycharm/plugins/pydevd.py",
    "--multiprocess",
    "--qt-support=auto",
    "--client",
    "127.0.0.1",
    "--port",
    "32845",
    "--file",
    "/path/to/script.py",
]


@pytest.mark.parametrize(
    ("kind", "argv", "expected"),
    [
        ("debugpy", VSCODE, ("127.0.0.1", 57141)),
        ("debugpy", ["python3", "-m", "debugpy", "--connect", "5678", "app.py"], ("127.0.0.1", 5678)),
        ("debugpy", LAUNCHER, ("127.0.0.1", 41235)),
        (
            "debugpy",
            ["python3.11", "-X", "frozen_modules=off", "/x/debugpy", "--connect", "127.0.0.1:9", "a.py"],
            ("127.0.0.1", 9),
        ),
        (
            "debugpy",
            ["python", "-u", "-m", "debugpy.launcher", "127.0.0.1:77", "--", "a.py"],
            ("127.0.0.1", 77),
        ),
        ("debugpy", ["python", "-c", "print()", "--connect", "1"], None),
        ("debugpy", ["python", "/x/debugpy", "app.py"], None),
        ("debugpy", ["/usr/bin/node", "/x/debugpy", "--connect", "1:2"], None),
        ("pydevd", PYCHARM, ("127.0.0.1", 32845)),
        ("pydevd", ["python", "/x/pydevd.py", "--client", "127.0.0.1"], None),
        ("pydevd", VSCODE, None),
    ],
)
def test_ports_come_from_the_debuggers_command_lines(
    kind: str, argv: list[str], expected: tuple[str, int] | None
) -> None:
    assert debugger_port(kind, argv) == expected


def test_a_detected_port_is_ignored_and_handed_to_children_as_mirrord_does() -> None:
    environ = {DETECT_ENV: "debugpy"}
    ports, problems = detect(VSCODE, environ)
    assert problems == []
    assert ports.contains("127.0.0.1", 57141) and ports.contains("localhost", 57141)
    assert not ports.contains("10.0.0.1", 57141) and not ports.contains("127.0.0.1", 57142)
    assert environ == {IGNORE_ENV: "57141"}


def test_the_port_range_variable_applies_to_loopback_only() -> None:
    ports, problems = detect(["python", "app.py"], {IGNORE_ENV: "45000-65535"})
    assert problems == []
    assert ports.contains("::1", 45000) and ports.contains("127.0.0.1", 65535)
    assert not ports.contains("127.0.0.1", 44999) and not ports.contains("10.1.1.1", 50000)


def test_bad_variables_are_reported_not_fatal() -> None:
    ports, problems = detect(["python", "app.py"], {IGNORE_ENV: "65535-1", DETECT_ENV: "gdb"})
    assert not ports
    assert len(problems) == 2


def test_without_the_detect_variable_the_debuggers_are_still_recognised() -> None:
    environ: dict[str, str] = {}
    ports, _ = detect(PYCHARM, environ)
    assert ports.contains("127.0.0.1", 32845)
    assert environ == {IGNORE_ENV: "32845"}


@pytest.mark.parametrize(("text", "expected"), [("80", (80, 80)), ("1-2", (1, 2)), ("x", None), ("0", None)])
def test_parse_range(text: str, expected: tuple[int, int] | None) -> None:
    assert parse_range(text) == expected
