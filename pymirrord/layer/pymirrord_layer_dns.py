"""Name lookups of the app, answered as inside the target: ``getaddrinfo``, ``gethostbyname(_ex)``.

The functions are replaced on the ``socket`` module, which is where the stdlib (``socket.create_connection``,
``asyncio``'s resolver thread, ``urllib``) and libraries (``requests``/``urllib3``, aiohttp's default
resolver) look them up at call time. Lookups stay local for numeric addresses, ``localhost``, names the
config keeps local, and when the session cannot be reached (with one warning). Errors are the ones the C
library gives: ``socket.gaierror`` with ``EAI_NONAME`` for an unknown name, and so on.
"""

from __future__ import annotations

import socket
from typing import TYPE_CHECKING, Any, Callable

from pymirrord.protocol.outgoing_types import AddressFamily, AddressInfo, ResolveError, SocketKind

if TYPE_CHECKING or __package__:
    from pymirrord.layer.pymirrord_layer_outgoing import Outgoing, OutgoingSession
    from pymirrord.layer.pymirrord_layer_policy import LOCAL, REMOTE, Policy, is_localhost_name
    from pymirrord.layer.pymirrord_layer_warn import warn_once
else:
    from pymirrord_layer_outgoing import Outgoing, OutgoingSession
    from pymirrord_layer_policy import LOCAL, REMOTE, Policy, is_localhost_name
    from pymirrord_layer_warn import warn_once

_PATCHED = ("getaddrinfo", "gethostbyname", "gethostbyname_ex")

_FAMILIES: dict[int, AddressFamily] = {
    socket.AF_UNSPEC: AddressFamily.ANY,
    socket.AF_INET: AddressFamily.IPV4,
    socket.AF_INET6: AddressFamily.IPV6,
}
_KINDS: dict[int, SocketKind] = {
    0: SocketKind.ANY,
    socket.SOCK_STREAM: SocketKind.STREAM,
    socket.SOCK_DGRAM: SocketKind.DGRAM,
    socket.SOCK_RAW: SocketKind.RAW,
}
_KIND_NUMBERS = {kind: number for number, kind in _KINDS.items() if number}

# What the C library says for each error (gai_strerror), so the app sees the message it always sees.
_GAI_ERRORS: dict[ResolveError, tuple[int, str]] = {
    ResolveError.NO_NAME: (socket.EAI_NONAME, "Name or service not known"),
    ResolveError.NO_DATA: (
        getattr(socket, "EAI_NODATA", socket.EAI_NONAME),
        "No address associated with hostname",
    ),
    ResolveError.AGAIN: (socket.EAI_AGAIN, "Temporary failure in name resolution"),
    ResolveError.FAIL: (socket.EAI_FAIL, "Non-recoverable failure in name resolution"),
    ResolveError.FAMILY: (socket.EAI_FAMILY, "ai_family not supported"),
}


def gai_error(error: ResolveError) -> socket.gaierror:
    code, message = _GAI_ERRORS.get(error, _GAI_ERRORS[ResolveError.FAIL])
    return socket.gaierror(code, message)


def _is_numeric(host: str) -> bool:
    for family in (socket.AF_INET, socket.AF_INET6):
        try:
            socket.inet_pton(family, host.split("%", 1)[0])
        except (OSError, ValueError):
            continue
        return True
    return False


def _port_number(port: Any, kind: int) -> int | None:
    """The numeric port of ``getaddrinfo``'s ``port`` argument; None when the real one must judge it."""
    if port is None:
        return 0
    if isinstance(port, bytes):
        try:
            port = port.decode("ascii")
        except UnicodeDecodeError:
            return None
    if isinstance(port, bool):
        return None
    if isinstance(port, int):
        return port if 0 <= port <= 65535 else None
    if isinstance(port, str):
        if port.isdigit():
            return int(port) if int(port) <= 65535 else None
        protocol = "udp" if kind == socket.SOCK_DGRAM else "tcp"
        try:
            return socket.getservbyname(port, protocol)
        except OSError:
            return None
    return None


def to_python(
    infos: tuple[AddressInfo, ...], canonical_name: str | None
) -> list[tuple[socket.AddressFamily, socket.SocketKind, int, str, tuple[Any, ...]]]:
    """The answer as ``socket.getaddrinfo`` shapes it (the canonical name on the first entry only)."""
    result: list[tuple[socket.AddressFamily, socket.SocketKind, int, str, tuple[Any, ...]]] = []
    for index, info in enumerate(infos):
        family = socket.AF_INET6 if info.family is AddressFamily.IPV6 else socket.AF_INET
        kind = socket.SocketKind(_KIND_NUMBERS.get(info.kind, socket.SOCK_STREAM))
        address: tuple[Any, ...] = (
            (info.host, info.port, 0, 0)
            if family == socket.AF_INET6
            else (
                info.host,
                info.port,
            )
        )
        name = canonical_name if index == 0 and canonical_name else ""
        result.append((family, kind, info.proto, name, address))
    return result


class DnsHooks:
    """Replaces the lookup functions of the ``socket`` module; ``uninstall`` puts the originals back."""

    def __init__(self, policy: Policy, session: OutgoingSession, outgoing: Outgoing | None) -> None:
        self.policy = policy
        self.session = session
        self.outgoing = outgoing
        self._saved: dict[str, Callable[..., Any]] = {}

    @property
    def installed(self) -> bool:
        return bool(self._saved)

    def install(self) -> None:
        if self._saved:
            return
        self._saved = {name: getattr(socket, name) for name in _PATCHED}
        for name, function in self._patches().items():
            setattr(socket, name, function)

    def uninstall(self) -> None:
        for name, original in self._saved.items():
            setattr(socket, name, original)
        self._saved = {}

    def remote_lookup(
        self, host: str, port: int, family: int, kind: int, proto: int, *, flags: int
    ) -> list[tuple[socket.AddressFamily, socket.SocketKind, int, str, tuple[Any, ...]]] | None:
        """The target's answer, or None when the lookup is not the target's to answer."""
        if family not in _FAMILIES or kind not in _KINDS or flags & socket.AI_NUMERICHOST:
            return None
        if _is_numeric(host) or is_localhost_name(host):
            return None
        if self.policy.dns_route(host, port) != REMOTE:
            return None
        try:
            answer = self.session.resolve(
                host,
                port,
                _FAMILIES[family],
                _KINDS[kind],
                proto,
                canonical_name=bool(flags & socket.AI_CANONNAME),
                address_config=bool(flags & socket.AI_ADDRCONFIG),
            )
        except Exception as error:
            warn_once("dns", f"cannot resolve names in the target ({error}); resolving them here")
            return None
        if answer.error is not None:
            raise gai_error(answer.error)
        if self.outgoing is not None and host.rstrip(".").lower() in self.policy.names_on(REMOTE):
            self.outgoing.remember(host.rstrip(".").lower(), REMOTE, {i.host for i in answer.addresses})
        return to_python(answer.addresses, answer.canonical_name)

    def _patches(self) -> dict[str, Callable[..., Any]]:
        real_getaddrinfo = self._saved["getaddrinfo"]
        real_gethostbyname = self._saved["gethostbyname"]
        real_gethostbyname_ex = self._saved["gethostbyname_ex"]
        remote_lookup = self.remote_lookup
        outgoing = self.outgoing
        local_names = self.policy.names_on(LOCAL)

        def getaddrinfo(  # noqa: PLR0917 - the stdlib's signature
            host: Any, port: Any, family: int = 0, type: int = 0, proto: int = 0, flags: int = 0
        ) -> list[tuple[socket.AddressFamily, socket.SocketKind, int, str, tuple[Any, ...]]]:
            name = _text(host)
            number = _port_number(port, type)
            if name is not None and number is not None:
                answer = remote_lookup(name, number, family, type, proto, flags=flags)
                if answer is not None:
                    return answer
            result: list[Any] = real_getaddrinfo(host, port, family, type, proto, flags)
            if outgoing is not None and name is not None and name.rstrip(".").lower() in local_names:
                outgoing.remember(name.rstrip(".").lower(), LOCAL, {str(info[4][0]) for info in result})
            return result

        def gethostbyname(host: Any) -> str:
            name = _text(host)
            if name is not None:
                answer = remote_lookup(name, 0, socket.AF_INET, 0, 0, flags=0)
                if answer is not None:
                    return str(answer[0][4][0])
            result: str = real_gethostbyname(host)
            return result

        def gethostbyname_ex(host: Any) -> tuple[str, list[str], list[str]]:
            name = _text(host)
            if name is not None:
                answer = remote_lookup(
                    name, 0, socket.AF_INET, socket.SOCK_STREAM, 0, flags=socket.AI_CANONNAME
                )
                if answer is not None:
                    canonical = answer[0][3] or name
                    addresses = list(dict.fromkeys(str(info[4][0]) for info in answer))
                    aliases = [name] if canonical != name else []
                    return canonical, aliases, addresses
            result: tuple[str, list[str], list[str]] = real_gethostbyname_ex(host)
            return result

        return {
            "getaddrinfo": getaddrinfo,
            "gethostbyname": gethostbyname,
            "gethostbyname_ex": gethostbyname_ex,
        }


def _text(host: Any) -> str | None:
    if isinstance(host, (bytes, bytearray)):
        try:
            return bytes(host).decode("idna")
        except UnicodeError:
            return None
    if isinstance(host, str) and host:
        return host
    return None
