from __future__ import annotations

from pymirrord.config.model import HttpFilterConfig, InnerFilter
from pymirrord.server.http_filter import HttpRequestHead, filter_from_json, filter_report, match_request


def test_header_lines_are_searched_case_insensitively() -> None:
    head = HttpRequestHead("GET", "/", (("x-myfilter", "1"), ("Host", "a")))
    verdict = match_request(HttpFilterConfig(header_filter="^X-MyFilter:"), head)
    assert verdict.stolen and verdict.matched[0].text == "x-myfilter: 1"
    assert not match_request(HttpFilterConfig(header_filter="^Host: b"), head).stolen


def test_path_then_path_with_query() -> None:
    head = HttpRequestHead("GET", "/a/b?debug=1")
    assert match_request(HttpFilterConfig(path_filter="^/a/b$"), head).matched[0].text == "/a/b"
    assert match_request(HttpFilterConfig(path_filter="debug=1$"), head).matched[0].text == "/a/b?debug=1"


def test_all_of_any_of_and_method() -> None:
    head = HttpRequestHead("post", "/x", (("X-User", "alice"),))
    all_of = HttpFilterConfig(all_of=(InnerFilter("method", "POST"), InnerFilter("header", "alice")))
    assert [p.part for p in match_request(all_of, head).matched] == ["all_of[0].method", "all_of[1].header"]
    any_of = HttpFilterConfig(any_of=(InnerFilter("path", "^/y"), InnerFilter("header", r"^x-user: (\w)li")))
    assert match_request(any_of, head).stolen
    assert not match_request(HttpFilterConfig(any_of=(InnerFilter("path", "^/y"),)), head).stolen


def test_filters_from_json_are_checked() -> None:
    config, problems = filter_from_json({"header_filter": "a", "path_filter": "b"})
    assert config is None and "both" in problems[0].message
    config, problems = filter_from_json({"path_filter": "(a"})
    assert config is None and problems[0].position == 0
    config, _ = filter_from_json({"any_of": [{"method": "GET"}], "ports": 8080})
    assert config is not None and config.ports == (8080,)
    report = filter_report({"filter": {"method_filter": "GET"}, "requests": [{"method": "get", "path": "/"}]})
    assert report["results"] == [{"stolen": True, "matched": [{"part": "method_filter", "text": "get"}]}]
