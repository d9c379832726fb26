"""Descriptors and credentials in control messages (``SCM_RIGHTS``, ``SCM_CREDENTIALS``)."""

from __future__ import annotations

import array
import contextlib
import errno
import os
import socket
import struct
import sys
from collections.abc import Iterable

from .._errors import NotSupportedError
from .._types import Credentials

__all__ = [
    "ANC_SPACE",
    "CLOEXEC",
    "MSG_CTRUNC",
    "SCM_MAX_FD",
    "close_all",
    "creds_message",
    "fd_list",
    "parse_ancillary",
    "peer_credentials",
    "peer_pidfd",
    "rights",
    "set_passcred",
    "truncated",
]

#: Most descriptors one message can carry (Linux's ``SCM_MAX_FD``), checked before sending.
SCM_MAX_FD = 253

_LINUX = sys.platform.startswith("linux")
_SCM_RIGHTS = int(getattr(socket, "SCM_RIGHTS", 1))
_SCM_CREDENTIALS: int | None = getattr(socket, "SCM_CREDENTIALS", None) if _LINUX else None
_SO_PASSCRED: int | None = getattr(socket, "SO_PASSCRED", None) if _LINUX else None
_SO_PEERCRED: int | None = getattr(socket, "SO_PEERCRED", None)
_SO_PEERPIDFD = 77
#: Plain ints: the socket module's flags are enum members, slow in ``&`` on the hot path.
MSG_CTRUNC = int(getattr(socket, "MSG_CTRUNC", 0))
_UCRED = struct.Struct("iII")
_HAS_CMSG = hasattr(socket, "CMSG_SPACE")

#: Control-message space for SCM_MAX_FD descriptors and one set of credentials.
ANC_SPACE = socket.CMSG_SPACE(SCM_MAX_FD * 4) + socket.CMSG_SPACE(_UCRED.size) if _HAS_CMSG else 0
#: ``recvmsg`` flag making received descriptors close-on-exec from the start (Linux).
CLOEXEC = int(getattr(socket, "MSG_CMSG_CLOEXEC", 0))

_TRUNCATED = (
    "control message truncated: more descriptors arrived than maxfds allows, "
    "and every descriptor that arrived was closed"
)


def truncated(what: str | None) -> OSError:
    return OSError(errno.EMSGSIZE, _TRUNCATED, what)


def close_all(fds: Iterable[int]) -> None:
    for fd in fds:
        with contextlib.suppress(OSError):
            os.close(fd)


def fd_list(fds: Iterable[object] | None) -> list[int]:
    """Descriptor arguments (ints or objects with ``fileno()``), checked to be open."""
    if fds is None:
        return []
    out: list[int] = []
    if (type(fds) is list or type(fds) is tuple) and all(type(fd) is int for fd in fds):
        out = list(fds)
        if len(out) > SCM_MAX_FD:
            raise ValueError(f"more than {SCM_MAX_FD} descriptors in one message")
        if min(out, default=0) < 0:
            raise ValueError(f"invalid descriptor {min(out)}")
        fds = ()
    for item in fds:
        if isinstance(item, int) and not isinstance(item, bool):
            raw = item
        elif hasattr(item, "fileno"):
            raw = int(item.fileno())
        else:
            raise TypeError("descriptors are ints or objects with a fileno() method")
        if raw < 0:
            raise ValueError(f"invalid descriptor {raw}")
        if len(out) == SCM_MAX_FD:
            raise ValueError(f"more than {SCM_MAX_FD} descriptors in one message")
        out.append(raw)
    for raw in out:
        try:
            os.get_inheritable(raw)
        except OSError as e:
            raise OSError(e.errno, e.strerror, f"descriptor {raw}") from None
    return out


def rights(fds: list[int]) -> list[tuple[int, int, bytes]]:
    """The ``SCM_RIGHTS`` control message for ``fds`` (none for an empty list)."""
    if not fds:
        return []
    return [(socket.SOL_SOCKET, _SCM_RIGHTS, array.array("i", fds).tobytes())]


def creds_message() -> tuple[int, int, bytes]:
    """An ``SCM_CREDENTIALS`` control message with this process's ids (Linux)."""
    if _SCM_CREDENTIALS is None:
        raise NotSupportedError("credentials on datagrams need Linux (SCM_CREDENTIALS)")
    data = _UCRED.pack(os.getpid(), os.geteuid(), os.getegid())
    return socket.SOL_SOCKET, _SCM_CREDENTIALS, data


def parse_ancillary(
    ancdata: list[tuple[int, int, bytes]], msg_flags: int, what: str | None
) -> tuple[list[int], Credentials | None]:
    """The descriptors (close-on-exec) and credentials of one ``recvmsg``. A truncated control
    message closes every descriptor that arrived and raises ``OSError(EMSGSIZE)``."""
    fds: list[int] = []
    creds: Credentials | None = None
    for level, kind, data in ancdata:
        if level != socket.SOL_SOCKET:
            continue
        if kind == _SCM_RIGHTS:
            got = array.array("i")
            got.frombytes(data[: len(data) - len(data) % got.itemsize])
            fds.extend(got)
        elif kind == _SCM_CREDENTIALS and len(data) >= _UCRED.size:
            pid, uid, gid = _UCRED.unpack_from(data)
            # pid 0 is the kernel's placeholder for "no credentials were attached".
            creds = None if pid == 0 else Credentials(pid, uid, gid)
    if msg_flags & MSG_CTRUNC:
        close_all(fds)
        raise truncated(what)
    if not CLOEXEC:
        for fd in fds:
            os.set_inheritable(fd, False)
    return fds, creds


def set_passcred(sock: socket.socket) -> None:
    """``SO_PASSCRED`` on (Linux): every packet then carries its sender's credentials."""
    if _SO_PASSCRED is not None:
        sock.setsockopt(socket.SOL_SOCKET, _SO_PASSCRED, 1)


_AF_UNIX: int | None = getattr(socket, "AF_UNIX", None)


def peer_credentials(sock: socket.socket, what: str) -> Credentials:
    if sock.family != _AF_UNIX:
        raise NotSupportedError(f"peer credentials exist only for Unix sockets, not TCP ({what})")
    if _SO_PEERCRED is None:  # pragma: no cover - BSDs
        raise NotSupportedError(f"peer credentials are not supported on this platform ({what})")
    try:
        raw = sock.getsockopt(socket.SOL_SOCKET, _SO_PEERCRED, _UCRED.size)
    except OSError as e:
        raise OSError(e.errno, e.strerror, what) from None
    pid, uid, gid = _UCRED.unpack(raw)
    return Credentials(pid if pid > 0 else None, uid, gid)


def peer_pidfd(sock: socket.socket, what: str) -> int:
    if sock.family != _AF_UNIX:
        raise NotSupportedError(f"peer pidfds exist only for Unix sockets, not TCP ({what})")
    if not _LINUX:  # pragma: no cover
        raise NotSupportedError(f"this kernel has no SO_PEERPIDFD ({what})")
    try:
        return sock.getsockopt(socket.SOL_SOCKET, _SO_PEERPIDFD)
    except OSError as e:
        if e.errno in (errno.ENOPROTOOPT, errno.ENOSYS):
            raise NotSupportedError(f"this kernel has no SO_PEERPIDFD ({what})") from None
        raise OSError(e.errno, e.strerror, what) from None
