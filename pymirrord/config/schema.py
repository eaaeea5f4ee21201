"""The JSON schema of the config file: loading it, walking it, and turning its verdicts into clear messages.

``schema/mirrord.schema.json`` is the single source of truth for which keys exist, their types, their
defaults, and which of them pymirrord accepts but ignores (``"x-pymirrord-ignored": true``) or refuses
because ignoring them would change behaviour (``"x-pymirrord-unsupported": "<what>"``). Nothing here lists
keys by hand.

jsonschema's own messages ("... is not valid under any of the given schemas") say little; ``explain`` picks
the branch of an ``anyOf`` that the value was evidently meant for and reports what is wrong inside it, or
else says which forms are accepted, using ``x-pymirrord-expected`` where the schema words it.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any, cast

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError

from pymirrord.config.positions import join_pointer, split_pointer

Schema = dict[str, Any]

SCHEMA_RESOURCE = "mirrord.schema.json"
IGNORED = "x-pymirrord-ignored"
UNSUPPORTED = "x-pymirrord-unsupported"
EXPECTED = "x-pymirrord-expected"
SECRET_VALUES = "x-pymirrord-secret-values"
TARGET_KIND = "x-pymirrord-kind"


@cache
def load_schema() -> Schema:
    """The config schema, read from the installed package (a link to ``schema/mirrord.schema.json``)."""
    text = resources.files("pymirrord.config").joinpath(SCHEMA_RESOURCE).read_text(encoding="utf-8")
    return cast(Schema, json.loads(text))


@cache
def validator() -> Draft202012Validator:
    return Draft202012Validator(load_schema())


def resolve_ref(node: Schema) -> Schema:
    """Follow local ``$ref``s (``#/$defs/Name``) until reaching a schema without one."""
    root = load_schema()
    seen = 0
    while "$ref" in node and seen < 16:
        target: Any = root
        for part in split_pointer(node["$ref"].removeprefix("#")):
            target = target[part]
        node = target
        seen += 1
    return node


def _branches(node: Schema) -> Iterator[Schema]:
    """The schema and every schema it combines with (``$ref``, ``anyOf``, ``oneOf``, ``allOf``)."""
    yield node
    if "$ref" in node:
        yield from _branches(resolve_ref({"$ref": node["$ref"]}))
    for keyword in ("anyOf", "oneOf", "allOf"):
        for branch in node.get(keyword, ()):
            yield from _branches(branch)


def children(node: Schema) -> dict[str, Schema]:
    """Every named property an object at ``node`` may have, across all of its alternative forms."""
    found: dict[str, Schema] = {}
    for branch in _branches(node):
        for name, sub in branch.get("properties", {}).items():
            found.setdefault(name, sub)
    return found


def item_schema(node: Schema) -> Schema | None:
    """The schema of the items of an array at ``node``, if any of its forms is a homogeneous array."""
    for branch in _branches(node):
        if isinstance(branch.get("items"), dict):
            return cast(Schema, branch["items"])
    return None


@cache
def property_paths() -> dict[str, Schema]:
    """Every property path the schema defines (``/feature/network/incoming/mode``), array items as ``*``.

    Values are the property's own schema (the one that carries ``description``, ``default`` and annotations).
    """
    paths: dict[str, Schema] = {}

    def visit(node: Schema, pointer: str, depth: int) -> None:
        if depth > 12:  # the schema has no recursion; this only guards against a future mistake
            return
        for name, sub in children(node).items():
            child = join_pointer(pointer, name)
            paths[child] = sub
            visit(sub, child, depth + 1)
        items = item_schema(node)
        if items is not None:
            visit(items, pointer + "/*", depth + 1)

    visit(load_schema(), "", 0)
    return paths


def _generic(pointer: str) -> str:
    """``/a/0/b`` as a schema property path: ``/a/*/b``."""
    return "".join("/*" if part.isdigit() else join_pointer("", part) for part in split_pointer(pointer))


def schema_at(pointer: str) -> Schema | None:
    """The property schema for a document pointer, or None when the schema defines no such property."""
    return property_paths().get(_generic(pointer))


def default_at(pointer: str) -> Any:
    """The schema's ``default`` for a property path (a copy, safe to keep)."""
    node = property_paths()[pointer]
    return json.loads(json.dumps(node.get("default")))


def target_kinds() -> tuple[str, ...]:
    """The target kinds the schema accepts, in schema order (``targetless``, ``pod``, ...)."""
    node = load_schema()["$defs"]["TargetPath"]
    return tuple(branch[TARGET_KIND] for branch in node["anyOf"] if TARGET_KIND in branch)


def dotted(pointer: str) -> str:
    """``/feature/network/incoming/http_filter/all_of/0/header`` as ``feature.network...all_of[0].header``."""
    text = ""
    for part in split_pointer(pointer):
        text += f"[{part}]" if part.isdigit() else (f".{part}" if text else part)
    return text or "the top level"


@dataclass(frozen=True)
class Problem:
    """A schema finding before it is located in the text."""

    pointer: str
    message: str
    hint: str = ""
    severity: str = "error"
    at_key: bool = False  # point at the key rather than the value (unknown or ignored keys)
    head_only: bool = False  # point at the key, or the value's first character (errors about whole objects)


def annotated_keys(data: Any) -> list[Problem]:
    """Warnings for keys pymirrord ignores and errors for keys it refuses, found by walking the data."""
    problems: list[Problem] = []

    def walk(value: Any, node: Schema, pointer: str) -> None:
        if isinstance(value, dict):
            known = children(node)
            for name, sub_value in value.items():
                sub = known.get(name)
                if sub is None:
                    continue
                child = join_pointer(pointer, name)
                reason = sub.get(IGNORED)
                if isinstance(reason, str) and sub_value is not None:
                    problems.append(
                        Problem(
                            child,
                            f"{dotted(child)} has no effect in pymirrord: {reason}",
                            hint="the file stays valid for mirrord; remove the key to silence this warning",
                            severity="warning",
                            at_key=True,
                        )
                    )
                elif reason and sub_value is not None:
                    problems.append(
                        Problem(
                            child,
                            f"{dotted(child)} is a mirrord setting that pymirrord does not implement; "
                            "it is ignored",
                            hint="the file stays valid for mirrord; remove the key to silence this warning",
                            severity="warning",
                            at_key=True,
                        )
                    )
                elif sub.get(UNSUPPORTED) and sub_value is not None:
                    problems.append(
                        Problem(
                            child,
                            f"{dotted(child)}: pymirrord does not support {sub[UNSUPPORTED]}",
                            hint="ignoring this filter would steal requests meant for the pod; express it "
                            "with header, path or method filters instead",
                            at_key=True,
                        )
                    )
                else:
                    walk(sub_value, sub, child)
        elif isinstance(value, list):
            items = item_schema(node)
            if items is not None:
                for index, item in enumerate(value):
                    walk(item, items, join_pointer(pointer, index))

    walk(data, load_schema(), "")
    return problems


def validate(data: Any) -> list[Problem]:
    """Every schema violation in ``data``, explained; plus the ignored/unsupported key findings."""
    annotated = annotated_keys(data)
    refused_parents = {
        pointer.rsplit("/", 1)[0] for pointer in (p.pointer for p in annotated if p.severity == "error")
    }
    problems: list[Problem] = []
    for error in validator().iter_errors(data):
        for problem in explain(error):
            # An unsupported filter is reported once, by name; the shape errors it causes would be noise.
            if problem.pointer in refused_parents or any(
                problem.pointer.startswith(parent + "/") for parent in refused_parents
            ):
                continue
            problems.append(problem)
    problems.extend(annotated)
    unique: dict[tuple[str, str], Problem] = {}
    for problem in problems:
        unique.setdefault((problem.pointer, problem.message), problem)
    return list(unique.values())


def _pointer_of(error: ValidationError) -> str:
    return "".join(join_pointer("", part) for part in error.absolute_path)


_TYPE_NAMES = {
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "boolean": "true/false",
    "object": "an object",
    "array": "a list",
    "null": "null",
}


def describe_value(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f"the string {json.dumps(value)}"
    if isinstance(value, int):
        return f"the number {value}"
    if isinstance(value, float):
        return f"the number {value!r}"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "a list"
    return f"a {type(value).__name__.replace('datetime', 'date/time')}"


def _join_or(options: list[str]) -> str:
    unique = list(dict.fromkeys(options))
    if len(unique) <= 1:
        return "".join(unique)
    return ", ".join(unique[:-1]) + " or " + unique[-1]


def _expected_forms(node: Schema) -> list[str]:
    """Short phrases for the forms a schema accepts: ``'"mirror", "steal" or "off"'``, ``'an object'``."""
    if EXPECTED in node:
        return [node[EXPECTED]]
    if "$ref" in node and not any(k in node for k in ("type", "enum", "const", "anyOf", "oneOf")):
        return _expected_forms(resolve_ref(node))
    if "const" in node:
        return [json.dumps(node["const"])]
    if "enum" in node:
        return [_join_or([json.dumps(v) for v in node["enum"] if v is not None])]
    forms: list[str] = []
    for keyword in ("anyOf", "oneOf"):
        for branch in node.get(keyword, ()):
            forms.extend(_expected_forms(branch))
    if forms:
        return forms
    types = node.get("type")
    if isinstance(types, str):
        types = [types]
    if types:
        return [_TYPE_NAMES.get(t, t) for t in types if t != "null"] or ["null"]
    return []


def _string_choices(node: Schema) -> list[str]:
    """Every string constant a schema mentions, for did-you-mean hints."""
    choices: list[str] = []
    for branch in _branches(node):
        if isinstance(branch.get("const"), str):
            choices.append(branch["const"])
        choices.extend(v for v in branch.get("enum", ()) if isinstance(v, str))
    return choices


def _did_you_mean(word: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    return f"did you mean {json.dumps(close[0])}?" if close else ""


def _is_shape_mismatch(error: ValidationError, base_depth: int) -> bool:
    """Whether a branch failed because the value is not even of that branch's kind."""
    return len(error.absolute_path) == base_depth and error.validator in ("type", "const", "enum")


def _depth(errors: list[ValidationError]) -> int:
    return max((len(e.absolute_path) for e in errors), default=0)


def _holds_secrets(pointer: str) -> bool:
    """Whether the value at ``pointer`` lies below a property whose values may be secrets."""
    parts = split_pointer(pointer)
    for length in range(len(parts), 0, -1):
        node = schema_at("".join(join_pointer("", part) for part in parts[:length]))
        if node is not None and node.get(SECRET_VALUES):
            return True
    return False


def explain(error: ValidationError) -> list[Problem]:
    """Turn one jsonschema error into the problems a person should be told about."""
    pointer = _pointer_of(error)
    if _holds_secrets(pointer):
        return _explain_secret(error, pointer)
    where = dotted(pointer)
    schema = error.schema if isinstance(error.schema, dict) else {}
    validator_name = error.validator
    instance = error.instance

    if validator_name in ("anyOf", "oneOf"):
        if validator_name == "oneOf" and not error.context:
            expected = schema.get(EXPECTED, "exactly one of its accepted forms")
            return [Problem(pointer, f"{where} must be {expected}", head_only=True)]
        base = len(error.absolute_path)
        by_branch: dict[int, list[ValidationError]] = {}
        for sub in error.context or ():
            by_branch.setdefault(cast(int, sub.relative_schema_path[0]), []).append(sub)
        candidates = [
            errors for errors in by_branch.values() if not any(_is_shape_mismatch(e, base) for e in errors)
        ]
        # A branch that rejects the value's keys outright was evidently not the one meant, when another
        # branch accepts the keys and fails on something finer.
        fitting = [
            errors
            for errors in candidates
            if not any(e.validator == "additionalProperties" and len(e.absolute_path) == base for e in errors)
        ]
        candidates = fitting or candidates
        if candidates:
            deepest = max(_depth(errors) for errors in candidates)
            best = [errors for errors in candidates if _depth(errors) == deepest]
            if len(best) == 1 and (deepest > base or EXPECTED not in schema):
                return [problem for sub in best[0] for problem in explain(sub)]
        # null is accepted nearly everywhere as "unset"; listing it in every message would only distract.
        forms = [form for form in _expected_forms(schema) if form != "null"]
        expected = _join_or(forms) or "a different value"
        hint = _did_you_mean(instance, _string_choices(schema)) if isinstance(instance, str) else ""
        return [
            Problem(
                pointer,
                f"{where} must be {expected}, not {describe_value(instance)}",
                hint=hint,
                head_only=isinstance(instance, (dict, list)),
            )
        ]

    if validator_name == "additionalProperties" and isinstance(instance, dict):
        allowed = list(schema.get("properties", {}))
        problems = []
        for name in instance:
            if name in allowed:
                continue
            child = join_pointer(pointer, name)
            suggestion = _did_you_mean(name, allowed)
            known = ", ".join(sorted(allowed))
            hint = f"{suggestion} " if suggestion else ""
            hint += f"keys allowed in {where}: {known}"
            place = "at the top level" if not pointer else f"in {where}"
            problems.append(Problem(child, f"unknown key {json.dumps(name)} {place}", hint=hint, at_key=True))
        return problems

    if validator_name == "type":
        expected = _join_or(_expected_forms({"type": error.validator_value}))
        return [
            Problem(
                pointer,
                f"{where} must be {expected}, not {describe_value(instance)}",
                head_only=isinstance(instance, (dict, list)),
            )
        ]

    if validator_name in ("enum", "const"):
        options = cast(
            list[Any], error.validator_value if validator_name == "enum" else [error.validator_value]
        )
        expected = _join_or([json.dumps(v) for v in options if v is not None])
        hint = (
            _did_you_mean(instance, [v for v in options if isinstance(v, str)])
            if isinstance(instance, str)
            else ""
        )
        return [Problem(pointer, f"{where} must be {expected}, not {describe_value(instance)}", hint=hint)]

    if validator_name in ("minimum", "maximum"):
        if schema.get("minimum") == 1 and schema.get("maximum") == 65535:
            return [Problem(pointer, f"{instance} is not a valid port number", hint="ports are 1 to 65535")]
        bound = "at least" if validator_name == "minimum" else "at most"
        return [Problem(pointer, f"{where} must be {bound} {error.validator_value}, not {instance}")]

    if validator_name == "pattern":
        expected = schema.get(EXPECTED, f"a string matching {error.validator_value}")
        return [Problem(pointer, f"{where} must be {expected}, not {describe_value(instance)}")]

    if validator_name in ("minItems", "maxItems"):
        if EXPECTED in schema:
            return [Problem(pointer, f"{where} must be {schema[EXPECTED]}", head_only=True)]
        if validator_name == "minItems" and error.validator_value == 1:
            return [
                Problem(pointer, f"{where} must not be empty", hint="remove the key instead", head_only=True)
            ]
        return [Problem(pointer, f"{where} must have {error.validator_value} items", head_only=True)]

    if validator_name in ("minProperties", "maxProperties"):
        expected = schema.get(EXPECTED, "a different object")
        hint = ""
        if validator_name == "maxProperties" and "header" in schema.get("properties", {}):
            hint = "write each filter as its own entry of the list"
        return [Problem(pointer, f"{where} must be {expected}", hint=hint, head_only=True)]

    if validator_name == "required":
        return [Problem(pointer, f"{where} is missing {error.message.split(' ')[0]}", head_only=True)]

    return [Problem(pointer, f"{where}: {error.message}", head_only=isinstance(instance, (dict, list)))]


def _explain_secret(error: ValidationError, pointer: str) -> list[Problem]:
    """A problem with a value that may be a secret: named by its place and kind, never by its text."""
    instance = error.instance
    kind = "a list" if isinstance(instance, list) else "an object" if isinstance(instance, dict) else ""
    if not kind:
        kind = "true/false" if isinstance(instance, bool) else "null" if instance is None else "a number"
        if isinstance(instance, str):
            kind = "a string"
    expected = _join_or(_expected_forms(error.schema)) if isinstance(error.schema, dict) else ""
    message = f"{dotted(pointer)} must be {expected or 'a different value'}, not {kind}"
    return [Problem(pointer, message, head_only=isinstance(instance, (dict, list)))]
