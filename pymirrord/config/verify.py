"""``pymirrord verify-config [--ide] PATH``: check one config file and report every problem with its place.

The check covers the file alone (not ``MIRRORD_*`` variables), so that an editor and a terminal see the same
verdict for the same file.

Human output, one block per problem, in file order::

    .mirrord/mirrord.json:5:28: error: feature.network.incoming.http_filter.header_filter is not a valid ...
        "header_filter": "^X-(My"
                             ^
      hint: escape characters meant literally, ...

``--ide`` prints mirrord's JSON result instead and always exits 0 (the editor reads the verdict from it).
"""

from __future__ import annotations

import json
from typing import Any, TextIO

from pymirrord.config.diagnostics import Diagnostic
from pymirrord.config.load import CheckResult, check_text, read_config_text
from pymirrord.config.positions import LineIndex
from pymirrord.config.targets import compatible_target_types


def _caret_line(source_line: str, column: int, end_column: int, same_line: bool) -> str:
    # Keep tabs as tabs so that the caret lines up however the terminal renders them.
    prefix = "".join("\t" if char == "\t" else " " for char in source_line[: max(column - 1, 0)])
    width = max(end_column - column, 1) if same_line else max(len(source_line) - column + 1, 1)
    return prefix + "^" + "~" * (width - 1)


def format_diagnostic(diagnostic: Diagnostic, lines: LineIndex | None) -> str:
    """The human rendering of one diagnostic: headline, source line, caret, hint."""
    parts = [diagnostic.headline()]
    if diagnostic.located and lines is not None:
        source_line = lines.line_text(diagnostic.line)
        parts.append(f"    {source_line}")
        same_line = diagnostic.end_line == diagnostic.line
        parts.append("    " + _caret_line(source_line, diagnostic.column, diagnostic.end_column, same_line))
    if diagnostic.hint:
        parts.append(f"  hint: {diagnostic.hint}")
    return "\n".join(parts)


def _summary(path: str, result: CheckResult) -> str:
    errors, warnings = len(result.errors), len(result.warnings)
    if not errors and not warnings:
        return f"{path}: OK"
    counts = []
    if errors:
        counts.append(f"{errors} error{'s' if errors != 1 else ''}")
    if warnings:
        counts.append(f"{warnings} warning{'s' if warnings != 1 else ''}")
    verdict = "invalid" if errors else "valid"
    return f"{path}: {verdict} ({', '.join(counts)})"


def _ide_text(diagnostic: Diagnostic) -> str:
    text = diagnostic.message
    if diagnostic.located:
        text += f" (line {diagnostic.line}, column {diagnostic.column})"
    if diagnostic.hint:
        text += f"; hint: {diagnostic.hint}"
    return text


def ide_payload(result: CheckResult) -> dict[str, Any]:
    """mirrord's ``verify-config --ide`` JSON shape for a check result."""
    if result.config is None:
        return {"type": "Fail", "errors": [_ide_text(d) for d in result.errors]}
    target = result.config.target
    return {
        "type": "Success",
        "config": {"path": target.path, "namespace": target.namespace},
        "warnings": [_ide_text(d) for d in result.warnings],
        "compatible_target_types": compatible_target_types(),
    }


def run_verify_config(path: str, *, ide: bool, out: TextIO) -> int:
    """Check ``path`` and print the verdict to ``out``; returns the exit status."""
    text = read_config_text(path)
    if isinstance(text, Diagnostic):
        result = CheckResult(None, (text,))
        lines = None
    else:
        result = check_text(text, filename=path, read_files=True)
        lines = LineIndex(text)
    if ide:
        out.write(json.dumps(ide_payload(result)) + "\n")
        return 0
    for diagnostic in result.diagnostics:
        out.write(format_diagnostic(diagnostic, lines) + "\n")
    out.write(_summary(path, result) + "\n")
    return 1 if result.errors else 0
