"""Name resolution as the target would do it: its ``hosts`` file first, then DNS with its ``resolv.conf``.

A fresh resolver is built for every lookup, because the files may change while the agent runs. Search domains
and ``ndots`` from ``resolv.conf`` apply, so a short Kubernetes service name resolves as it does in a pod.
The DNS queries leave from the agent, which runs in the target's network namespace.

``expand`` (no I/O) turns addresses into ``getaddrinfo``'s answers: one per address and socket type.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import socket
from collections.abc import Callable, Sequence
from pathlib import Path

import dns.asyncresolver
import dns.exception
import dns.resolver

from pymirrord.agent.hosts import lookup_hosts
from pymirrord.protocol.agent_to_session import DnsResult
from pymirrord.protocol.outgoing_types import AddressFamily, AddressInfo, ResolveError, SocketKind
from pymirrord.protocol.session_to_agent import DnsLookup

log = logging.getLogger(__name__)

LOOKUP_LIFETIME = 10.0
"""The longest one lookup may take, whatever resolv.conf's timeout and attempts say (nothing hangs)."""

_KIND_PROTOS: tuple[tuple[SocketKind, int], ...] = (
    (SocketKind.STREAM, socket.IPPROTO_TCP),
    (SocketKind.DGRAM, socket.IPPROTO_UDP),
    (SocketKind.RAW, 0),
)


def expand(addresses: Sequence[str], port: int, kind: SocketKind, proto: int) -> tuple[AddressInfo, ...]:
    """``getaddrinfo``'s answers: per address, each socket type that fits ``kind`` and ``proto``."""
    pairs = _socket_types(kind, proto)
    infos: list[AddressInfo] = []
    for address in addresses:
        family = AddressFamily.IPV6 if ":" in address else AddressFamily.IPV4
        infos.extend(AddressInfo(family, k, p, address, port) for k, p in pairs)
    return tuple(infos)


def _socket_types(kind: SocketKind, proto: int) -> list[tuple[SocketKind, int]]:
    if kind is SocketKind.ANY:
        if proto == 0:
            return list(_KIND_PROTOS)
        return [(k, p) for k, p in _KIND_PROTOS if p == proto] or [(SocketKind.RAW, proto)]
    if proto == 0:
        return [(k, p) for k, p in _KIND_PROTOS if k is kind]
    return [(kind, proto)]


def _is_localhost(name: str) -> bool:
    name = name.rstrip(".").lower()
    return name == "localhost" or name.endswith(".localhost")


def _routable(address: str) -> bool:
    """Whether the namespace has a route to ``address``: a UDP connect picks one without sending anything."""
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_DGRAM) as probe:
            probe.connect((address, 9))
    except OSError:
        return False
    return True


class Resolver:
    """Answers ``DnsLookup`` messages from the target's files; ``etc_dir`` is asked afresh for each lookup."""

    def __init__(self, etc_dir: Callable[[], Path], *, lifetime: float = LOOKUP_LIFETIME) -> None:
        self._etc_dir = etc_dir
        self._lifetime = lifetime

    async def lookup(self, request: DnsLookup) -> DnsResult:
        name = request.host
        ipv4 = request.family in (AddressFamily.ANY, AddressFamily.IPV4)
        ipv6 = request.family in (AddressFamily.ANY, AddressFamily.IPV6)
        try:
            addresses, canonical = await self._addresses(name, ipv4=ipv4, ipv6=ipv6)
        except _LookupFailed as failure:
            log.debug("lookup of %r failed: %s", name, failure.message)
            return DnsResult(request.request_id, (), None, failure.error, failure.message)
        if len(addresses) > 1 or request.address_config:
            # Addresses the target can reach come first (glibc sorts the same way); with AI_ADDRCONFIG the
            # others are left out.
            routable = await asyncio.to_thread(lambda: {a: _routable(a) for a in addresses})
            ordered = [a for a in addresses if routable[a]]
            if not request.address_config:
                ordered += [a for a in addresses if not routable[a]]
            addresses = ordered
            if not addresses:
                message = f"{name} has no address of a family the target is configured for"
                return DnsResult(request.request_id, (), None, ResolveError.NO_DATA, message)
        infos = expand(addresses, request.port, request.kind, request.proto)
        return DnsResult(request.request_id, infos, canonical if request.canonical_name else None, None, "")

    async def _addresses(self, name: str, *, ipv4: bool, ipv6: bool) -> tuple[list[str], str]:
        if not name or len(name) > 253:
            raise _LookupFailed(ResolveError.NO_NAME, f"{name!r} is not a valid host name")
        with contextlib.suppress(ValueError):
            literal = ipaddress.ip_address(name)
            if (literal.version == 4 and ipv4) or (literal.version == 6 and ipv6):
                return [str(literal)], name
            raise _LookupFailed(ResolveError.FAMILY, f"{name} is not an address of the family asked for")
        etc = self._etc_dir()
        hosts_text = await asyncio.to_thread(_read, etc / "hosts")
        match = lookup_hosts(hosts_text, name, ipv4=ipv4, ipv6=ipv6)
        if match is not None:
            if not match.addresses:
                raise _LookupFailed(ResolveError.NO_DATA, f"{name} has no address of the family asked for")
            return list(match.addresses), match.canonical_name
        if _is_localhost(name):
            # RFC 6761: localhost is loopback even when the hosts file does not say so.
            return [a for a, ok in (("127.0.0.1", ipv4), ("::1", ipv6)) if ok], "localhost"
        return await self._dns(name, etc / "resolv.conf", ipv4=ipv4, ipv6=ipv6)

    async def _dns(self, name: str, resolv_conf: Path, *, ipv4: bool, ipv6: bool) -> tuple[list[str], str]:
        resolver = await asyncio.to_thread(_resolver, resolv_conf)
        family = socket.AF_UNSPEC if ipv4 and ipv6 else socket.AF_INET if ipv4 else socket.AF_INET6
        try:
            answers = await resolver.resolve_name(name, family, search=True, lifetime=self._lifetime)
        except dns.resolver.NXDOMAIN:
            raise _LookupFailed(ResolveError.NO_NAME, f"{name} does not exist (NXDOMAIN)") from None
        except dns.resolver.NoAnswer:
            raise _LookupFailed(ResolveError.NO_DATA, f"{name} has no address records") from None
        except dns.resolver.NoNameservers as error:
            raise _LookupFailed(
                ResolveError.AGAIN, f"no name server could answer for {name}: {error}"
            ) from None
        except dns.exception.Timeout:
            raise _LookupFailed(ResolveError.AGAIN, f"no name server answered for {name} in time") from None
        except dns.exception.DNSException as error:
            raise _LookupFailed(ResolveError.FAIL, f"looking up {name} failed: {error}") from None
        addresses = list(dict.fromkeys(address for address, _ in answers.addresses_and_families()))
        if not addresses:
            raise _LookupFailed(ResolveError.NO_DATA, f"{name} has no address records")
        return addresses, answers.canonical_name().to_text(omit_final_dot=True)


class _LookupFailed(Exception):
    def __init__(self, error: ResolveError, message: str) -> None:
        super().__init__(message)
        self.error = error
        self.message = message


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""


def _resolver(resolv_conf: Path) -> dns.asyncresolver.Resolver:
    try:
        return dns.asyncresolver.Resolver(filename=str(resolv_conf))
    except (dns.resolver.NoResolverConfiguration, OSError):
        # Without a usable resolv.conf the C library asks a name server on the local host; so do we.
        resolver = dns.asyncresolver.Resolver(configure=False)
        resolver.nameservers = ["127.0.0.1"]
        return resolver
