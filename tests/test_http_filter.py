"""The pure HTTP filter: the mission document's examples literally, every kind, and hostile input."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pymirrord.errors import PymirrordError
from pymirrord.http_filter import (
    FilterKind,
    FilterPart,
    HttpFilterError,
    HttpFilterSpec,
    RequestHead,
    compile_filter,
    pattern_problem,
)


def request(*headers: tuple[str, str], target: str = "/", method: str = "GET") -> RequestHead:
    return RequestHead(method, target, headers)


def test_mission_my_header_matches_names_and_values() -> None:
    # "the filter MyHeader would match requests with MyHeader in any of their header names or header values"
    flt = compile_filter(HttpFilterSpec(header="MyHeader"))
    assert flt.match(request(("MyHeader", "x"))) == "header_filter"
    assert flt.match(request(("X-Other", "has MyHeader in it"))) == "header_filter"
    assert flt.match(request(("X-Other", "nothing"))) is None


def test_mission_anchored_header_name_in_any_capitalisation() -> None:
    # "The filter ^X-MyFilter: would match only requests that have a header with the header name X-MyFilter
    # (or x-myfilter or with any other capitalization)."
    flt = compile_filter(HttpFilterSpec(header="^X-MyFilter:"))
    for name in ("X-MyFilter", "x-myfilter", "X-MYFILTER"):
        assert flt.match(request((name, "v"))) == "header_filter"
    assert flt.match(request(("X-Other", "X-MyFilter: v"))) is None


def test_regex_features_of_the_regex_package() -> None:
    assert compile_filter(HttpFilterSpec(header=r"^x-a: (?!no)")).match(request(("X-A", "yes")))
    assert compile_filter(HttpFilterSpec(header=r"^x-a: (?!no)")).match(request(("X-A", "no"))) is None
    assert compile_filter(HttpFilterSpec(header=r"^x-a: (\w+)-\1$")).match(request(("X-A", "ab-ab")))
    assert compile_filter(HttpFilterSpec(header=r"^x-a: (?>a+)b")).match(request(("X-A", "aab")))


def test_path_then_path_with_query() -> None:
    flt = compile_filter(HttpFilterSpec(path=r"^/api/v\d+$"))
    explained = flt.explain(request(target="/api/v1?x=1"))
    assert explained is not None and explained[0].text == "/api/v1"
    query = compile_filter(HttpFilterSpec(path="debug=1"))
    assert query.match(request(target="/a?debug=1")) == "path_filter"
    assert query.match(request(target="/a?debug=2")) is None


def test_method_all_of_any_of() -> None:
    assert compile_filter(HttpFilterSpec(method="post")).match(request(method="POST")) == "method_filter"
    assert compile_filter(HttpFilterSpec(method="post")).match(request(method="GET")) is None
    both = compile_filter(
        HttpFilterSpec(
            all_of=(FilterPart(FilterKind.HEADER, "^x-u: a$"), FilterPart(FilterKind.PATH, "^/api"))
        )
    )
    assert both.match(request(("X-U", "a"), target="/api")) == "all_of"
    assert both.match(request(("X-U", "a"), target="/web")) is None
    either = compile_filter(
        HttpFilterSpec(
            any_of=(FilterPart(FilterKind.HEADER, "^x-u: a$"), FilterPart(FilterKind.METHOD, "PUT"))
        )
    )
    assert either.match(request(method="PUT")) == "any_of[1].method"
    assert either.match(request(("X-U", "a"))) == "any_of[0].header"
    assert either.match(request(("X-U", "b"))) is None


def test_bad_patterns_are_located() -> None:
    with pytest.raises(HttpFilterError) as caught:
        compile_filter(
            HttpFilterSpec(any_of=(FilterPart(FilterKind.PATH, "ok"), FilterPart(FilterKind.HEADER, "a(b")))
        )
    assert caught.value.part == "any_of[1].header"
    assert caught.value.problem.position == 1
    problem = pattern_problem("[abc")
    assert problem is not None and problem.position == 0
    assert pattern_problem("fine") is None
    with pytest.raises(PymirrordError):
        compile_filter(HttpFilterSpec())


def test_non_ascii_header_bytes_never_crash() -> None:
    flt = compile_filter(HttpFilterSpec(header="^x-name: j.rgen$"))
    assert flt.match(RequestHead("GET", "/", ((b"X-Name", "jürgen".encode()),)))  # UTF-8
    assert flt.match(RequestHead("GET", "/", ((b"X-Name", b"j\xfcrgen"),)))  # Latin-1
    assert flt.match(RequestHead("GET", "/", ((b"X-Bin", b"\xff\xfe\x80"),))) is None


@given(st.binary(max_size=200), st.binary(max_size=200))
def test_any_header_bytes_are_matched_without_error(name: bytes, value: bytes) -> None:
    compile_filter(HttpFilterSpec(header="a.*b")).match(RequestHead("GET", "/", ((name, value),)))


HEADERS = st.tuples(
    st.sampled_from(["X-Bench", "Host", b"X-Bench", b"x-other"]), st.sampled_from(["mine", "b", b"mine"])
)


@given(st.lists(st.lists(HEADERS, max_size=4), max_size=30))
def test_match_agrees_with_explain_however_often_a_header_repeats(
    requests: list[list[tuple[str, str]]],
) -> None:
    # match remembers each header's outcome; explain searches every time: they must never disagree.
    for spec in (
        HttpFilterSpec(header="^x-bench: mine$"),
        HttpFilterSpec(
            any_of=(FilterPart(FilterKind.HEADER, "^host:"), FilterPart(FilterKind.HEADER, "mine"))
        ),
        HttpFilterSpec(
            all_of=(FilterPart(FilterKind.HEADER, "^host:"), FilterPart(FilterKind.HEADER, "mine"))
        ),
    ):
        flt = compile_filter(spec)
        for headers in requests:
            head = RequestHead("GET", "/", tuple(headers))
            found = flt.explain(head)
            expected = None if found is None else ("all_of" if spec.all_of else found[0].part)
            assert flt.match(head) == expected


def test_remembered_header_outcomes_stay_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    from pymirrord import http_filter

    monkeypatch.setattr(http_filter, "SEEN_MAX", 8)
    flt = compile_filter(HttpFilterSpec(header="^x-id: 7$"))
    for n in range(100):
        assert (flt.match(request(("X-Id", str(n)))) is not None) is (n == 7)
        assert len(flt._parts[0].seen) <= 8
    assert flt.match(request(("X-Id", "7"))) == "header_filter"


def test_long_header_values_are_matched_but_never_remembered() -> None:
    flt = compile_filter(HttpFilterSpec(header="^cookie: .*session=me"))
    long_cookie = "a=" + "x" * 5000 + "; session=me"
    assert flt.match(request(("Cookie", long_cookie))) == "header_filter"
    assert flt.match(request(("Cookie", long_cookie.replace("me", "you")))) is None
    assert flt._parts[0].seen == {}
