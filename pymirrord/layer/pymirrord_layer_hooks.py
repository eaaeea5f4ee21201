"""Patches on ``socket.socket`` that give an app's listeners the pod's traffic.

The methods are replaced on the class itself, so every socket is covered, also those the stdlib and
frameworks create internally (``socketserver``, ``asyncio``, ``ssl.SSLSocket`` via ``super()``).

- ``bind`` of a served port really binds to loopback on a free port (or ``listen_ports``' choice), so
  port 80 needs no privilege and two apps never collide; the requested address is remembered.
- ``listen`` asks the session to deliver the pod port's connections to the real listener.
- ``getsockname`` shows the app the address it asked for; on an accepted connection, the pod-side one.
- ``accept`` asks the session who is behind a connection it made and returns the original client, which
  ``getpeername`` repeats.
- ``close`` of a served listener tells the session.
- with outgoing traffic on (``pymirrord_layer_outgoing``): ``connect``/``connect_ex`` of TCP and UDP sockets
  go through the target; ``getpeername``/``getsockname`` show the remote and pod-side addresses;
  ``sendto`` naming the connected peer and ``recvfrom(_into)`` speak of that peer too.

Sockets the layer does not serve pay one lookup in a ``WeakKeyDictionary`` per patched call.
"""

from __future__ import annotations

import errno
import os
import socket
import weakref
from typing import TYPE_CHECKING, Any, Callable, Protocol, Union

from pymirrord.protocol.types import SHARED_SOURCE

if TYPE_CHECKING or __package__:
    from pymirrord.layer.pymirrord_layer_config import IncomingConfig
    from pymirrord.layer.pymirrord_layer_outgoing import Connected, Outgoing, RemotePlan, same_peer
    from pymirrord.layer.pymirrord_layer_policy import numeric_host
    from pymirrord.layer.pymirrord_layer_takeover import take_over
    from pymirrord.layer.pymirrord_layer_warn import warn, warn_once
else:
    from pymirrord_layer_config import IncomingConfig
    from pymirrord_layer_outgoing import Connected, Outgoing, RemotePlan, same_peer
    from pymirrord_layer_policy import numeric_host
    from pymirrord_layer_takeover import take_over
    from pymirrord_layer_warn import warn, warn_once

Address = tuple[str, int]
SockAddr = tuple[Any, ...]

_PATCHED = ("bind", "listen", "accept", "getsockname", "getpeername", "close")
# Only with outgoing traffic on: the connects, and the UDP calls that name the peer.
_OUTGOING_PATCHED = ("connect", "connect_ex", "sendto", "recvfrom", "recvfrom_into")


class Session(Protocol):
    """What the hooks need from the session connection (``SessionClient``, or a fake in tests)."""

    def listen(self, port: int, host: str, real_port: int) -> str | None: ...

    def listen_closed(self, port: int, host: str, real_port: int) -> None: ...

    def peer(self, port: int) -> tuple[Address | None, Address | None, int | None]: ...


class _Listener:
    """A socket bound through the layer; ``served`` once the session accepted its ListenRequest."""

    __slots__ = ("announced", "owner_pid", "pod_port", "requested", "served")

    def __init__(self, requested: SockAddr, pod_port: int) -> None:
        self.requested = requested
        self.pod_port = pod_port
        self.announced = False
        self.served = False
        # A forked child inherits the listener object; its close() must not unsubscribe the parent.
        self.owner_pid = os.getpid()


class _Accepted:
    """A connection the session delivered: the peer and pod-side address the app should see."""

    __slots__ = ("local", "peer")

    def __init__(self, peer: SockAddr, local: SockAddr | None) -> None:
        self.peer = peer
        self.local = local


_State = Union[_Listener, _Accepted, Connected]


class Hooks:
    """Installs the patches for one incoming config and session; ``uninstall`` restores the class."""

    def __init__(self, incoming: IncomingConfig, session: Session, outgoing: Outgoing | None = None) -> None:
        self.incoming = incoming
        self.session = session
        self.outgoing = outgoing
        self.states: weakref.WeakKeyDictionary[socket.socket, _State] = weakref.WeakKeyDictionary()
        self._saved: dict[str, Any] = {}

    @property
    def installed(self) -> bool:
        return bool(self._saved)

    def install(self) -> None:
        if self._saved:
            return
        cls = socket.socket
        # Only attributes defined on socket.socket itself are restored as such; the others (bind,
        # listen, ...) come from _socket.socket and are restored by deleting our override.
        names = _PATCHED + (_OUTGOING_PATCHED if self.outgoing is not None else ())
        self._saved = {name: cls.__dict__.get(name, _INHERITED) for name in names}
        originals: dict[str, Callable[..., Any]] = {name: getattr(cls, name) for name in names}
        for name, function in self._patches(originals).items():
            setattr(cls, name, function)

    def uninstall(self) -> None:
        cls = socket.socket
        for name, original in self._saved.items():
            if original is _INHERITED:
                delattr(cls, name)
            else:
                setattr(cls, name, original)
        self._saved = {}

    def _patches(self, originals: dict[str, Callable[..., Any]]) -> dict[str, Callable[..., Any]]:
        # Closures over locals rather than methods: the hot path is one dict lookup and a call.
        states = self.states
        session = self.session
        plan = self._plan
        real_bind = originals["bind"]
        real_listen = originals["listen"]
        real_accept = originals["accept"]
        real_getsockname = originals["getsockname"]
        real_getpeername = originals["getpeername"]
        real_close = originals["close"]
        outgoing = self.outgoing

        def bind(sock: socket.socket, address: Any) -> None:
            planned = plan(sock, address)
            if planned is None:
                real_bind(sock, address)
                return
            real_address, listener = planned
            real_bind(sock, real_address)
            states[sock] = listener

        def listen(sock: socket.socket, *backlog: int) -> None:
            real_listen(sock, *backlog)
            state = states.get(sock)
            if outgoing is not None:
                _note_listener(outgoing, sock, state, real_getsockname)
            if state is None or not isinstance(state, _Listener) or state.announced:
                return
            state.announced = True
            real = real_getsockname(sock)
            error = session.listen(state.pod_port, real[0], real[1])
            if error is None:
                state.served = True
            else:
                warn(f"port {state.pod_port} not served: {error}")

        def accept(sock: socket.socket) -> tuple[socket.socket, Any]:
            conn, address = real_accept(sock)
            state = states.get(sock)
            if state is None or not isinstance(state, _Listener) or not state.served:
                return conn, address
            if not _is_loopback(address[0]) or address[0] == SHARED_SOURCE:
                return conn, address
            try:
                client, local, handed = session.peer(address[1])
            except Exception as error:
                warn_once("peer", f"cannot learn the original client of a connection: {error}")
                return conn, address
            if handed is not None:
                take_over(conn, handed)
            if client is None:
                return conn, address
            peer = _for_family(sock.family, client)
            states[conn] = _Accepted(peer, None if local is None else _for_family(sock.family, local))
            return conn, peer

        def getsockname(sock: socket.socket) -> Any:
            if states:
                state = states.get(sock)
                if state is not None:
                    if isinstance(state, _Listener):
                        return state.requested
                    if state.local is not None:
                        return state.local
            return real_getsockname(sock)

        def getpeername(sock: socket.socket) -> Any:
            if states:
                state = states.get(sock)
                if isinstance(state, (_Accepted, Connected)):
                    return state.peer
            return real_getpeername(sock)

        def close(sock: socket.socket) -> None:
            state = states.pop(sock, None) if states else None
            if isinstance(state, Connected):
                real_close(sock)
                if outgoing is not None:
                    outgoing.closed(state)
                return
            if not (isinstance(state, _Listener) and state.served and state.owner_pid == os.getpid()):
                real_close(sock)
                return
            try:
                real = real_getsockname(sock)  # which of the app's listeners this was; gone once closed
            except OSError:
                real = None
            try:
                real_close(sock)
            finally:
                if real is not None:
                    session.listen_closed(state.pod_port, real[0], real[1])

        patches: dict[str, Callable[..., Any]] = {
            "bind": bind,
            "listen": listen,
            "accept": accept,
            "getsockname": getsockname,
            "getpeername": getpeername,
            "close": close,
        }
        if outgoing is not None:
            patches.update(self._outgoing_patches(outgoing, originals))
        return patches

    def _outgoing_patches(
        self, outgoing: Outgoing, originals: dict[str, Callable[..., Any]]
    ) -> dict[str, Callable[..., Any]]:
        states = self.states
        plan = outgoing.plan
        open_remote = outgoing.open
        real_connect = originals["connect"]
        real_connect_ex = originals["connect_ex"]
        real_sendto = originals["sendto"]
        real_recvfrom = originals["recvfrom"]
        real_recvfrom_into = originals["recvfrom_into"]
        real_send = socket.socket.send

        def connect(sock: socket.socket, address: Any) -> None:
            planned = plan(sock, address)
            if planned is None:
                real_connect(sock, address)
            elif not isinstance(planned, RemotePlan):
                real_connect(sock, planned)  # this process's own listener, wherever it really is
            else:
                opened = open_remote(sock, planned)
                if opened is None:
                    real_connect(sock, address)
                    return
                states[sock] = opened[0]
                if opened[1] is not None:
                    real_connect(sock, opened[1])

        def connect_ex(sock: socket.socket, address: Any) -> int:
            planned = plan(sock, address)
            if planned is None:
                result: int = real_connect_ex(sock, address)
                return result
            if not isinstance(planned, RemotePlan):
                result = real_connect_ex(sock, planned)
                return result
            try:
                opened = open_remote(sock, planned)
            except OSError as error:
                return error.errno or errno.EIO
            if opened is None:
                result = real_connect_ex(sock, address)
                return result
            states[sock] = opened[0]
            if opened[1] is None:
                return 0  # a handed-over socket is connected already
            result = real_connect_ex(sock, opened[1])
            return result

        def sendto(sock: socket.socket, data: Any, *args: Any) -> int:
            if states and args:
                state = states.get(sock)
                if isinstance(state, Connected) and state.udp and same_peer(state, args[-1]):
                    # The app names its peer explicitly: the datagram goes the connected way, through the pod.
                    sent: int = real_send(sock, data, args[0] if len(args) > 1 else 0)
                    return sent
            sent = real_sendto(sock, data, *args)
            return sent

        def recvfrom(sock: socket.socket, *args: Any) -> tuple[bytes, Any]:
            data, address = real_recvfrom(sock, *args)
            if states:
                state = states.get(sock)
                if isinstance(state, Connected) and state.udp:
                    return data, state.peer
            return data, address

        def recvfrom_into(sock: socket.socket, *args: Any) -> tuple[int, Any]:
            count, address = real_recvfrom_into(sock, *args)
            if states:
                state = states.get(sock)
                if isinstance(state, Connected) and state.udp:
                    return count, state.peer
            return count, address

        return {
            "connect": connect,
            "connect_ex": connect_ex,
            "sendto": sendto,
            "recvfrom": recvfrom,
            "recvfrom_into": recvfrom_into,
        }

    def _plan(self, sock: socket.socket, address: Any) -> tuple[SockAddr, _Listener] | None:
        """Where a served bind really goes, and its listener state; ``None`` to bind as asked."""
        family = sock.family
        if family not in (socket.AF_INET, socket.AF_INET6) or sock.type != socket.SOCK_STREAM:
            return None
        # Anything malformed goes to the real bind unchanged, so the app sees the usual error.
        if not isinstance(address, tuple) or len(address) < 2:
            return None
        host, port = address[0], address[1]
        if isinstance(port, bool) or not isinstance(port, int):
            return None
        pod_port = self.incoming.pod_port(port)
        if pod_port is None:
            return None
        try:
            numeric = numeric_host(family, host)
        except (OSError, UnicodeError):
            return None  # the real bind fails with its own error
        if numeric is None:
            return None
        if self.incoming.ignore_localhost and _is_loopback(numeric):
            return None
        real_port = self.incoming.real_port(port)
        if family == socket.AF_INET6:
            flowinfo = address[2] if len(address) > 2 else 0
            scope_id = address[3] if len(address) > 3 else 0
            return ("::1", real_port, 0, 0), _Listener((numeric, port, flowinfo, scope_id), pod_port)
        return ("127.0.0.1", real_port), _Listener((numeric, port), pod_port)


_INHERITED = object()


def _note_listener(
    outgoing: Outgoing, sock: socket.socket, state: _State | None, real_getsockname: Callable[..., Any]
) -> None:
    """Remembers a listening TCP socket, so the app's own connects to its port reach it."""
    if sock.family not in (socket.AF_INET, socket.AF_INET6) or sock.type != socket.SOCK_STREAM:
        return
    try:
        real = real_getsockname(sock)
    except OSError:
        return
    requested = state.requested[1] if isinstance(state, _Listener) else real[1]
    outgoing.listening[sock] = (sock.family, requested, real)


def _is_loopback(host: Any) -> bool:
    if not isinstance(host, str):
        return False
    return host.startswith("127.") or host == "::1" or host.startswith("::ffff:127.")


def _for_family(family: int, address: Address) -> SockAddr:
    """``address`` in the shape a socket of ``family`` reports: IPv6 sockets speak 4-tuples, and show
    IPv4 peers as v4-mapped addresses; IPv4 sockets show a v4-mapped peer unmapped."""
    host, port = address
    if family == socket.AF_INET6:
        if ":" not in host:
            host = "::ffff:" + host
        return (host, port, 0, 0)
    if host.startswith("::ffff:") and "." in host:
        host = host[len("::ffff:") :]
    # An IPv6 client cannot be shown as an IPv4 peer; a 2-tuple keeps `host, port = peer` working.
    return (host, port)
