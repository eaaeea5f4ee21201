"""Config diagnostics as LSP diagnostics: the same engine as ``verify-config``, the same places.

A problem that has no place in the text (the file cannot be read as UTF-8, say) is shown on the first line.
The hint joins the message on its own line, and ``data`` keeps the JSON pointer and the hint, so that code
actions can find what a diagnostic is about without parsing its message.
"""

from __future__ import annotations

from lsprotocol import types

from pymirrord.config import Diagnostic, check_text
from pymirrord.config.sources import Format, ParsedSource, format_for
from pymirrord.server.deprecations import Deprecation, deprecated_forms
from pymirrord.server.edits import parse
from pymirrord.server.text_positions import Encoding, TextPositions

SOURCE = "pymirrord"


def to_lsp(diagnostic: Diagnostic, positions: TextPositions) -> types.Diagnostic:
    if diagnostic.located:
        start = positions.from_config(diagnostic.line, diagnostic.column)
        end = positions.from_config(diagnostic.end_line, diagnostic.end_column)
        if end <= start:
            # A zero-width place (the end of the file) still needs one visible character.
            end = (start[0], start[1] + 1)
    else:
        start, end = (0, 0), (0, len(positions.line_text(0)) or 1)
    message = diagnostic.message + (f"\nhint: {diagnostic.hint}" if diagnostic.hint else "")
    return types.Diagnostic(
        range=types.Range(types.Position(*start), types.Position(*end)),
        message=message,
        severity=(
            types.DiagnosticSeverity.Error
            if diagnostic.severity == "error"
            else types.DiagnosticSeverity.Warning
        ),
        source=SOURCE,
        code=_code(diagnostic),
        data={"pointer": diagnostic.pointer, "hint": diagnostic.hint},
        tags=[types.DiagnosticTag.Unnecessary] if _code(diagnostic) == "ignored-key" else None,
    )


def _code(diagnostic: Diagnostic) -> str:
    message = diagnostic.message
    if message.startswith("unknown key "):
        return "unknown-key"
    if "pymirrord does not implement; it is ignored" in message or "has no effect in pymirrord" in message:
        return "ignored-key"
    if "is not a valid regular expression" in message:
        return "invalid-regex"
    return "error" if diagnostic.severity == "error" else "warning"


def config_diagnostics(
    text: str, filename: str, fmt: Format | None = None, encoding: Encoding = "utf-16"
) -> list[types.Diagnostic]:
    """Every diagnostic of a config text, in file order, as LSP diagnostics."""
    positions = TextPositions(text, encoding)
    result = check_text(text, filename=filename, fmt=fmt, read_files=True)
    found = [to_lsp(diagnostic, positions) for diagnostic in result.diagnostics]
    chosen = fmt or format_for(filename)
    parsed = parse(text, chosen) if chosen is not None else None
    if parsed is not None:
        found.extend(_deprecation(item, parsed, positions) for item in deprecated_forms(parsed))
    return found


def _deprecation(item: Deprecation, parsed: ParsedSource, positions: TextPositions) -> types.Diagnostic:
    span = parsed.source_map.spans[item.pointer].value
    return types.Diagnostic(
        range=types.Range(
            types.Position(*positions.position(span.start)), types.Position(*positions.position(span.end))
        ),
        message=item.message,
        severity=types.DiagnosticSeverity.Information,
        source=SOURCE,
        code="deprecated-form",
        data={"pointer": item.pointer, "replacement": item.replacement},
        tags=[types.DiagnosticTag.Deprecated],
    )
