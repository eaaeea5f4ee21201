"""``pymirrord/prepareLaunch``, the pure part: check the editor's launch request, resolve the config the
run will use, and compute the environment that injects the layer.

The environment comes from ``process_environment``, the same function ``pymirrord exec`` uses, so a
debug launch and a terminal run get exactly the same variables from the target and the same layer. Only
what the app needs is returned: the target's chosen variables, the layer on ``PYTHONPATH`` (joined to the
launch's own or the editor's ``PYTHONPATH``), the session socket and the layer's settings; nothing that
only the helper uses (such as the agent's token) leaves it.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pymirrord.config import ConfigError, ConfigOverrides, ResolvedConfig, resolve_config
from pymirrord.remote_env import TargetEnvironment
from pymirrord.server.documents import uri_to_path
from pymirrord.server.errors import (
    CONFIG_INVALID,
    LAUNCH_INVALID,
    NO_TARGET,
    HelperError,
)
from pymirrord.session.layer_env import ProcessEnvironment, process_environment

# Launch types whose debuggee is a Python process (VS Code's ``debugpy`` and older ``python``; PyCharm and
# other editors send ``python`` too).
PYTHON_LAUNCH_TYPES = ("debugpy", "python")


@dataclass(frozen=True)
class LaunchRequest:
    launch_type: str
    config_path: str | None = None
    target: str | None = None
    python: str | None = None
    program: str | None = None
    module: str | None = None
    args: tuple[str, ...] = ()
    cwd: str | None = None
    env: dict[str, str] = field(default_factory=dict)


def _string(value: Any, where: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise HelperError(f"{where} must be a string", "fix the launch configuration", code=LAUNCH_INVALID)
    return value


def parse_launch(params: Any) -> LaunchRequest:
    """The params of a prepareLaunch request; raises ``HelperError`` naming the bad field."""
    if not isinstance(params, dict):
        raise HelperError(
            "prepareLaunch expects an object {configUri?, target?, launch}", code=LAUNCH_INVALID
        )
    launch = params.get("launch")
    if not isinstance(launch, dict):
        raise HelperError(
            "prepareLaunch needs launch: the debug configuration ({type, program or module, ...})",
            "pass the launch configuration the editor is about to start",
            code=LAUNCH_INVALID,
        )
    launch_type = _string(launch.get("type"), "launch.type") or ""
    if launch_type not in PYTHON_LAUNCH_TYPES:
        raise HelperError(
            f"launch type {launch_type or '(none)'!r} is not a Python launch; pymirrord injects its layer "
            "through PYTHONPATH, which only a Python process reads",
            f"use a launch configuration of type {' or '.join(PYTHON_LAUNCH_TYPES)}",
            code=LAUNCH_INVALID,
        )
    env = launch.get("env") or {}
    if not isinstance(env, dict) or not all(
        isinstance(k, str) and isinstance(v, (str, type(None))) for k, v in env.items()
    ):
        raise HelperError("launch.env must map names to strings", code=LAUNCH_INVALID)
    args = launch.get("args") or []
    if isinstance(args, str):
        args = [args]
    if not isinstance(args, list) or not all(isinstance(arg, str) for arg in args):
        raise HelperError("launch.args must be a list of strings", code=LAUNCH_INVALID)
    config_uri = _string(params.get("configUri"), "configUri")
    return LaunchRequest(
        launch_type=launch_type,
        config_path=uri_to_path(config_uri) if config_uri else None,
        target=_string(params.get("target"), "target") or None,
        python=_string(launch.get("python"), "launch.python"),
        program=_string(launch.get("program"), "launch.program"),
        module=_string(launch.get("module"), "launch.module"),
        args=tuple(args),
        cwd=_string(launch.get("cwd"), "launch.cwd"),
        env={key: value for key, value in env.items() if value is not None},
    )


def check_files(request: LaunchRequest) -> None:
    """What the debugger would fail on later, said now: a missing folder, program or interpreter."""
    if request.cwd is not None and not os.path.isdir(request.cwd):
        raise HelperError(
            f"the launch's cwd {request.cwd} does not exist", "fix launch.cwd", code=LAUNCH_INVALID
        )
    if request.program is not None:
        program = os.path.join(request.cwd or "", request.program)
        if not os.path.isfile(program):
            raise HelperError(
                f"the program {request.program} does not exist", "fix launch.program", code=LAUNCH_INVALID
            )
    if request.python is not None and shutil.which(request.python) is None:
        raise HelperError(
            f"the Python interpreter {request.python} cannot be run",
            "choose an installed interpreter (launch.python)",
            code=LAUNCH_INVALID,
        )


def resolve_launch_config(
    request: LaunchRequest, base_env: Mapping[str, str]
) -> tuple[ResolvedConfig, list[str]]:
    """The config for the run (file < ``MIRRORD_*`` of the launch < the picked target), and its warnings."""
    env = {**base_env, **request.env}
    if request.config_path is None:
        # The helper's own MIRRORD_CONFIG_FILE (from the editor's environment) must not pick a file silently.
        env.pop("MIRRORD_CONFIG_FILE", None)
        env.update({k: v for k, v in request.env.items() if k == "MIRRORD_CONFIG_FILE"})
    try:
        config, diagnostics = resolve_config(request.config_path, env, ConfigOverrides(target=request.target))
    except ConfigError as error:
        errors = [d for d in error.diagnostics if d.severity == "error"]
        where = f" ({errors[0].where()}: {errors[0].message})" if errors else ""
        raise HelperError(
            f"the config {request.config_path or '(none)'} has errors{where}",
            "fix the errors the editor underlines in the config file, then start again",
            code=CONFIG_INVALID,
            errors=[d.headline() for d in errors],
        ) from None
    if config.target.path is None:
        # Unlike exec, an editor can ask: a launch without a target is more often a forgotten pick than
        # a wish for outgoing traffic only (that is spelled "targetless").
        raise HelperError(
            "no target: pymirrord needs a target to take traffic from",
            'pick a target (pymirrord/listTargets) and pass it as "target" (or "targetless" for outgoing'
            ' traffic and DNS only), or set "target" in the config',
            code=NO_TARGET,
        )
    return config, [d.headline() for d in diagnostics]


def launch_environment(
    config: ResolvedConfig,
    socket_path: str,
    request: LaunchRequest,
    base_env: Mapping[str, str],
    target: TargetEnvironment | None = None,
) -> ProcessEnvironment:
    """What the editor merges into the launch's env (``set``), and the names it removes (``unset``), exactly
    as ``exec`` does; the launch's own ``env`` counts as local, so the target's variables win over it."""
    base = {**base_env, **request.env}
    return process_environment(config, target or TargetEnvironment(), socket_path, base)
