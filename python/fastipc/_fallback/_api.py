"""``listen``, ``connect`` and ``socketpair``."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterable
from typing import Literal, overload

from .._auth import HANDSHAKE_TIMEOUT, client_handshake, refuse_exposed
from .._auth import options as auth_options
from .._errors import NotSupportedError
from . import _fds, _platform
from ._addr import Address, Endpoint, explicit_socket_dir, ip_logical, parse
from ._conn import Connection
from ._dgram import DatagramSocket
from ._listener import Listener
from ._open import (
    SOCK_TYPES,
    bind_ip,
    bind_unix_endpoint,
    connect_ip,
    connect_socket,
    prepare_remap_dir,
    tcp_options,
    unix_socket,
    unix_target,
)
from ._platform import deadline_for
from ._sockdir import UnixBinding, bind_free_name

__all__ = ["DEFAULT_MAX_MESSAGE", "StreamKind", "connect", "fromfd", "listen", "socketpair"]

DEFAULT_MAX_MESSAGE = 64 * 1024 * 1024

StreamKind = Literal["stream", "seqpacket"]

#: Frames between the user's call and ``prepare_dir`` (for the warning's stacklevel).
_STACK = 2


def _check_kind_name(kind: str) -> None:
    if kind not in ("stream", "seqpacket", "datagram"):
        raise ValueError(f"kind must be 'stream', 'seqpacket' or 'datagram', not {kind!r}")


def _check_kind(kind: str) -> int:
    _check_kind_name(kind)
    if kind not in SOCK_TYPES or (kind == "seqpacket" and _platform.tcp_loopback()):
        raise NotSupportedError(f"{kind} sockets are not supported on this platform")
    return SOCK_TYPES[kind]


def _check_max(max_message: int) -> int:
    if isinstance(max_message, bool) or not isinstance(max_message, int):
        raise TypeError("max_message must be an int")
    if max_message < 0:
        raise ValueError("max_message must be non-negative")
    return max_message


def _ip_seqpacket(ep: Endpoint) -> NotSupportedError:
    return NotSupportedError(f"seqpacket sockets need a Unix address, not {ep.logical}")


def _check_ip_listener(
    ep: Endpoint, kind: str, by_uid: bool, authenticated: bool, allow_unauthenticated: bool
) -> None:
    """What an IP listener cannot be: seqpacket, filtered by uid, off loopback without a key."""
    if kind == "seqpacket":
        raise _ip_seqpacket(ep)
    if kind != "datagram" and by_uid:
        raise NotSupportedError(
            "allow_uids and allow_gids need a Unix socket: TCP has no peer credentials "
            f"({ep.logical})"
        )
    if kind != "datagram" and not authenticated:
        refuse_exposed(ep.host, ep.logical, allow_unauthenticated)


@overload
def listen(
    address: Address,
    *,
    kind: StreamKind = "stream",
    backlog: int = 128,
    socket_dir: str | None = None,
    max_message: int = DEFAULT_MAX_MESSAGE,
    allow_uids: Iterable[int] | None = None,
    allow_gids: Iterable[int] | None = None,
    authkey: bytes | None = None,
    handshake_timeout: float = HANDSHAKE_TIMEOUT,
    allow_unauthenticated: bool = False,
) -> Listener: ...
@overload
def listen(
    address: Address,
    *,
    kind: Literal["datagram"],
    backlog: int = 128,
    socket_dir: str | None = None,
    max_message: int = DEFAULT_MAX_MESSAGE,
    allow_uids: Iterable[int] | None = None,
    allow_gids: Iterable[int] | None = None,
    authkey: bytes | None = None,
    handshake_timeout: float = HANDSHAKE_TIMEOUT,
    allow_unauthenticated: bool = False,
) -> DatagramSocket: ...
def listen(
    address: Address,
    *,
    kind: str = "stream",
    backlog: int = 128,
    socket_dir: str | None = None,
    max_message: int = DEFAULT_MAX_MESSAGE,
    allow_uids: Iterable[int] | None = None,
    allow_gids: Iterable[int] | None = None,
    authkey: bytes | None = None,
    handshake_timeout: float = HANDSHAKE_TIMEOUT,
    allow_unauthenticated: bool = False,
) -> Listener | DatagramSocket:
    """Listen on (or, for datagrams, bind) ``address``."""
    sock_type = _check_kind(kind)
    max_message = _check_max(max_message)
    auth = auth_options(kind, authkey, handshake_timeout)
    uids = frozenset(_ids("allow_uids", allow_uids))
    gids = frozenset(_ids("allow_gids", allow_gids))
    ep = parse(address, socket_dir)
    if ep.kind == "abstract" and allow_uids is None and allow_gids is None:
        # No file permissions protect an abstract name: only this user, unless told otherwise.
        uids = frozenset([os.geteuid()])
    if ep.kind == "ip":
        _check_ip_listener(ep, kind, bool(uids or gids), auth is not None, allow_unauthenticated)
        sock = bind_ip(ep, sock_type)
        try:
            port = sock.getsockname()[1]
            if kind == "datagram":
                prefix = "udp:" if ep.prefix == "tcp:" else ep.prefix
                logical = ip_logical(prefix, ep.host, port)
                return DatagramSocket(
                    sock,
                    address=logical,
                    path=None,
                    binding=None,
                    sdir=ep.sdir or explicit_socket_dir(socket_dir)[0],
                    loopback_names=ep.prefix == "",
                )
            sock.listen(backlog)
            return Listener(
                sock,
                address=ip_logical(ep.prefix, ep.host, port),
                path=None,
                kind=kind,
                max_message=max_message,
                binding=None,
                auth=auth,
            )
        except BaseException:
            sock.close()
            raise
    private = prepare_remap_dir(ep, _STACK) if ep.kind == "remap" else False
    sock = unix_socket(sock_type, ep.logical)
    binding: UnixBinding | None = None
    try:
        if kind == "datagram":
            # Before bind: every datagram received then carries its sender's credentials.
            _fds.set_passcred(sock)
        binding, logical, path = bind_unix_endpoint(sock, ep, sock_type, private)
        if kind == "datagram":
            sdir = ep.sdir or explicit_socket_dir(socket_dir)[0]
            return DatagramSocket(sock, address=logical, path=path, binding=binding, sdir=sdir)
        try:
            sock.listen(backlog)
        except OSError as e:
            raise _platform.oserror(e.errno, logical) from None
        return Listener(
            sock,
            address=logical,
            path=path,
            kind=kind,
            max_message=max_message,
            binding=binding,
            allow_uids=uids,
            allow_gids=gids,
            auth=auth,
        )
    except BaseException:
        sock.close()
        if binding is not None:
            binding.release()
        raise


@overload
def connect(
    address: Address,
    *,
    kind: StreamKind = "stream",
    timeout: float | None = None,
    socket_dir: str | None = None,
    max_message: int = DEFAULT_MAX_MESSAGE,
    authkey: bytes | None = None,
) -> Connection: ...
@overload
def connect(
    address: Address,
    *,
    kind: Literal["datagram"],
    timeout: float | None = None,
    socket_dir: str | None = None,
    max_message: int = DEFAULT_MAX_MESSAGE,
    authkey: bytes | None = None,
) -> DatagramSocket: ...
def connect(
    address: Address,
    *,
    kind: str = "stream",
    timeout: float | None = None,
    socket_dir: str | None = None,
    max_message: int = DEFAULT_MAX_MESSAGE,
    authkey: bytes | None = None,
) -> Connection | DatagramSocket:
    """Connect to ``address``; ``TimeoutError`` if that takes longer than ``timeout``."""
    sock_type = _check_kind(kind)
    max_message = _check_max(max_message)
    timeout = _platform.check_timeout(timeout)
    key = auth_options(kind, authkey, HANDSHAKE_TIMEOUT)
    ep = parse(address, socket_dir)
    if kind == "datagram":
        return _connect_datagram(ep, socket_dir)
    deadline = deadline_for(timeout)
    if ep.kind == "ip":
        if kind == "seqpacket":
            raise _ip_seqpacket(ep)
        sock = connect_ip(ep, sock_type, deadline)
    else:
        if ep.kind == "remap":
            prepare_remap_dir(ep, _STACK)
        target = unix_target(ep)
        sock = unix_socket(sock_type, ep.logical)
        try:
            connect_socket(sock, target, deadline, ep.logical)
        except BaseException:
            sock.close()
            raise
    try:
        conn = Connection(sock, ep.logical, kind, max_message)
    except BaseException:
        sock.close()
        raise
    if key is not None:
        client_handshake(conn, key[0], _platform.remaining(deadline, ep.logical))
    return conn


def _connect_datagram(ep: Endpoint, socket_dir: str | None) -> DatagramSocket:
    sdir = ep.sdir or explicit_socket_dir(socket_dir)[0]
    dtype = socket.SOCK_DGRAM
    if ep.kind == "ip":
        infos = socket.getaddrinfo(ep.host, ep.port, 0, dtype)
        family, _, proto, _, _ = infos[0]
        sock = socket.socket(family, dtype, proto)
        try:
            if ep.prefix == "":
                # A remapped address served over UDP loopback: bind so that replies reach us.
                sock.bind((ep.host, 0))
            dg = DatagramSocket(
                sock,
                address=None,
                path=None,
                binding=None,
                sdir=sdir,
                loopback_names=ep.prefix == "",
            )
        except BaseException:
            sock.close()
            raise
    else:
        sock = unix_socket(dtype, ep.logical)
        binding: UnixBinding | None = None
        try:
            address: str | None = None
            path: str | None = None
            if ep.kind == "remap" or _platform.abstract_supported():
                _fds.set_passcred(sock)
            if ep.kind == "remap":
                private = prepare_remap_dir(ep, _STACK + 1)
                binding, port = bind_free_name(sock, ep.sdir, "127.0.0.1", private, dtype)
                address, path = f"127.0.0.1:{port}", binding.path
            elif _platform.abstract_supported():
                sock.bind("")  # Linux autobind: a fresh abstract name, so that replies reach us
                address = _abstract_name(sock.getsockname())
            dg = DatagramSocket(sock, address=address, path=path, binding=binding, sdir=sdir)
        except BaseException:
            sock.close()
            if binding is not None:
                binding.release()
            raise
    try:
        dg.connect(ep.logical)
        if ep.kind == "ip":
            local = sock.getsockname()
            prefix = "" if ep.prefix == "" else "udp:"
            dg._address = ip_logical(prefix, str(local[0]), int(local[1]))
    except BaseException:
        dg.close()
        raise
    return dg


def _ids(name: str, ids: Iterable[int] | None) -> list[int]:
    """``allow_uids``/``allow_gids``: [] for None (no constraint); an empty iterable would
    admit no one, and is a ValueError."""
    if ids is None:
        return []
    out = []
    for i in ids:
        if isinstance(i, bool) or not isinstance(i, int):
            raise TypeError("user and group ids are ints")
        if not 0 <= i <= 0xFFFFFFFF:
            raise OverflowError(f"id {i} out of range")
        out.append(i)
    if not out:
        raise ValueError(f"{name} is empty: it would admit no one (None admits every id)")
    return out


def _kind_of(sock: socket.socket) -> str | None:
    """The kind of socket ``sock`` is, or None for a type fastipc does not wrap."""
    kinds = {t: k for k, t in SOCK_TYPES.items()}
    return kinds.get(sock.type)


@overload
def fromfd(
    fd: object,
    *,
    kind: None = None,
    address: str | None = None,
    max_message: int = DEFAULT_MAX_MESSAGE,
) -> Connection | DatagramSocket: ...
@overload
def fromfd(
    fd: object,
    *,
    kind: StreamKind,
    address: str | None = None,
    max_message: int = DEFAULT_MAX_MESSAGE,
) -> Connection: ...
@overload
def fromfd(
    fd: object,
    *,
    kind: Literal["datagram"],
    address: str | None = None,
    max_message: int = DEFAULT_MAX_MESSAGE,
) -> DatagramSocket: ...
def fromfd(
    fd: object,
    *,
    kind: str | None = None,
    address: str | None = None,
    max_message: int = DEFAULT_MAX_MESSAGE,
) -> Connection | DatagramSocket:
    """A Connection or DatagramSocket on a duplicate of ``fd`` (which stays the caller's);
    ``kind``, if given, is the kind the socket must be (``ValueError`` otherwise)."""
    if kind is not None:
        _check_kind_name(kind)
    max_message = _check_max(max_message)
    raw = _fds.fd_list([fd])[0]
    dup = os.dup(raw)  # close-on-exec, as every descriptor Python creates
    peer = address if address is not None else f"fd:{raw}"
    try:
        sock = socket.socket(fileno=dup)
    except OSError as e:
        os.close(dup)
        raise _platform.oserror(e.errno, peer) if e.errno else e from None
    try:
        actual = _kind_of(sock)
        if kind is not None and actual is not None and actual != kind:
            raise ValueError(f"{peer}: a {actual} socket, not {kind}")
        if sock.type == socket.SOCK_DGRAM:
            sock.setblocking(True)
            dg = DatagramSocket(
                sock, address=None, path=None, binding=None, sdir=explicit_socket_dir(None)[0]
            )
            dg._peer = peer
            return dg
        if sock.type == socket.SOCK_STREAM:
            return Connection(sock, peer, "stream", max_message)
        if sock.type == getattr(socket, "SOCK_SEQPACKET", None):
            return Connection(sock, peer, "seqpacket", max_message)
        raise ValueError(f"{peer}: unsupported socket type")
    except BaseException:
        sock.close()
        raise


def _abstract_name(name: object) -> str | None:
    if isinstance(name, bytes) and name.startswith(b"\0"):
        return "unix:@" + name[1:].decode("utf-8", "surrogateescape")
    if isinstance(name, str) and name.startswith("\0"):
        return "unix:@" + name[1:]
    return None


@overload
def socketpair(kind: StreamKind = "stream") -> tuple[Connection, Connection]: ...
@overload
def socketpair(kind: Literal["datagram"]) -> tuple[DatagramSocket, DatagramSocket]: ...
def socketpair(
    kind: str = "stream",
) -> tuple[Connection, Connection] | tuple[DatagramSocket, DatagramSocket]:
    """A pair of connected sockets (Unix sockets, or TCP/UDP loopback on Windows)."""
    sock_type = _check_kind(kind)
    if _platform.tcp_loopback():
        a, b = _loopback_pair(sock_type)
    else:
        a, b = socket.socketpair(socket.AF_UNIX, sock_type)
    try:
        if kind == "datagram":
            sdir = explicit_socket_dir(None)[0]
            return (
                DatagramSocket(a, address=None, path=None, binding=None, sdir=sdir),
                DatagramSocket(b, address=None, path=None, binding=None, sdir=sdir),
            )
        return (
            Connection(a, "socketpair", kind, DEFAULT_MAX_MESSAGE),
            Connection(b, "socketpair", kind, DEFAULT_MAX_MESSAGE),
        )
    except BaseException:
        a.close()
        b.close()
        raise


def _loopback_pair(sock_type: int) -> tuple[socket.socket, socket.socket]:
    """A connected pair over TCP or UDP loopback (platforms without Unix sockets)."""
    if sock_type == socket.SOCK_DGRAM:
        a = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        b = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            a.bind(("127.0.0.1", 0))
            b.bind(("127.0.0.1", 0))
            a.connect(b.getsockname())
            b.connect(a.getsockname())
        except BaseException:
            a.close()
            b.close()
            raise
        return a, b
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        a = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            a.connect(server.getsockname())
            b, _ = server.accept()
            if b.getpeername() != a.getsockname():
                b.close()
                raise ConnectionError("unexpected connection while making a socket pair")
        except BaseException:
            a.close()
            raise
    for s in (a, b):
        tcp_options(s)
    return a, b
