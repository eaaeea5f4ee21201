"""Which side serves a connection or lookup of the app: the target ("remote") or this machine ("local").

No I/O here: the hooks hand in the facts (transport, numeric address, port, the addresses a filter's host
names stand for) and act on the answer.

- ``outgoing.tcp`` / ``outgoing.udp`` off: that transport stays local.
- ``outgoing.ignore_localhost``: loopback stays local (by default loopback is the *target's* loopback).
- ``outgoing.filter``: ``remote`` sends only matching traffic through the target, ``local`` keeps matching
  traffic here. A host name in it matches the addresses that name resolves to on the filter's side, and
  lookups of that name are made on that side too.
- ``dns.enabled`` off: every lookup is local; ``dns.filter`` chooses per name like the outgoing filter.
"""

from __future__ import annotations

import ipaddress
import socket
from typing import TYPE_CHECKING, Any, Callable, Union

if TYPE_CHECKING or __package__:
    from pymirrord.layer.pymirrord_layer_config import DnsConfig, FilterRule, OutgoingConfig
else:
    from pymirrord_layer_config import DnsConfig, FilterRule, OutgoingConfig

REMOTE = "remote"
LOCAL = "local"

IPAddress = Union[ipaddress.IPv4Address, ipaddress.IPv6Address]
NameAddresses = Callable[[str, str], "frozenset[str]"]
"""``(name, side)`` -> the numeric addresses ``name`` resolves to on ``side`` (empty when it does not)."""


def parse_ip(host: str) -> IPAddress | None:
    """The address ``host`` spells (v4-mapped IPv6 addresses as IPv4, scope ids dropped), or None."""
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def numeric_host(
    family: int, host: Any, port: int | None = None, kind: int = socket.SOCK_STREAM
) -> str | None:
    """The numeric address that ``host`` in a socket address stands for, as the kernel would take it.

    Numbers and the special names ``""`` and ``"<broadcast>"`` are read here; other names are looked up
    with ``socket.getaddrinfo`` (the layer's own, when names resolve in the target), whose
    ``socket.gaierror`` the caller gets. None for what is no host at all.
    """
    if isinstance(host, (bytes, bytearray)):
        try:
            host = bytes(host).decode("ascii")
        except UnicodeDecodeError:
            return None
    if not isinstance(host, str):
        return None
    if host == "":
        return "0.0.0.0" if family == socket.AF_INET else "::"
    if host == "<broadcast>" and family == socket.AF_INET:
        return "255.255.255.255"
    try:
        return socket.inet_ntop(family, socket.inet_pton(family, host.split("%", 1)[0]))
    except (OSError, ValueError):
        pass
    infos = socket.getaddrinfo(host, port, family, kind)
    return str(infos[0][4][0]) if infos else None


def is_loopback(host: str) -> bool:
    """Loopback, or the unspecified address (connecting to 0.0.0.0 or :: reaches this host's loopback)."""
    address = parse_ip(host)
    return address is not None and (address.is_loopback or address.is_unspecified)


def normalize_name(name: str) -> str:
    return name.rstrip(".").lower()


def is_localhost_name(name: str) -> bool:
    name = normalize_name(name)
    return name == "localhost" or name.endswith(".localhost")


def _host_matches(rule: FilterRule, address: IPAddress, names: frozenset[str]) -> bool:
    if rule.kind == "any" or rule.host is None:
        return True
    if rule.kind == "ip":
        return parse_ip(rule.host) == address
    if rule.kind == "subnet":
        try:
            return address in ipaddress.ip_network(rule.host, strict=False)
        except (ValueError, TypeError):
            return False
    return str(address) in names


class Policy:
    """The routing decisions of one layer config."""

    def __init__(self, outgoing: OutgoingConfig, dns: DnsConfig) -> None:
        self.outgoing = outgoing
        self.dns = dns
        traffic = outgoing.filter
        self._filter_names = (
            frozenset(normalize_name(r.host) for r in traffic.rules if r.kind == "name" and r.host)
            if traffic is not None
            else frozenset()
        )

    def connect_route(self, transport: str, host: str, port: int, name_addresses: NameAddresses) -> str:
        """Where a connection from the app to numeric ``host``:``port`` goes."""
        if transport == "tcp" and not self.outgoing.tcp:
            return LOCAL
        if transport == "udp" and not self.outgoing.udp:
            return LOCAL
        address = parse_ip(host)
        if address is None:
            return LOCAL
        if self.outgoing.ignore_localhost and is_loopback(host):
            return LOCAL
        traffic = self.outgoing.filter
        if traffic is None:
            return REMOTE
        matched = any(
            _rule_matches(rule, transport, address, port, side=traffic.mode, name_addresses=name_addresses)
            for rule in traffic.rules
        )
        if traffic.mode == "remote":
            return REMOTE if matched else LOCAL
        return LOCAL if matched else REMOTE

    def dns_route(self, name: str, port: int) -> str:
        """Where a lookup of ``name`` (for ``port``, 0 when none) is made."""
        if not self.dns.enabled:
            return LOCAL
        wanted = normalize_name(name)
        traffic = self.outgoing.filter
        if traffic is not None and wanted in self._filter_names:
            for rule in traffic.rules:
                named = rule.kind == "name" and rule.host and normalize_name(rule.host) == wanted
                if named and (rule.port is None or port in (0, rule.port)):
                    return REMOTE if traffic.mode == "remote" else LOCAL
        dns_filter = self.dns.filter
        if dns_filter is None:
            return REMOTE
        matched = any(_name_rule_matches(rule, wanted, port) for rule in dns_filter.rules)
        if dns_filter.mode == "remote":
            return REMOTE if matched else LOCAL
        return LOCAL if matched else REMOTE

    def names_on(self, side: str) -> frozenset[str]:
        """The outgoing filter's host names whose lookups happen on ``side``."""
        traffic = self.outgoing.filter
        if traffic is None or traffic.mode != side:
            return frozenset()
        return self._filter_names


def _rule_matches(
    rule: FilterRule,
    transport: str,
    address: IPAddress,
    port: int,
    *,
    side: str,
    name_addresses: NameAddresses,
) -> bool:
    if rule.protocol not in ("any", transport):
        return False
    if rule.port is not None and rule.port != port:
        return False
    names: frozenset[str] = frozenset()
    if rule.kind == "name" and rule.host:
        names = name_addresses(normalize_name(rule.host), side)
    return _host_matches(rule, address, names)


def _name_rule_matches(rule: FilterRule, name: str, port: int) -> bool:
    if rule.port is not None and port not in (0, rule.port):
        return False
    if rule.kind == "any":
        return True
    if rule.kind == "name" and rule.host:
        return normalize_name(rule.host) == name
    return False  # an address never names a host
