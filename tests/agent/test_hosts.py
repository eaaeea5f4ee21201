from __future__ import annotations

from pymirrord.agent.hosts import HostsMatch, lookup_hosts

HOSTS = """
# comment line
127.0.0.1   localhost
10.0.0.5    db.internal db   # trailing comment
fd00::5     db.internal
10.0.0.6    DB.internal
not-an-ip   broken.internal
10.0.0.7
"""


def test_every_line_naming_the_host_counts_in_file_order() -> None:
    assert lookup_hosts(HOSTS, "db.internal") == HostsMatch(
        ("10.0.0.5", "fd00::5", "10.0.0.6"), "db.internal"
    )


def test_names_match_case_insensitively_and_aliases_too() -> None:
    assert lookup_hosts(HOSTS, "DB") == HostsMatch(("10.0.0.5",), "db.internal")
    assert lookup_hosts(HOSTS, "db.internal.") is not None


def test_families_filter_the_addresses_but_not_the_match() -> None:
    assert lookup_hosts(HOSTS, "db.internal", ipv4=False) == HostsMatch(("fd00::5",), "db.internal")
    assert lookup_hosts(HOSTS, "localhost", ipv4=False) == HostsMatch((), "localhost")


def test_unknown_names_and_malformed_lines_give_nothing() -> None:
    assert lookup_hosts(HOSTS, "broken.internal") is None
    assert lookup_hosts(HOSTS, "nothing") is None
    assert lookup_hosts(HOSTS, "") is None
    assert lookup_hosts("", "db") is None
