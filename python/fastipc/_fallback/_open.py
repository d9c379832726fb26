"""Creating, binding and connecting sockets for parsed endpoints."""

from __future__ import annotations

import errno
import os
import socket
import time

from .._errors import NotSupportedError
from . import _platform
from ._addr import Endpoint
from ._platform import oserror, remaining, timeout_error, wait_fd
from ._sockdir import UnixBinding, bind_free_name, bind_unix, check_path_length, prepare_dir

__all__ = [
    "KEEPALIVE_COUNT",
    "KEEPALIVE_IDLE",
    "KEEPALIVE_INTERVAL",
    "SOCK_TYPES",
    "bind_ip",
    "bind_unix_endpoint",
    "connect_ip",
    "connect_socket",
    "prepare_remap_dir",
    "tcp_options",
    "unix_target",
]

SOCK_TYPES: dict[str, int] = {"stream": socket.SOCK_STREAM, "datagram": socket.SOCK_DGRAM}
if hasattr(socket, "SOCK_SEQPACKET"):
    SOCK_TYPES["seqpacket"] = socket.SOCK_SEQPACKET

_IN_PROGRESS = {
    errno.EINPROGRESS,
    errno.EALREADY,
    errno.EWOULDBLOCK,
    errno.EAGAIN,
    getattr(errno, "WSAEWOULDBLOCK", errno.EWOULDBLOCK),
}


def unix_socket(sock_type: int, logical: str) -> socket.socket:
    try:
        return socket.socket(socket.AF_UNIX, sock_type)
    except OSError as e:
        if e.errno in (errno.EPROTONOSUPPORT, getattr(errno, "ESOCKTNOSUPPORT", -1)):
            raise NotSupportedError(f"this socket kind is not supported here ({logical})") from None
        raise


def prepare_remap_dir(ep: Endpoint, stacklevel: int) -> bool:
    """Check (or create) the socket directory of a remapped endpoint; whether it is private."""
    return prepare_dir(ep.sdir, ep.explicit, stacklevel + 1)


def unix_target(ep: Endpoint) -> str:
    """The ``sockaddr`` to connect or send to for a Unix-family endpoint."""
    if ep.kind == "abstract":
        if len(os.fsencode(ep.path)) + 1 > _platform.SUN_PATH_MAX:
            raise oserror(errno.ENAMETOOLONG, ep.logical)
        return "\0" + ep.path
    check_path_length(ep.path)
    return ep.path


def bind_unix_endpoint(
    sock: socket.socket, ep: Endpoint, sock_type: int, private: bool
) -> tuple[UnixBinding | None, str, str | None]:
    """Bind ``sock`` to a Unix-family endpoint: (binding, logical address, socket path)."""
    if ep.kind == "abstract":
        target = unix_target(ep)
        try:
            sock.bind(target)
        except OSError as e:
            raise oserror(e.errno, ep.logical) from None
        return None, ep.logical, None
    if ep.kind == "remap" and ep.port == 0:
        binding, port = bind_free_name(sock, ep.sdir, ep.host, private, sock_type)
        return binding, f"{ep.host}:{port}", binding.path
    binding = bind_unix(sock, ep.path, ep.logical, private and ep.kind == "remap", sock_type)
    return binding, ep.logical, binding.path


def bind_ip(ep: Endpoint, sock_type: int) -> socket.socket:
    """A TCP or UDP socket bound to ``ep`` (SO_REUSEADDR for TCP listeners on Unix)."""
    try:
        infos = socket.getaddrinfo(ep.host, ep.port, 0, sock_type, 0, socket.AI_PASSIVE)
    except socket.gaierror as e:
        raise socket.gaierror(e.errno, f"{e.strerror} ({ep.logical})") from None
    family, stype, proto, _, sockaddr = infos[0]
    sock = socket.socket(family, stype, proto)
    try:
        exclusive = getattr(socket, "SO_EXCLUSIVEADDRUSE", None)
        if exclusive is not None:
            sock.setsockopt(socket.SOL_SOCKET, exclusive, 1)
        elif sock_type == socket.SOCK_STREAM:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(sockaddr)
    except OSError as e:
        sock.close()
        raise oserror(e.errno, ep.logical) if e.errno else e from None
    return sock


def connect_socket(
    sock: socket.socket, target: str | tuple[object, ...], deadline: float | None, logical: str
) -> None:
    """Connect ``sock`` to ``target`` by ``deadline`` (``None``: wait as long as it takes)."""
    if deadline is None:
        sock.setblocking(True)
        try:
            sock.connect(target)
        except OSError as e:
            raise oserror(e.errno, logical) if e.errno else e from None
        return
    sock.setblocking(False)
    unix = sock.family == getattr(socket, "AF_UNIX", None)
    while True:
        err = sock.connect_ex(target)
        if err in (0, errno.EISCONN):
            break
        if err not in _IN_PROGRESS:
            raise oserror(err, logical)
        if unix:
            # A full backlog: Unix sockets cannot wait for it without blocking, so retry.
            left = remaining(deadline, logical)
            assert left is not None
            time.sleep(min(left, 0.005))
            continue
        if not wait_fd(sock.fileno(), True, remaining(deadline, logical)):
            raise timeout_error(logical)
        err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if err:
            raise oserror(err, logical)
        break
    sock.setblocking(True)


def connect_ip(ep: Endpoint, sock_type: int, deadline: float | None) -> socket.socket:
    """A TCP (or UDP) socket connected to ``ep``: each address of the host is tried in turn."""
    try:
        infos = socket.getaddrinfo(ep.host, ep.port, 0, sock_type)
    except socket.gaierror as e:
        raise socket.gaierror(e.errno, f"{e.strerror} ({ep.logical})") from None
    error: OSError | None = None
    for family, stype, proto, _, sockaddr in infos:
        sock = socket.socket(family, stype, proto)
        try:
            connect_socket(sock, sockaddr, deadline, ep.logical)
        except TimeoutError:
            sock.close()
            raise
        except OSError as e:
            sock.close()
            error = e
            continue
        if stype == socket.SOCK_STREAM:
            tcp_options(sock)
        return sock
    assert error is not None
    raise error


#: TCP keepalive (as the Rust core's ``src/socket/options.rs``): probes after 30 s of silence,
#: every 10 s, 3 unanswered end the connection: a vanished peer is detected within 60 s.
KEEPALIVE_IDLE = 30
KEEPALIVE_INTERVAL = 10
KEEPALIVE_COUNT = 3


def tcp_options(sock: socket.socket) -> None:
    """No Nagle delay, and keepalive with fastipc's timing where the platform has the options
    (the system's timing elsewhere), on a connected TCP stream socket."""
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    for name, value in (
        ("TCP_KEEPIDLE", KEEPALIVE_IDLE),
        ("TCP_KEEPINTVL", KEEPALIVE_INTERVAL),
        ("TCP_KEEPCNT", KEEPALIVE_COUNT),
    ):
        option = getattr(socket, name, None)
        if option is not None:
            sock.setsockopt(socket.IPPROTO_TCP, option, value)
