from __future__ import annotations

import pytest

from pymirrord.layer.pymirrord_layer_config import DnsConfig, FilterRule, OutgoingConfig, TrafficFilter
from pymirrord.layer.pymirrord_layer_policy import LOCAL, REMOTE, Policy, is_loopback

NAMES = {
    ("db.internal", "remote"): frozenset({"10.0.0.5"}),
    ("db.internal", "local"): frozenset({"192.168.1.5"}),
}


def names(name: str, side: str) -> frozenset[str]:
    return NAMES.get((name, side), frozenset())


def policy(outgoing: OutgoingConfig | None = None, dns: DnsConfig | None = None) -> Policy:
    return Policy(outgoing or OutgoingConfig(), dns or DnsConfig())


def rule(
    text_kind: str, host: str | None = None, port: int | None = None, protocol: str = "any"
) -> FilterRule:
    return FilterRule(protocol, text_kind, host, port)


def test_everything_goes_through_the_target_by_default_loopback_included() -> None:
    assert policy().connect_route("tcp", "127.0.0.1", 5432, names) == REMOTE
    assert policy().connect_route("udp", "8.8.8.8", 53, names) == REMOTE


def test_switches_and_ignore_localhost_keep_traffic_local() -> None:
    assert policy(OutgoingConfig(tcp=False)).connect_route("tcp", "10.0.0.1", 80, names) == LOCAL
    assert policy(OutgoingConfig(tcp=False)).connect_route("udp", "10.0.0.1", 80, names) == REMOTE
    assert policy(OutgoingConfig(udp=False)).connect_route("udp", "10.0.0.1", 80, names) == LOCAL
    ignore = policy(OutgoingConfig(ignore_localhost=True))
    assert ignore.connect_route("tcp", "127.0.0.1", 80, names) == LOCAL
    assert ignore.connect_route("tcp", "::ffff:127.0.0.1", 80, names) == LOCAL
    assert ignore.connect_route("tcp", "10.0.0.1", 80, names) == REMOTE


@pytest.mark.parametrize(
    ("rules", "transport", "host", "port", "remote_side"),
    [
        ((rule("ip", "10.0.0.1"),), "tcp", "10.0.0.1", 80, True),
        ((rule("ip", "10.0.0.1"),), "tcp", "10.0.0.2", 80, False),
        ((rule("subnet", "10.0.0.0/8"),), "udp", "10.9.9.9", 53, True),
        ((rule("any", None, 53),), "udp", "1.1.1.1", 53, True),
        ((rule("any", None, 53, "udp"),), "tcp", "1.1.1.1", 53, False),
        ((rule("ip", "10.0.0.1", 5432),), "tcp", "10.0.0.1", 5433, False),
        ((rule("name", "db.internal"),), "tcp", "10.0.0.5", 5432, True),
        ((rule("name", "db.internal"),), "tcp", "192.168.1.5", 5432, False),
    ],
)
def test_remote_filters_send_only_matching_traffic_through_the_target(
    rules: tuple[FilterRule, ...], transport: str, host: str, port: int, remote_side: bool
) -> None:
    remote = policy(OutgoingConfig(filter=TrafficFilter("remote", rules)))
    local = policy(OutgoingConfig(filter=TrafficFilter("local", rules)))
    assert remote.connect_route(transport, host, port, names) == (REMOTE if remote_side else LOCAL)
    # A local filter's names resolve locally: db.internal is 192.168.1.5 there.
    if rules[0].kind != "name":
        assert local.connect_route(transport, host, port, names) == (LOCAL if remote_side else REMOTE)


def test_a_filter_names_host_is_resolved_on_the_filters_side() -> None:
    remote = policy(OutgoingConfig(filter=TrafficFilter("remote", (rule("name", "DB.internal."),))))
    assert remote.dns_route("db.internal", 0) == REMOTE
    assert remote.dns_route("other.internal", 0) == REMOTE  # DNS itself still defaults to the target
    assert remote.names_on(REMOTE) == frozenset({"db.internal"})
    local = policy(OutgoingConfig(filter=TrafficFilter("local", (rule("name", "db.internal", 5432),))))
    assert local.dns_route("db.internal", 5432) == LOCAL
    assert local.dns_route("db.internal", 80) == REMOTE
    assert local.dns_route("db.internal", 0) == LOCAL


def test_dns_switch_and_filter() -> None:
    assert policy(dns=DnsConfig(enabled=False)).dns_route("db", 0) == LOCAL
    remote = policy(dns=DnsConfig(filter=TrafficFilter("remote", (rule("name", "db.internal"),))))
    assert remote.dns_route("db.internal", 0) == REMOTE
    assert remote.dns_route("example.com", 0) == LOCAL
    local = policy(dns=DnsConfig(filter=TrafficFilter("local", (rule("name", "localhost", 1337),))))
    assert local.dns_route("localhost", 1337) == LOCAL
    assert local.dns_route("localhost", 80) == REMOTE


def test_loopback_includes_the_unspecified_address() -> None:
    assert is_loopback("0.0.0.0") and is_loopback("::") and is_loopback("127.1.2.3") and is_loopback("::1")
    assert not is_loopback("10.0.0.1") and not is_loopback("db")
