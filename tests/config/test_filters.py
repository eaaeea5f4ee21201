"""The outgoing/DNS filter grammar ``[tcp|udp|any://][NAME|IP|SUBNET/LEN][:PORT]``."""

from __future__ import annotations

import pytest

from pymirrord.config.filters import FilterSyntaxError, parse_filter_rule
from pymirrord.config.model import FilterRule


@pytest.mark.parametrize(
    ("text", "rule"),
    [
        ("tcp://1.1.1.0/24:1337", FilterRule("tcp", "subnet", "1.1.1.0/24", 1337)),
        ("1.1.5.0/24", FilterRule("any", "subnet", "1.1.5.0/24", None)),
        ("google.com", FilterRule("any", "name", "google.com", None)),
        (":53", FilterRule("any", "any", None, 53)),
        ("udp://:53", FilterRule("udp", "any", None, 53)),
        ("any://10.0.0.1:80", FilterRule("any", "ip", "10.0.0.1", 80)),
        (
            "redis.cache.svc.cluster.local:6379",
            FilterRule("any", "name", "redis.cache.svc.cluster.local", 6379),
        ),
        ("fd00::/8", FilterRule("any", "subnet", "fd00::/8", None)),
        ("::1", FilterRule("any", "ip", "::1", None)),
        ("tcp://[::1]:8080", FilterRule("tcp", "ip", "::1", 8080)),
        ("localhost", FilterRule("any", "name", "localhost", None)),
        ("TCP://db_host:5432", FilterRule("tcp", "name", "db_host", 5432)),
    ],
)
def test_valid_entries(text: str, rule: FilterRule) -> None:
    assert parse_filter_rule(text) == rule


@pytest.mark.parametrize(
    ("text", "message", "blamed"),
    [
        ("http://api:80", "unknown protocol 'http'", "http"),
        ("10.0.0.0/33", "not a valid subnet", "10.0.0.0/33"),
        ("api:99999", "'99999' is not a valid port number", "99999"),
        ("api:port", "not a valid port number", "port"),
        ("1.2.3.999", "not a valid IP address", "1.2.3.999"),
        ("bad..name", "not a valid host name", ""),
        ("tcp://", "neither an address nor a port", "tcp://"),
        ("", "empty filter entry", ""),
        ("[::1:80", "missing ]", "[::1:80"),
        ("a b", "not a valid host name", "a b"),
    ],
)
def test_invalid_entries_name_the_offending_characters(text: str, message: str, blamed: str) -> None:
    with pytest.raises(FilterSyntaxError) as caught:
        parse_filter_rule(text)
    assert message in caught.value.message
    assert text[caught.value.start : caught.value.end] == blamed or (not blamed and caught.value.start >= 0)


def test_dns_entries_take_no_protocol() -> None:
    with pytest.raises(FilterSyntaxError) as caught:
        parse_filter_rule("tcp://db.internal", allow_protocol=False)
    assert "no protocol" in caught.value.message
    assert parse_filter_rule("db.internal:5432", allow_protocol=False) == FilterRule(
        "any", "name", "db.internal", 5432
    )
