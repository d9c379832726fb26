"""``Listener``: a listening stream or seqpacket socket."""

from __future__ import annotations

import errno
import socket
import time
from typing import TYPE_CHECKING

from .._auth import server_handshake
from . import _fds, _platform
from ._closing import BoundSocket, closed_error
from ._conn import Connection
from ._open import tcp_options
from ._platform import SLICE, deadline_for, oserror, remaining, timeout_error, wait_fd
from ._sockdir import UnixBinding

if TYPE_CHECKING:
    pass

__all__ = ["Listener"]


class Listener(BoundSocket):
    """A listening stream or seqpacket socket. Created by :func:`listen`."""

    __slots__ = (
        "__weakref__",
        "_address",
        "_auth",
        "_gids",
        "_kind",
        "_max",
        "_path",
        "_refused",
        "_uids",
    )

    def __init__(
        self,
        sock: socket.socket,
        *,
        address: str,
        path: str | None,
        kind: str,
        max_message: int,
        binding: UnixBinding | None,
        allow_uids: frozenset[int] = frozenset(),
        allow_gids: frozenset[int] = frozenset(),
        auth: tuple[bytes, float] | None = None,
    ) -> None:
        self._sock = sock
        self._address = address
        self._path = path
        self._kind = kind
        self._max = max_message
        self._binding = binding
        self._closed = False
        # Who may connect (empty: anyone), and how many others were turned away.
        self._uids = allow_uids
        self._gids = allow_gids
        self._refused = 0
        # The authkey and the per-peer handshake deadline, or None.
        self._auth = auth
        sock.setblocking(False)

    @property
    def address(self) -> str:
        return self._address

    @property
    def path(self) -> str | None:
        return self._path

    @property
    def kind(self) -> str:
        return self._kind

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def max_message(self) -> int:
        return self._max

    @property
    def refused(self) -> int:
        if self._closed:
            raise closed_error(self._address)
        return self._refused

    def _admits(self, sock: socket.socket) -> bool:
        try:
            creds = _fds.peer_credentials(sock, self._address)
        except OSError:
            return False
        uids, gids = self._uids, self._gids
        return (not uids or creds.uid in uids) and (not gids or creds.gid in gids)

    def __repr__(self) -> str:
        path = "" if self._path is None else f" path={self._path}"
        if self._closed:
            return f"<fastipc.Listener {self._address}{path} closed>"
        return f"<fastipc.Listener {self._address}{path} fd={self._sock.fileno()}>"

    def accept(self, timeout: float | None = None) -> Connection:
        timeout = _platform.check_timeout(timeout)
        deadline = deadline_for(timeout)
        while True:
            conn = self._accept_one(deadline)
            if self._auth is None:
                return conn
            left = None if deadline is None else deadline - time.monotonic()
            if server_handshake(conn, self._auth[0], self._auth[1], left):
                return conn
            # Wrong key, garbage, too slow or gone: closed, counted, and the wait goes on.
            self._refused += 1

    def _accept_one(self, deadline: float | None) -> Connection:
        while True:
            if self._closed:
                raise closed_error(self._address)
            try:
                sock, _ = self._sock.accept()
                if (self._uids or self._gids) and not self._admits(sock):
                    # Refused: closed at once, counted, and the wait goes on.
                    sock.close()
                    self._refused += 1
                    continue
                break
            except (BlockingIOError, InterruptedError):
                pass
            except OSError as e:
                if self._closed:
                    raise closed_error(self._address) from None
                if e.errno in (errno.ECONNABORTED, errno.EPROTO):
                    continue
                raise oserror(e.errno, self._address) if e.errno else e from None
            self._wait(deadline)
        try:
            if sock.family in (socket.AF_INET, socket.AF_INET6):
                tcp_options(sock)
            return Connection(sock, self._address, self._kind, self._max)
        except BaseException:
            sock.close()
            raise

    def _wait(self, deadline: float | None) -> None:
        """Waits at most one slice for a connection: a close from another thread ends
        ``accept`` within a slice (the loop checks for it), the deadline with TimeoutError."""
        left = remaining(deadline, self._address)
        fd = self._sock.fileno()
        if fd < 0:
            raise closed_error(self._address)
        step = SLICE if left is None else min(left, SLICE)
        if not wait_fd(fd, False, step) and left is not None and left <= SLICE:
            raise timeout_error(self._address)

    def fileno(self) -> int:
        if self._closed:
            raise closed_error(self._address)
        return self._sock.fileno()
