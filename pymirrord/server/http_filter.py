"""Deciding whether an HTTP request would be stolen under an ``http_filter``, as the mission document says.

- ``header_filter``: a regex searched (not anchored) in each ``Name: Value`` header line, case-insensitively;
  any line matching is enough;
- ``path_filter``: a regex searched in the path, and if that fails in the path with its query string;
- ``method_filter``: the method, compared case-insensitively;
- ``all_of`` / ``any_of``: lists of ``{"header": ...}``, ``{"path": ...}``, ``{"method": ...}``.

Regexes use the ``regex`` package (lookarounds and backreferences allowed), compiled as the config checker
compiles them. ``match_request`` is pure and is the single entry point; when the shared HTTP-filter module
lands, it can take its place with the same arguments.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from pymirrord.config.model import HttpFilterConfig, InnerFilter
from pymirrord.config.schema import load_schema
from pymirrord.config.schema import validate as validate_config
from pymirrord.http_filter import (
    CompiledFilter,
    FilterMatch,
    RequestHead,
    compile_filter,
    pattern_problem,
    spec_from_config,
)
from pymirrord.protocol.http_types import HttpFilterSpec

HttpRequestHead = RequestHead
"""What a filter looks at (the shared matcher's type): method, request target, header lines."""
MatchedPart = FilterMatch
"""One part of the filter that matched, and the text it matched."""


@dataclass(frozen=True)
class FilterVerdict:
    stolen: bool
    matched: tuple[MatchedPart, ...] = ()


@lru_cache(maxsize=128)
def _compiled(spec: HttpFilterSpec) -> CompiledFilter:
    return compile_filter(spec)


def match_request(http_filter: HttpFilterConfig, request: RequestHead) -> FilterVerdict:
    """Whether ``request`` matches ``http_filter``, and which parts matched: the agent's own decision.

    The matcher is ``pymirrord.http_filter``, the one the agent runs, so what a user tests in the
    editor is what the agent does.
    """
    spec = spec_from_config(http_filter)
    if spec == HttpFilterSpec():
        return FilterVerdict(True)  # no filter: a steal takes every request
    found = _compiled(spec).explain(request)
    return FilterVerdict(found is not None, found or ())


# From the editor's JSON ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class FilterProblem:
    """What is wrong with a filter: ``pointer`` inside the filter object; ``position`` inside a regex."""

    pointer: str
    message: str
    position: int | None = None


_PREFIX = "/feature/network/incoming/http_filter"


def filter_from_json(data: Any) -> tuple[HttpFilterConfig | None, list[FilterProblem]]:
    """An ``http_filter`` object as written in a config, checked with the config's own schema."""
    if not isinstance(data, dict):
        return None, [FilterProblem("", 'the filter must be an object such as {"header_filter": "^X-My:"}')]
    document = {"feature": {"network": {"incoming": {"mode": "steal", "http_filter": data}}}}
    load_schema()
    problems = [
        FilterProblem(problem.pointer.removeprefix(_PREFIX), problem.message)
        for problem in validate_config(document)
        if problem.severity == "error"
    ]
    kinds = [
        kind
        for kind in ("header_filter", "path_filter", "method_filter", "all_of", "any_of")
        if kind in data and data[kind] is not None
    ]
    if len(kinds) > 1:
        problems.append(
            FilterProblem(
                f"/{kinds[1]}", f"the filter sets both {kinds[0]} and {kinds[1]}; use all_of or any_of"
            )
        )
    for pointer, pattern in _patterns(data):
        # The same verdict and blame as the config checker and the agent.
        problem = pattern_problem(pattern)
        if problem is not None:
            problems.append(
                FilterProblem(
                    pointer,
                    f"not a valid regular expression: {problem.reason} (at character {problem.position + 1})",
                    problem.position,
                )
            )
    if problems:
        return None, problems
    inner = {
        group: tuple(InnerFilter(*next(iter(item.items()))) for item in data[group])
        for group in ("all_of", "any_of")
        if isinstance(data.get(group), list)
    }
    ports = data.get("ports")
    return (
        HttpFilterConfig(
            header_filter=data.get("header_filter"),
            path_filter=data.get("path_filter"),
            method_filter=data.get("method_filter"),
            all_of=inner.get("all_of"),
            any_of=inner.get("any_of"),
            ports=(80, 8080) if ports is None else tuple(ports if isinstance(ports, list) else [ports]),
        ),
        [],
    )


def _patterns(data: dict[str, Any]) -> list[tuple[str, str]]:
    found = []
    for kind in ("header_filter", "path_filter"):
        if isinstance(data.get(kind), str):
            found.append((f"/{kind}", data[kind]))
    for group in ("all_of", "any_of"):
        items = data.get(group)
        if isinstance(items, list):
            for index, item in enumerate(items):
                for key in ("header", "path"):
                    if isinstance(item, dict) and isinstance(item.get(key), str):
                        found.append((f"/{group}/{index}/{key}", item[key]))
    return found


def request_from_json(data: Any, index: int) -> HttpRequestHead:
    """One request of a ``testFilter`` call; raises ValueError saying what is wrong with it."""
    where = f"requests[{index}]"
    if not isinstance(data, dict):
        raise ValueError(f"{where} must be an object {{method, path, headers}}")
    method = data.get("method", "GET")
    path = data.get("path", "/")
    headers = data.get("headers", [])
    if not isinstance(method, str) or not method:
        raise ValueError(f'{where}.method must be a method such as "GET"')
    if not isinstance(path, str) or not path.startswith(("/", "*")):
        raise ValueError(f'{where}.path must be a path starting with /, such as "/users?id=1"')
    pairs: list[tuple[str, str]] = []
    if isinstance(headers, dict):
        headers = list(headers.items())
    if not isinstance(headers, list):
        raise ValueError(f"{where}.headers must be a list of [name, value] pairs")
    for position, pair in enumerate(headers):
        if not isinstance(pair, (list, tuple)) or len(pair) != 2 or not all(isinstance(p, str) for p in pair):
            raise ValueError(f"{where}.headers[{position}] must be a [name, value] pair of strings")
        pairs.append((pair[0], pair[1]))
    return HttpRequestHead(method, path, tuple(pairs))


def filter_report(params: Any) -> dict[str, Any]:
    """The ``pymirrord/testFilter`` result for its params (see docs/helper-protocol.md)."""
    if not isinstance(params, dict):
        raise ValueError("params must be an object {filter, requests}")
    http_filter, problems = filter_from_json(params.get("filter"))
    if http_filter is None:
        return {
            "valid": False,
            "errors": [
                {"pointer": p.pointer, "message": p.message, "position": p.position} for p in problems
            ],
            "results": [],
        }
    requests = params.get("requests", [])
    if not isinstance(requests, list):
        raise ValueError("requests must be a list of {method, path, headers}")
    results = []
    for index, item in enumerate(requests):
        verdict = match_request(http_filter, request_from_json(item, index))
        results.append(
            {
                "stolen": verdict.stolen,
                "matched": [{"part": part.part, "text": part.text} for part in verdict.matched],
            }
        )
    return {"valid": True, "errors": [], "results": results, "ports": list(http_filter.ports)}
