from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from pymirrord.agent.dns import Resolver, expand
from pymirrord.protocol.agent_to_session import DnsResult
from pymirrord.protocol.outgoing_types import AddressFamily, AddressInfo, ResolveError, SocketKind
from pymirrord.protocol.session_to_agent import DnsLookup


def test_expand_gives_each_socket_type_per_address_like_getaddrinfo() -> None:
    assert expand(["10.0.0.1", "fd00::1"], 80, SocketKind.ANY, 0) == (
        AddressInfo(AddressFamily.IPV4, SocketKind.STREAM, 6, "10.0.0.1", 80),
        AddressInfo(AddressFamily.IPV4, SocketKind.DGRAM, 17, "10.0.0.1", 80),
        AddressInfo(AddressFamily.IPV4, SocketKind.RAW, 0, "10.0.0.1", 80),
        AddressInfo(AddressFamily.IPV6, SocketKind.STREAM, 6, "fd00::1", 80),
        AddressInfo(AddressFamily.IPV6, SocketKind.DGRAM, 17, "fd00::1", 80),
        AddressInfo(AddressFamily.IPV6, SocketKind.RAW, 0, "fd00::1", 80),
    )


@pytest.mark.parametrize(
    ("kind", "proto", "expected"),
    [
        (SocketKind.STREAM, 0, [(SocketKind.STREAM, 6)]),
        (SocketKind.ANY, 17, [(SocketKind.DGRAM, 17)]),
        (SocketKind.DGRAM, 17, [(SocketKind.DGRAM, 17)]),
        (SocketKind.ANY, 132, [(SocketKind.RAW, 132)]),
    ],
)
def test_expand_honours_kind_and_proto(
    kind: SocketKind, proto: int, expected: list[tuple[SocketKind, int]]
) -> None:
    assert [(i.kind, i.proto) for i in expand(["10.0.0.1"], 0, kind, proto)] == expected


def lookup(
    etc: Path, host: str, family: AddressFamily = AddressFamily.ANY, *, canonical: bool = False
) -> DnsResult:
    request = DnsLookup(7, host, 443, family, SocketKind.STREAM, 0, canonical, False)
    return asyncio.run(Resolver(lambda: etc, lifetime=2).lookup(request))


def test_hosts_file_answers_first_with_its_canonical_name(tmp_path: Path) -> None:
    (tmp_path / "hosts").write_text("10.1.2.3 db.internal db\n")
    result = lookup(tmp_path, "db", canonical=True)
    assert result.request_id == 7
    assert result.addresses == (AddressInfo(AddressFamily.IPV4, SocketKind.STREAM, 6, "10.1.2.3", 443),)
    assert result.canonical_name == "db.internal"
    assert result.error is None


def test_a_hosts_name_without_the_family_asked_is_nodata(tmp_path: Path) -> None:
    (tmp_path / "hosts").write_text("10.1.2.3 db.internal\n")
    assert lookup(tmp_path, "db.internal", AddressFamily.IPV6).error is ResolveError.NO_DATA


def test_localhost_is_loopback_even_without_a_hosts_entry(tmp_path: Path) -> None:
    result = lookup(tmp_path, "localhost", AddressFamily.IPV4)
    assert [i.host for i in result.addresses] == ["127.0.0.1"]


def test_a_name_server_nobody_answers_for_is_a_temporary_failure(tmp_path: Path) -> None:
    # 127.0.0.9 in a namespace without anything on port 53: refused at once, so the test does not wait.
    (tmp_path / "resolv.conf").write_text("nameserver 127.0.0.9\noptions timeout:1 attempts:1\n")
    result = lookup(tmp_path, "nothing-here.test")
    assert result.error in (ResolveError.AGAIN, ResolveError.FAIL)
    assert result.addresses == ()


def test_an_empty_name_is_no_name(tmp_path: Path) -> None:
    assert lookup(tmp_path, "").error is ResolveError.NO_NAME
