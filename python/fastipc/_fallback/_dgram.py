"""``DatagramSocket``: Unix datagram sockets when remapped, UDP otherwise."""

from __future__ import annotations

import errno
import os
import socket
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, TypeVar

from .._errors import MessageTooLarge, NotSupportedError
from .._types import Credentials
from . import _platform
from ._addr import Address, format_host, parse, remapped_name
from ._closing import BoundSocket, closed_error
from ._fds import ANC_SPACE, CLOEXEC, close_all, creds_message, fd_list, rights, truncated
from ._fds import parse_ancillary as _parse
from ._open import unix_target
from ._platform import MSG_NOSIGNAL, SLICE, deadline_for, oserror, timeout_error, wait_fd
from ._sockdir import UnixBinding

if TYPE_CHECKING:
    from typing_extensions import Buffer

__all__ = ["DatagramSocket"]

T = TypeVar("T")
WOULDBLOCK = (BlockingIOError, InterruptedError)
_MSG_DONTWAIT: int = getattr(socket, "MSG_DONTWAIT", 0)


class _Default:
    """The type of ``_DEFAULT``: "the socket's own timeout"."""


_DEFAULT = _Default()


class DatagramSocket(BoundSocket):
    """A datagram socket (Unix datagram when remapped, UDP otherwise)."""

    __slots__ = (
        "__weakref__",
        "_address",
        "_loopback_names",
        "_path",
        "_peer",
        "_sdir",
        "_sdir_abs",
        "_sliced",
        "_timeout",
    )

    def __init__(
        self,
        sock: socket.socket,
        *,
        address: str | None,
        path: str | None,
        binding: UnixBinding | None,
        sdir: str,
        loopback_names: bool = False,
    ) -> None:
        self._sock = sock
        self._address = address
        self._path = path
        self._peer: str | None = None
        self._binding = binding
        self._sdir = sdir
        self._sdir_abs = os.path.abspath(sdir)
        # True for a remapped socket on a platform where that means UDP loopback: loopback
        # senders are then named as remapped addresses (``127.0.0.1:<p>``).
        self._loopback_names = loopback_names
        self._closed = False
        self._timeout: float | None = sock.gettimeout()
        # Blocking calls bounded by SO_RCVTIMEO/SO_SNDTIMEO of one slice, so that a close()
        # from another thread ends them; on Windows Python's own socket timeout bounds them.
        self._sliced = not _platform.WINDOWS
        if self._sliced:
            sock.settimeout(None)
            _platform.slice_blocking_calls(sock)
        _platform.nosigpipe(sock)
        _platform.size_buffers(sock)

    @property
    def address(self) -> str | None:
        return self._address

    @property
    def path(self) -> str | None:
        return self._path

    @property
    def peer(self) -> str | None:
        return self._peer

    @property
    def kind(self) -> str:
        return "datagram"

    @property
    def closed(self) -> bool:
        return self._closed

    def __repr__(self) -> str:
        name = "unbound" if self._address is None else self._address
        path = "" if self._path is None else f" path={self._path}"
        peer = "" if self._peer is None else f" peer={self._peer}"
        if self._closed:
            return f"<fastipc.DatagramSocket {name}{path}{peer} closed>"
        return f"<fastipc.DatagramSocket {name}{path}{peer} fd={self._sock.fileno()}>"

    # -- helpers --------------------------------------------------------------------------------

    def _name(self) -> str | None:
        return self._peer if self._peer is not None else self._address

    def _check(self) -> socket.socket:
        if self._closed:
            raise closed_error(self._name())
        return self._sock

    def _io(
        self,
        name: str | None,
        write: bool,
        op: Callable[[socket.socket, int], T],
        timeout: float | _Default | None = _DEFAULT,
    ) -> T:
        """Runs ``op(sock, flags)`` within the timeout (the socket's unless given). A blocking
        call ends after a slice; a deadline closer than a slice is waited for with ``poll`` and
        the call made with ``MSG_DONTWAIT``. Between attempts a close() from another thread ends
        the operation with the closed error."""
        if isinstance(timeout, _Default):
            timeout = self._timeout
        sock = self._check()
        if not self._sliced:
            sock.settimeout(timeout)
            try:
                return op(sock, 0)
            except OSError as e:
                raise self._error(e, name, write) from None
        deadline = deadline_for(timeout)
        while True:
            sock = self._check()
            left = None if deadline is None else deadline - time.monotonic()
            flags = 0
            if left is not None and left < SLICE:
                flags = _MSG_DONTWAIT
                if left > 0:
                    wait_fd(sock.fileno(), write, left)
            try:
                return op(sock, flags)
            except WOULDBLOCK:
                if deadline is not None and deadline - time.monotonic() <= 0:
                    raise timeout_error(name) from None
            except OSError as e:
                raise self._error(e, name, write) from None

    def _error(self, e: OSError, name: str | None, send: bool = False) -> Exception:
        if self._closed:
            return closed_error(name)
        if isinstance(e, BlockingIOError) or (isinstance(e, TimeoutError) and e.errno is None):
            return timeout_error(name)
        if e.errno is None:
            return e
        if send and e.errno == errno.EMSGSIZE:
            return MessageTooLarge(f"datagram too large ({name})")
        return oserror(e.errno, name)

    def _target(self, address: Address) -> tuple[str | tuple[str, int], str]:
        """The kernel address for a destination, and its logical name."""
        ep = parse(address, self._sdir)
        if ep.kind == "ip":
            if ep.prefix == "tcp:":
                return (ep.host, ep.port), f"udp:{format_host(ep.host)}:{ep.port}"
            return (ep.host, ep.port), ep.logical
        return unix_target(ep), ep.logical

    def _sender_name(self, addr: object) -> str | None:
        """The logical address of a sender as returned by ``recvfrom``."""
        if addr is None or addr in ("", b""):
            return None
        if isinstance(addr, bytes):
            if addr.startswith(b"\0"):
                return "unix:@" + addr[1:].decode("utf-8", "surrogateescape")
            addr = os.fsdecode(addr)
        if isinstance(addr, str):
            return self._unix_sender_name(addr)
        if isinstance(addr, tuple) and len(addr) >= 2:
            return self._ip_sender_name(str(addr[0]), int(addr[1]))
        return None  # pragma: no cover - unknown family

    def _unix_sender_name(self, addr: str) -> str:
        """A Unix sender: ``host:port`` for a remapped path in this socket's directory."""
        if addr.startswith("\0"):
            return "unix:@" + addr[1:]
        head, base = os.path.split(addr)
        if os.path.abspath(head or ".") == self._sdir_abs:
            name, _, port = base.rpartition(":")
            if name and remapped_name(name.strip("[]")) == name and port.isdigit():
                return base
        return f"unix:{addr}"

    def _ip_sender_name(self, ip: str, port: int) -> str:
        """A UDP sender: a loopback one by its remapped name when this socket's peers use those."""
        if self._loopback_names:
            loop = remapped_name(ip)
            if loop is not None:
                return f"{loop}:{port}"
        return f"udp:{format_host(ip)}:{port}"

    # -- operations -----------------------------------------------------------------------------

    def _ancillary(
        self, sock: socket.socket, fds: Iterable[object] | None, credentials: bool, name: str | None
    ) -> list[tuple[int, int, bytes]]:
        fdl = fd_list(fds)
        if not fdl and not credentials:
            return []
        if sock.family != getattr(socket, "AF_UNIX", None):
            raise NotSupportedError(
                f"descriptors and credentials travel only over Unix sockets, not UDP ({name})"
            )
        anc = rights(fdl)
        if credentials:
            anc.append(creds_message())
        return anc

    def _send(
        self,
        data: Buffer,
        target: str | tuple[str, int] | None,
        name: str | None,
        fds: Iterable[object] | None,
        credentials: bool,
    ) -> int:
        anc = self._ancillary(self._check(), fds, credentials, name)

        def op(sock: socket.socket, flags: int) -> int:
            flags |= MSG_NOSIGNAL
            if not anc:
                if target is None:
                    return sock.send(data, flags)
                return sock.sendto(data, flags, target)
            if target is None:
                return sock.sendmsg([data], anc, flags)
            return sock.sendmsg([data], anc, flags, target)

        return self._io(name, True, op)

    def sendto(
        self,
        data: Buffer,
        address: Address,
        *,
        fds: Iterable[object] | None = None,
        credentials: bool = False,
    ) -> int:
        self._check()
        target, name = self._target(address)
        return self._send(data, target, name, fds, credentials)

    def _recvmsg(
        self, bufsize: int, timeout: float | _Default | None = _DEFAULT
    ) -> tuple[bytes, list[int], Credentials | None, str | None]:
        sock = self._check()
        if bufsize < 0:
            raise ValueError("negative buffersize in recvmsg")
        if not hasattr(sock, "recvmsg"):
            raise NotSupportedError(
                f"descriptors and credentials need Unix sockets with recvmsg ({self._name()})"
            )
        data, anc, flags, addr = self._io(
            self._name(),
            False,
            lambda sock, flags: sock.recvmsg(bufsize, ANC_SPACE, CLOEXEC | flags),
            timeout,
        )
        fds, creds = _parse(anc, flags, self._name())
        return data, fds, creds, self._sender_name(addr)

    def recvfrom(self, bufsize: int, *, credentials: bool = False) -> Any:
        if credentials:
            if not _platform.LINUX:
                raise NotSupportedError(
                    f"credentials on datagrams are implemented on Linux only ({self._name()})"
                )
            data, fds, creds, sender = self._recvmsg(bufsize)
            close_all(fds)
            return data, sender, creds
        # Without a control buffer the kernel closes any descriptors sent with it.
        data, addr = self._io(
            self._name(), False, lambda sock, flags: sock.recvfrom(bufsize, flags)
        )
        return data, self._sender_name(addr)

    def send_fds(self, data: Buffer, fds: Iterable[object], address: Address | None = None) -> int:
        if address is None:
            self._check()
            return self._send(data, None, self._name(), fds, False)
        return self.sendto(data, address, fds=fds)

    def recv_fds(
        self, bufsize: int, maxfds: int, *, timeout: float | None = None
    ) -> tuple[bytes, list[int], str | None]:
        if maxfds < 0:
            raise OverflowError("can't convert negative int to unsigned")
        self._check()
        if timeout is None:
            data, fds, _, sender = self._recvmsg(bufsize)
        else:
            data, fds, _, sender = self._recvmsg(bufsize, _platform.check_timeout(timeout))
        if len(fds) > maxfds:
            close_all(fds)
            raise truncated(self._address if self._address is not None else "datagram socket")
        return data, fds, sender

    def connect(self, address: Address) -> None:
        sock = self._check()
        target, name = self._target(address)
        try:
            sock.connect(target)
        except OSError as e:
            raise self._error(e, name) from None
        self._peer = name

    def send(
        self, data: Buffer, *, fds: Iterable[object] | None = None, credentials: bool = False
    ) -> int:
        self._check()
        return self._send(data, None, self._name(), fds, credentials)

    def recv(self, bufsize: int) -> bytes:
        return self._io(self._name(), False, lambda sock, flags: sock.recv(bufsize, flags))

    def settimeout(self, timeout: float | None) -> None:
        timeout = _platform.check_timeout(timeout)
        self._check()
        self._timeout = timeout

    def gettimeout(self) -> float | None:
        return self._timeout

    def fileno(self) -> int:
        return self._check().fileno()
