"""Entry points: check a config text, load a config file, resolve the final config for a run.

The pipeline is the same for all three: read the text (syntax errors located), validate it against the schema
(unknown keys, wrong types, ignored mirrord keys), expand it into settings, overlay the environment and the
command line, run the semantic checks, and build the typed ``ResolvedConfig`` when no error was found.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pymirrord.config.build import build
from pymirrord.config.checks import Finding, run_checks
from pymirrord.config.diagnostics import Diagnostic, has_errors, sort_key
from pymirrord.config.env_file import EnvFileError, read_env_file
from pymirrord.config.errors import ConfigError
from pymirrord.config.model import ResolvedConfig
from pymirrord.config.overrides import (
    CONFIG_FILE_VARIABLE,
    ConfigOverrides,
    OverrideProblem,
    apply_command_line,
    apply_environment,
)
from pymirrord.config.schema import Problem, validate
from pymirrord.config.settings import ENV, HTTP_FILTER, HTTP_FILTER_KINDS, Origin, Settings, from_document
from pymirrord.config.sources import (
    Format,
    Location,
    ParsedSource,
    SourceMap,
    SourceSyntaxError,
    format_for,
    parse_source,
)

__all__ = [
    "CheckResult",
    "ConfigOverrides",
    "check_text",
    "load_config",
    "read_config_text",
    "resolve_config",
]


@dataclass(frozen=True)
class CheckResult:
    """The outcome of a check: the resolved config (None when there are errors) and every finding."""

    config: ResolvedConfig | None
    diagnostics: tuple[Diagnostic, ...]

    @property
    def ok(self) -> bool:
        return self.config is not None

    @property
    def errors(self) -> tuple[Diagnostic, ...]:
        return tuple(d for d in self.diagnostics if d.severity == "error")

    @property
    def warnings(self) -> tuple[Diagnostic, ...]:
        return tuple(d for d in self.diagnostics if d.severity == "warning")


def _unlocated(message: str, *, file: str | None, pointer: str = "", hint: str = "") -> Diagnostic:
    return Diagnostic("error", message, file, 0, 0, 0, 0, pointer, hint)


class _Locator:
    """Turns findings into diagnostics with exact positions in one file's text."""

    def __init__(self, filename: str | None, source_map: SourceMap | None) -> None:
        self.filename = filename
        self.source_map = source_map

    def _diagnostic(
        self, severity: str, message: str, pointer: str, hint: str, location: Location
    ) -> Diagnostic:
        return Diagnostic(
            "error" if severity == "error" else "warning",
            message,
            self.filename,
            location.line,
            location.column,
            location.end_line,
            location.end_column,
            pointer,
            hint,
        )

    def problem(self, problem: Problem) -> Diagnostic:
        assert self.source_map is not None
        if problem.at_key:
            location = self.source_map.locate(problem.pointer, key=True)
        elif problem.head_only:
            location = self.source_map.locate_head(problem.pointer)
        else:
            location = self.source_map.locate(problem.pointer)
        return self._diagnostic(problem.severity, problem.message, problem.pointer, problem.hint, location)

    def finding(self, finding: Finding) -> Diagnostic:
        origin = finding.origin
        if not origin.in_file or self.source_map is None:
            return Diagnostic(
                finding.severity, finding.message, None, 0, 0, 0, 0, origin.pointer, finding.hint
            )
        if finding.chars is not None and finding.text is not None:
            start, end = finding.chars
            location = self.source_map.locate_chars(origin.pointer, finding.text, start, end)
        else:
            location = self.source_map.locate(origin.pointer, key=finding.at_key)
        return self._diagnostic(finding.severity, finding.message, origin.pointer, finding.hint, location)

    def override(self, problem: OverrideProblem) -> Diagnostic:
        return Diagnostic("error", problem.message, None, 0, 0, 0, 0, problem.origin.pointer, problem.hint)


def _http_filter_origin(settings: Settings, parsed: ParsedSource | None) -> Origin | None:
    for kind in HTTP_FILTER_KINDS:
        setting = settings.get(f"{HTTP_FILTER}/{kind}")
        if setting is None:
            continue
        if setting.origin.in_file and parsed is not None:
            return Origin(HTTP_FILTER)
        return setting.origin
    return None


def _evaluate(
    parsed: ParsedSource | None,
    filename: str | None,
    env: Mapping[str, str] | None,
    overrides: ConfigOverrides | None,
    *,
    read_files: bool = False,
) -> CheckResult:
    source_map = parsed.source_map if parsed is not None else None
    locator = _Locator(filename, source_map)
    diagnostics: list[Diagnostic] = []
    settings: Settings = {}
    if parsed is not None:
        for pointer, message, hint in parsed.warnings:
            diagnostics.append(locator.problem(Problem(pointer, message, hint, "warning", at_key=True)))
        data = parsed.data
        if not isinstance(data, dict):
            diagnostics.append(
                locator.problem(
                    Problem("", "the configuration must be an object (key: value pairs)", head_only=True)
                )
            )
            return CheckResult(None, tuple(sorted(diagnostics, key=sort_key)))
        problems = validate(data)
        diagnostics.extend(locator.problem(problem) for problem in problems)
        invalid = [problem.pointer for problem in problems if problem.severity == "error"]
        if "" in invalid:
            return CheckResult(None, tuple(sorted(diagnostics, key=sort_key)))
        # The semantic checks still run on what the schema accepted, so every error shows at once.
        settings = from_document(_without(data, invalid))
    if env is not None:
        diagnostics.extend(locator.override(problem) for problem in apply_environment(settings, env))
    if overrides is not None:
        diagnostics.extend(locator.override(problem) for problem in apply_command_line(settings, overrides))
    findings = run_checks(settings, http_filter_origin=_http_filter_origin(settings, parsed))
    diagnostics.extend(locator.finding(finding) for finding in findings)
    ordered = tuple(sorted(diagnostics, key=sort_key))
    if has_errors(ordered):
        return CheckResult(None, ordered)
    base_dir = os.path.dirname(os.path.abspath(filename)) if filename is not None else None
    config = build(settings, base_dir=base_dir)
    if read_files and config.env.env_file is not None:
        problem = _env_file_problem(config.env.env_file, settings)
        if problem is not None:
            return CheckResult(None, tuple(sorted([*ordered, locator.finding(problem)], key=sort_key)))
    return CheckResult(config, ordered)


def _env_file_problem(path: str, settings: Settings) -> Finding | None:
    """Why the env file cannot be used, located at ``env_file`` in the config; never with its contents."""
    try:
        read_env_file(path)
    except EnvFileError as error:
        setting = settings[f"{ENV}/env_file"]
        return Finding("error", f"feature.env.env_file: {error.message}", setting.origin, hint=error.hint)
    return None


def _without(data: dict[str, Any], pointers: list[str]) -> dict[str, Any]:
    """A copy of ``data`` without the values at ``pointers`` (JSON pointers the schema rejected)."""
    if not pointers:
        return data
    pruned: dict[str, Any] = copy.deepcopy(data)
    for pointer in pointers:
        parts = [part.replace("~1", "/").replace("~0", "~") for part in pointer.split("/")[1:]]
        # Only object members are removed: a list with a bad item inside goes as a whole, so the list
        # indexes that other pointers name never shift.
        parent: Any = None
        node: Any = pruned
        for depth, part in enumerate(parts):
            if not isinstance(node, dict) or part not in node:
                break
            parent, node = node, node[part]
            if isinstance(node, list) or depth == len(parts) - 1:
                parent.pop(part)
                break
    return pruned


def _parse(text: str, filename: str, fmt: Format | None) -> ParsedSource | Diagnostic:
    chosen = fmt or format_for(filename)
    if chosen is None:
        return _unlocated(
            f"cannot tell the format of {filename!r} from its extension",
            file=filename,
            hint="name the file .json, .toml, .yaml or .yml",
        )
    try:
        return parse_source(text, chosen)
    except SourceSyntaxError as error:
        problem = error.problem
        where = problem.location
        return Diagnostic(
            "error",
            problem.message,
            filename,
            where.line,
            where.column,
            where.end_line,
            where.end_column,
            "",
            problem.hint,
        )


def check_text(
    text: str, *, filename: str, fmt: Format | None = None, read_files: bool = False
) -> CheckResult:
    """Check a config text as written in the file ``filename`` (no environment, no flags).

    Pure (no I/O) unless ``read_files``: then the files the config names (``feature.env.env_file``, taken
    relative to ``filename``'s folder) are read and checked too. ``fmt`` defaults to the one the file name's
    extension implies.
    """
    parsed = _parse(text, filename, fmt)
    if isinstance(parsed, Diagnostic):
        return CheckResult(None, (parsed,))
    return _evaluate(parsed, filename, None, None, read_files=read_files)


def read_config_text(path: str) -> str | Diagnostic:
    """The text of a config file, or a diagnostic saying clearly why it cannot be read."""
    try:
        with open(path, "rb") as handle:
            raw = handle.read()
    except FileNotFoundError:
        return _unlocated(
            "config file not found",
            file=path,
            hint="check the path, or create the file (an empty config is {})",
        )
    except IsADirectoryError:
        return _unlocated("this is a directory, not a config file", file=path, hint="name the file itself")
    except PermissionError:
        return _unlocated(
            "permission denied reading the config file", file=path, hint="check the file's permissions"
        )
    except OSError as error:
        return _unlocated(f"cannot read the config file: {error.strerror or error}", file=path)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as error:
        return _unlocated(
            f"the config file is not UTF-8 text (undecodable byte at offset {error.start})",
            file=path,
            hint="save the file as UTF-8",
        )


def _load(path: str | None, env: Mapping[str, str], overrides: ConfigOverrides | None) -> CheckResult:
    if path is None:
        path = env.get(CONFIG_FILE_VARIABLE) or None
    if path is None:
        return _evaluate(None, None, env, overrides, read_files=True)
    text = read_config_text(path)
    if isinstance(text, Diagnostic):
        return CheckResult(None, (text,))
    parsed = _parse(text, path, None)
    if isinstance(parsed, Diagnostic):
        return CheckResult(None, (parsed,))
    return _evaluate(parsed, path, env, overrides, read_files=True)


def load_config(path: str | None, env: Mapping[str, str] | None = None) -> CheckResult:
    """Read and check a config file with the ``MIRRORD_*`` environment applied.

    ``path=None`` uses ``$MIRRORD_CONFIG_FILE``, and without it an all-defaults config. ``env=None`` means the
    process environment.
    """
    return _load(path, os.environ if env is None else env, None)


def resolve_config(
    path: str | None,
    env: Mapping[str, str] | None = None,
    overrides: ConfigOverrides | None = None,
) -> tuple[ResolvedConfig, tuple[Diagnostic, ...]]:
    """The config to run with (file < environment < command line) and its warnings.

    Raises ``ConfigError`` listing every located error when the config cannot be used.
    """
    result = _load(path, os.environ if env is None else env, overrides)
    if result.config is None:
        errors = result.errors
        lines = [f"{d.headline()}" + (f" (hint: {d.hint})" if d.hint else "") for d in errors]
        count = f"{len(errors)} error{'s' if len(errors) != 1 else ''}"
        raise ConfigError(
            f"the configuration has {count}:\n  " + "\n  ".join(lines),
            hint="run `pymirrord verify-config PATH` to see each problem in its context",
            diagnostics=result.diagnostics,
        )
    return result.config, result.diagnostics
