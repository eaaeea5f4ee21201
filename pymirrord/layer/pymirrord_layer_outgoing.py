"""Outgoing connections of the app, made from the target.

When the app connects a TCP socket, or a UDP socket, to an address that the config routes through the target,
the layer asks the session first: the agent opens the connection inside the pod, the session opens a local
interceptor that relays to it, and the app's socket is really connected to that interceptor. ``getpeername``
then shows the remote address the app asked for and ``getsockname`` the connection's address in the pod.
Blocking and non-blocking sockets behave as usual: the pod's connection is made (or refused) during the
``connect`` call, and the local connect that follows is what a non-blocking socket reports in progress.

Left alone, always: the debugger's connections (see ``pymirrord_layer_debugger``), connections to a port this
process itself listens on (they reach that listener, wherever the layer really bound it), sockets other than
IPv4/IPv6 TCP and UDP, and everything when the session cannot be reached (with one warning).
"""

from __future__ import annotations

import _socket
import errno
import os
import socket
import threading
import time
import weakref
from typing import TYPE_CHECKING, Any, Protocol, Union

from pymirrord.protocol import session_to_layer as to_layer
from pymirrord.protocol.outgoing_types import AddressFamily, SocketKind, Transport

if TYPE_CHECKING or __package__:
    from pymirrord.layer.pymirrord_layer_debugger import DebuggerPorts
    from pymirrord.layer.pymirrord_layer_policy import REMOTE, Policy, is_loopback, numeric_host, parse_ip
    from pymirrord.layer.pymirrord_layer_takeover import take_over
    from pymirrord.layer.pymirrord_layer_warn import warn_once
else:
    from pymirrord_layer_debugger import DebuggerPorts
    from pymirrord_layer_policy import REMOTE, Policy, is_loopback, numeric_host, parse_ip
    from pymirrord_layer_takeover import take_over
    from pymirrord_layer_warn import warn_once

SockAddr = tuple[Any, ...]
NAME_TTL = 30.0
"""Seconds the addresses of an outgoing filter's host name are trusted before they are looked up again."""


class OutgoingSession(Protocol):
    """What outgoing connections need from the session connection (``SessionClient``, or a fake)."""

    def connect_out(
        self, transport: Transport, host: str, port: int, ipv6_socket: bool, timeout: float | None
    ) -> tuple[to_layer.ConnectAnswer, int | None]: ...

    def connection_done(self, connection_id: int) -> None: ...

    def resolve(
        self,
        host: str,
        port: int,
        family: AddressFamily,
        kind: SocketKind,
        proto: int,
        *,
        canonical_name: bool = False,
        address_config: bool = False,
    ) -> to_layer.ResolveAnswer: ...


class Connected:
    """An app socket connected through the target: what ``getpeername``/``getsockname`` show."""

    __slots__ = ("connection_id", "local", "owner_pid", "peer", "udp")

    def __init__(self, connection_id: int, peer: SockAddr, local: SockAddr | None, udp: bool) -> None:
        self.connection_id = connection_id
        self.peer = peer
        self.local = local
        self.udp = udp
        self.owner_pid = os.getpid()


class RemotePlan:
    """Connect through the target: ``host`` and ``port`` for the agent, ``peer`` for ``getpeername``."""

    __slots__ = ("host", "peer", "port", "transport")

    def __init__(self, transport: Transport, host: str, port: int, peer: SockAddr) -> None:
        self.transport = transport
        self.host = host
        self.port = port
        self.peer = peer


Plan = Union[RemotePlan, SockAddr, None]
"""A ``RemotePlan``; a local address to connect to instead (this process's listener); None: as asked."""


class Outgoing:
    """The outgoing decisions and requests of one layer."""

    def __init__(self, policy: Policy, session: OutgoingSession, debugger: DebuggerPorts) -> None:
        self.policy = policy
        self.session = session
        self.debugger = debugger
        # Every listening TCP socket of this process: (family, port the app asked for, real address).
        self.listening: weakref.WeakKeyDictionary[socket.socket, tuple[int, int, SockAddr]] = (
            weakref.WeakKeyDictionary()
        )
        self._names: dict[tuple[str, str], tuple[float, frozenset[str]]] = {}
        self._names_lock = threading.Lock()

    # Deciding ------------------------------------------------------------------------------------

    def plan(self, sock: socket.socket, address: Any) -> Plan:
        """Where a ``connect(address)`` of ``sock`` goes; raises ``socket.gaierror`` for unknown names."""
        family = sock.family
        if family not in (socket.AF_INET, socket.AF_INET6):
            return None
        kind = sock.type
        if kind == socket.SOCK_STREAM:
            transport = Transport.TCP
        elif kind == socket.SOCK_DGRAM:
            transport = Transport.UDP
        else:
            return None
        if not isinstance(address, tuple) or len(address) < 2:
            return None
        host, port = address[0], address[1]
        if isinstance(port, bool) or not isinstance(port, int):
            return None
        numeric = numeric_host(family, host, port, kind)
        if numeric is None:
            return None
        loopback = is_loopback(numeric)
        if loopback:
            if self.debugger.contains(numeric, port):
                return None
            if transport is Transport.TCP:
                own = self._own_listener(family, port)
                if own is not None:
                    return own
        route = self.policy.connect_route(transport.value, numeric, port, self.name_addresses)
        if route != REMOTE:
            return None if numeric == host else (numeric, port, *address[2:])
        if family == socket.AF_INET6:
            peer: SockAddr = (numeric, port, *(address[2:4] or (0, 0)))
        else:
            peer = (numeric, port)
        # Connecting to the unspecified address reaches loopback: the agent must name it.
        target = numeric
        parsed = parse_ip(numeric)
        if parsed is not None and parsed.is_unspecified:
            target = "127.0.0.1" if parsed.version == 4 else "::1"
        return RemotePlan(transport, target, port, peer)

    def _own_listener(self, family: int, port: int) -> SockAddr | None:
        """The real address of this process's listener for ``port``, as ``family`` can reach it."""
        if port == 0:
            return None
        best: tuple[int, int, SockAddr] | None = None
        for entry in list(self.listening.values()):
            if entry[1] == port and (best is None or entry[0] == family):
                best = entry
        if best is None:
            return None
        listener_family, _, real = best
        host = real[0]
        if listener_family == socket.AF_INET6:
            parsed = parse_ip(host)
            loopback = host if parsed is not None and parsed.is_loopback and ":" in host else "::1"
            if family == socket.AF_INET6:
                return (loopback, real[1], 0, 0)
            return ("127.0.0.1", real[1])
        loopback = host if host.startswith("127.") else "127.0.0.1"
        if family == socket.AF_INET6:
            return ("::ffff:" + loopback, real[1], 0, 0)
        return (loopback, real[1])

    def name_addresses(self, name: str, side: str) -> frozenset[str]:
        """The addresses an outgoing filter's host ``name`` stands for, resolved on the filter's ``side``."""
        now = time.monotonic()
        with self._names_lock:
            cached = self._names.get((name, side))
        if cached is not None and cached[0] > now:
            return cached[1]
        addresses: set[str] = set()
        try:
            if side == REMOTE:
                answer = self.session.resolve(name, 0, AddressFamily.ANY, SocketKind.STREAM, 0)
                addresses = {info.host for info in answer.addresses}
            else:
                addresses = {str(info[4][0]) for info in _socket.getaddrinfo(name, None)}
        except Exception as error:
            warn_once(f"filter-name:{name}", f"cannot resolve {name} of the outgoing filter: {error}")
        self.remember(name, side, addresses)
        with self._names_lock:
            return self._names[(name, side)][1]

    def remember(self, name: str, side: str, addresses: set[str] | frozenset[str]) -> None:
        """Addresses the app itself resolved for a filter's host name (they match the filter too)."""
        known = frozenset(_normal(a) for a in addresses)
        with self._names_lock:
            cached = self._names.get((name, side))
            if cached is not None:
                known |= cached[1]
            self._names[(name, side)] = (time.monotonic() + NAME_TTL, known)

    # Connecting ----------------------------------------------------------------------------------

    def open(self, sock: socket.socket, plan: RemotePlan) -> tuple[Connected, SockAddr | None] | None:
        """Opens the connection in the pod: the socket's state and the interceptor to connect to.

        The interceptor is None when a local agent handed over the connected socket itself: it is then
        already in place of ``sock``, really connected from the pod, and nothing is left to connect.
        None when the session cannot be reached (the caller connects locally); ``OSError`` when the pod's
        connection failed (``ConnectionRefusedError``, ...), as the real connect would have raised it.
        """
        timeout = sock.gettimeout()
        try:
            answer, handed = self.session.connect_out(
                plan.transport, plan.host, plan.port, sock.family == socket.AF_INET6, timeout or None
            )
        except Exception as error:
            warn_once("outgoing", f"cannot connect through the target ({error}); connecting from here")
            return None
        udp = plan.transport is Transport.UDP
        local = None
        if answer.local is not None:
            local = _for_family(sock.family, answer.local.host, answer.local.port)
        if handed is not None:
            # A socket connected from the pod, or a tunnel to the agent's connection: either way
            # ``getsockname`` shows the connection's address in the pod. Nothing to tell the session
            # when it closes: the connection is the app's alone.
            take_over(sock, handed)
            return Connected(0, plan.peer, local, udp=False), None
        interceptor = answer.interceptor
        if interceptor is None:
            raise _os_error(answer.error, answer.message, timeout)
        if sock.family == socket.AF_INET6:
            target: SockAddr = (interceptor.host, interceptor.port, 0, 0)
        else:
            target = (interceptor.host, interceptor.port)
        return Connected(answer.connection_id, plan.peer, local, udp), target

    def closed(self, state: Connected) -> None:
        """The app closed a socket connected through the target (only UDP needs telling)."""
        if state.udp and state.owner_pid == os.getpid():
            try:
                self.session.connection_done(state.connection_id)
            except Exception as error:
                warn_once("connection-done", f"cannot tell the session about a closed socket: {error}")


def same_peer(state: Connected, address: Any) -> bool:
    """Whether ``address`` (of a ``sendto``) is the remote peer the socket was connected to."""
    if not isinstance(address, tuple) or len(address) < 2:
        return False
    host = address[0]
    if isinstance(host, (bytes, bytearray)):
        host = bytes(host).decode("ascii", "replace")
    return address[1] == state.peer[1] and isinstance(host, str) and _normal(host) == _normal(state.peer[0])


def _normal(host: str) -> str:
    address = parse_ip(host)
    return host if address is None else str(address)


def _for_family(family: int, host: str, port: int) -> SockAddr:
    if family == socket.AF_INET6:
        if ":" not in host:
            host = "::ffff:" + host
        return (host, port, 0, 0)
    if host.startswith("::ffff:") and "." in host:
        host = host[len("::ffff:") :]
    return (host, port)


def _os_error(name: str, message: str, timeout: float | None) -> OSError:
    """The error the app's connect raises: the errno the pod's connect got, as this system numbers it."""
    code = getattr(errno, name, None) if name.startswith("E") else None
    if not isinstance(code, int):
        return OSError(errno.EIO, f"{os.strerror(errno.EIO)} ({message or name})")
    if code == errno.ETIMEDOUT and timeout:
        return socket.timeout("timed out")
    # OSError picks the subclass itself: ECONNREFUSED gives ConnectionRefusedError.
    return OSError(code, os.strerror(code))
