"""``Connection``: framed messages and raw bytes over a connected stream or seqpacket socket."""

from __future__ import annotations

import contextlib
import errno
import socket
import struct
import threading
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from .. import _handles
from .._errors import BufferTooShort, MessageTooLarge, NotSupportedError, TruncatedMessage
from .._types import Credentials
from . import _fds, _platform
from ._aio import AsyncEntry, refuse_blocking
from ._closing import closed_error
from ._fds import (
    close_all,
    fd_list,
    rights,
    truncated,
)
from ._platform import MSG_NOSIGNAL, deadline_for, oserror, wait_fd
from ._reader import BUFSIZE, HDR, NO_FDS, WOULDBLOCK, FrameReader

if TYPE_CHECKING:
    from typing_extensions import Buffer

__all__ = ["Connection"]

#: Payloads up to this size are sent in one ``sendall`` with their header (one copy).
_SMALL = 64 * 1024
#: Payloads of this size or more use the 8-byte length (after a ``-1``), as multiprocessing does.
_LONG = 0x7FFFFFFF

_HDR_LONG = struct.Struct("!iQ")
_AF_UNIX: int | None = getattr(socket, "AF_UNIX", None)
_HAS_RECVMSG = hasattr(socket.socket, "recvmsg_into")


def _byte_view(buf: Buffer) -> memoryview:
    view = memoryview(buf)
    if view.ndim != 1 or view.format not in ("B", "b", "c"):
        view = view.cast("B")
    return view


def _payload(buf: Buffer, offset: int, size: int | None) -> memoryview:
    """The bytes ``offset .. offset + size`` of ``buf`` (to its end when ``size`` is None), as
    ``multiprocessing.connection.Connection.send_bytes`` checks them."""
    view = _byte_view(buf)
    n = len(view)
    if offset < 0:
        raise ValueError("offset is negative")
    if n < offset:
        raise ValueError("buffer length < offset")
    if size is None:
        size = n - offset
    elif size < 0:
        raise ValueError("size is negative")
    elif offset + size > n:
        raise ValueError("buffer length < offset + size")
    return view[offset : offset + size]


class Connection(FrameReader, AsyncEntry):
    """A connected stream or seqpacket socket carrying framed messages and raw bytes."""

    __slots__ = (
        "__weakref__",
        "_address",
        "_aio_plain",
        "_aio_saved",
        "_aio_tx",
        "_closed",
        "_kind",
        "_max",
        "_rlock",
        "_seq",
        "_slock",
        "_sock",
        "_timeout",
        "_unix",
    )

    def __init__(self, sock: socket.socket, address: str, kind: str, max_message: int) -> None:
        self._sock = sock
        self._address = address
        self._kind = kind
        self._seq = kind == "seqpacket"
        self._max = max_message
        self._timeout: float | None = None
        self._closed = False
        self._slock = threading.Lock()
        self._rlock = threading.Lock()
        self._init_reader()
        self._aio_tx: list[memoryview] | None = None
        self._aio_saved: float | None = None
        self._aio_plain: type | None = None
        self._unix = _HAS_RECVMSG and sock.family == _AF_UNIX
        sock.setblocking(True)
        _platform.slice_blocking_calls(sock)
        _platform.nosigpipe(sock)
        _platform.size_buffers(sock)
        if self._seq and self._unix:
            # Every packet then carries credentials, and end of file none: that tells them apart.
            _fds.set_passcred(sock)

    # -- properties -------------------------------------------------------------------------------

    @property
    def address(self) -> str:
        return self._address

    @property
    def kind(self) -> str:
        return self._kind

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def readable(self) -> bool:
        return True

    @property
    def writable(self) -> bool:
        return True

    @property
    def max_message(self) -> int:
        return self._max

    def __repr__(self) -> str:
        if self._closed:
            return f"<fastipc.Connection {self._address} closed>"
        return f"<fastipc.Connection {self._address} fd={self._sock.fileno()}>"

    # -- plumbing ---------------------------------------------------------------------------------

    def _ebadf(self) -> OSError:
        return closed_error(self._address)

    def _send_error(self, e: OSError) -> Exception:
        if self._closed:
            return self._ebadf()
        if e.errno in (errno.EPIPE, errno.ECONNRESET, errno.ESHUTDOWN):
            return oserror(errno.EPIPE, self._address)
        if e.errno == errno.EMSGSIZE:
            return MessageTooLarge(f"message too large for one packet ({self._address})")
        return self._error(e)

    def _send_all(self, data: Buffer, deadline: float | None) -> None:
        # Not ``sendall``: a blocking send ends after a slice (to notice a close), and
        # ``sendall`` would then lose count of what it sent.
        sock = self._sock
        view = _byte_view(data)
        while view:
            try:
                sent = sock.send(view, MSG_NOSIGNAL)
            except WOULDBLOCK:
                self._wait(True, deadline)
                continue
            except OSError as e:
                raise self._send_error(e) from None
            view = view[sent:]

    def _send_packet(self, data: Buffer, deadline: float | None) -> None:
        sock = self._sock
        while True:
            try:
                sock.send(data, MSG_NOSIGNAL)
                return
            except WOULDBLOCK:
                pass
            except OSError as e:
                raise self._send_error(e) from None
            self._wait(True, deadline)

    # -- framed messages ------------------------------------------------------------------------

    def _fd_args(self, fds: Iterable[object] | None) -> list[int]:
        fdl = fd_list(fds)
        if fdl and not self._unix:
            raise NotSupportedError(
                f"descriptors travel only over Unix sockets, not TCP ({self._address})"
            )
        return fdl

    def _sendmsg(self, parts: list[Buffer], fdl: list[int], deadline: float | None) -> int:
        """One ``sendmsg`` of ``parts`` with ``fdl`` attached (waiting up to the deadline);
        returns the bytes sent."""
        sock = self._sock
        anc = rights(fdl)
        while True:
            try:
                return sock.sendmsg(parts, anc, MSG_NOSIGNAL)
            except WOULDBLOCK:
                pass
            except OSError as e:
                raise self._send_error(e) from None
            self._wait(True, deadline)

    def _send_with_fds(
        self, parts: list[memoryview], fdl: list[int], deadline: float | None
    ) -> None:
        """Sends ``parts`` on the stream with ``fdl`` riding on the first bytes."""
        sent = self._sendmsg(list(parts), fdl, deadline)
        for part in parts:
            n = len(part)
            if sent >= n:
                sent -= n
                continue
            self._send_all(part[sent:], deadline)
            sent = 0

    def send_bytes(
        self,
        buf: Buffer,
        offset: int = 0,
        size: int | None = None,
        *,
        fds: Iterable[object] | None = None,
    ) -> None:
        fdl = self._fd_args(fds) if fds is not None else NO_FDS
        payload = _payload(buf, offset, size)
        with self._slock:
            if self._closed:
                raise self._ebadf()
            deadline = deadline_for(self._timeout)
            if fdl:
                self._send_frame_with_fds(payload, fdl, deadline)
            elif self._seq:
                self._send_packet(payload, deadline)
            else:
                self._send_frame(payload, deadline)

    def _send_frame(self, payload: memoryview, deadline: float | None) -> None:
        """Sends ``payload`` framed on the stream: header and payload in one copy when small."""
        size = len(payload)
        if size >= _LONG:
            self._send_all(_HDR_LONG.pack(-1, size), deadline)
            self._send_all(payload, deadline)
        elif size <= _SMALL:
            self._send_all(HDR.pack(size) + payload, deadline)
        else:
            self._send_all(HDR.pack(size), deadline)
            self._send_all(payload, deadline)

    def _send_frame_with_fds(
        self, payload: memoryview, fdl: list[int], deadline: float | None
    ) -> None:
        """Sends ``payload`` as one packet or frame with ``fdl`` riding on its first bytes."""
        size = len(payload)
        if self._seq:
            self._sendmsg([payload], fdl, deadline)
        elif size <= _SMALL:
            frame = HDR.pack(size) + payload
            sent = self._sendmsg([frame], fdl, deadline)
            if sent < len(frame):
                self._send_all(memoryview(frame)[sent:], deadline)
        else:
            head = _HDR_LONG.pack(-1, size) if size >= _LONG else HDR.pack(size)
            self._send_with_fds([memoryview(head), payload], fdl, deadline)

    def recv_bytes(self, maxlength: int | None = None) -> bytes:
        if maxlength is not None and maxlength < 0:
            raise ValueError("negative maxlength")
        with self._rlock:
            if self._closed:
                raise self._ebadf()
            msg = self._recv_message(maxlength)
            if self._claimed:
                # Descriptors that came with it are closed: this caller did not ask for them.
                self._drop_fds()
        return msg if type(msg) is bytes else bytes(msg)

    def recv_bytes_and_fds(
        self, maxlength: int | None = None, *, maxfds: int = _fds.SCM_MAX_FD
    ) -> tuple[bytes, list[int]]:
        if maxlength is not None and maxlength < 0:
            raise ValueError("negative maxlength")
        if maxfds < 0:
            raise OverflowError("can't convert negative int to unsigned")
        with self._rlock:
            if self._closed:
                raise self._ebadf()
            msg = self._recv_message(maxlength)
            fds = self._take_fds()
        if len(fds) > maxfds:
            close_all(fds)
            raise truncated(f"{self._address}: {len(fds)} descriptors, maxfds={maxfds}")
        return (msg if type(msg) is bytes else bytes(msg)), fds

    def send_fds(self, data: Buffer, fds: Iterable[object]) -> int:
        fdl = self._fd_args(fds)
        view = _byte_view(data)
        n = len(view)
        if fdl and n == 0 and not self._seq:
            raise ValueError(
                "descriptors need at least one byte of data to travel on a stream socket"
            )
        with self._slock:
            if self._closed:
                raise self._ebadf()
            deadline = deadline_for(self._timeout)
            if self._seq:
                self._sendmsg([view], fdl, deadline)
            elif fdl:
                self._send_with_fds([view], fdl, deadline)
            else:
                self._send_all(view, deadline)
        return n

    def recv_fds(
        self, bufsize: int, maxfds: int, *, timeout: float | None = None
    ) -> tuple[bytes, list[int]]:
        if bufsize < 0:
            raise ValueError("negative bufsize")
        if maxfds < 0:
            raise OverflowError("can't convert negative int to unsigned")
        if timeout is not None:
            timeout = _platform.check_timeout(timeout)
        buf = bytearray(bufsize)
        with self._rlock:
            if self._closed:
                raise self._ebadf()
            deadline = deadline_for(self._timeout if timeout is None else timeout)
            if timeout is not None and self._timeout is None:
                self._sock.setblocking(False)
            try:
                n = self._read_some(memoryview(buf), deadline)
            finally:
                if timeout is not None and self._timeout is None and not self._closed:
                    self._sock.setblocking(True)
            fds = self._take_fds()
        if len(fds) > maxfds:
            close_all(fds)
            raise truncated(self._address)
        return bytes(buf[:n]), fds

    def peer_credentials(self) -> Credentials:
        if self._closed:
            raise self._ebadf()
        return _fds.peer_credentials(self._sock, self._address)

    def peer_pidfd(self) -> int:
        if self._closed:
            raise self._ebadf()
        return _fds.peer_pidfd(self._sock, self._address)

    def recv_bytes_into(self, buf: Buffer, offset: int = 0) -> int:
        view = _byte_view(buf)
        if view.readonly:
            raise TypeError("recv_bytes_into needs a writable buffer")
        if offset < 0:
            raise ValueError("negative offset")
        if offset > len(view):
            raise ValueError("offset too large")
        with self._rlock:
            if self._closed:
                raise self._ebadf()
            msg = self._recv_message(None)
            if self._claimed:
                self._drop_fds()
        size = len(msg)
        if size > len(view) - offset:
            raise BufferTooShort(bytes(msg))
        view[offset : offset + size] = msg
        return size

    def poll(self, timeout: float | None = 0.0) -> bool:
        timeout = _platform.check_timeout(timeout)
        if self._closed:
            raise self._ebadf()
        if self._end > self._start or self._pending is not None:
            return True
        # In slices, between which a close() from another thread ends the wait.
        deadline = deadline_for(timeout)
        while True:
            left = None if deadline is None else deadline - time.monotonic()
            fd = self._sock.fileno()
            if self._closed or fd < 0:
                raise self._ebadf()
            try:
                ready = wait_fd(
                    fd, False, _platform.SLICE if left is None else min(left, _platform.SLICE)
                )
            except OSError as e:
                raise self._error(e) from None
            if self._closed:
                raise self._ebadf()
            if ready:
                return True
            if left is not None and left <= _platform.SLICE:
                return False

    def send(self, obj: object) -> None:
        data, fds = _handles.dumps(obj)
        self.send_bytes(data, fds=fds)

    def recv(self) -> Any:
        """Receive a pickled object. Unpickling runs code chosen by the sender: call it only on
        connections whose peer is trusted (a Unix socket in the private socket directory or with
        ``allow_uids``, or an ``authkey`` handshake; not TCP without one, even on loopback).
        ``authkey`` authenticates, it does not encrypt."""
        data, fds = self.recv_bytes_and_fds()
        return _handles.loads(data, fds)

    # -- raw bytes --------------------------------------------------------------------------------

    def sendall(self, data: Buffer) -> None:
        view = _byte_view(data)
        with self._slock:
            if self._closed:
                raise self._ebadf()
            self._send_all(view, deadline_for(self._timeout))

    def recv_into(self, buffer: Buffer, nbytes: int = 0) -> int:
        view = _byte_view(buffer)
        if view.readonly:
            raise TypeError("recv_into needs a writable buffer")
        if nbytes < 0:
            raise ValueError("negative buffersize in recv_into")
        if nbytes == 0:
            nbytes = len(view)
        elif nbytes > len(view):
            raise ValueError("buffer too small for requested bytes")
        with self._rlock:
            if self._closed:
                raise self._ebadf()
            try:
                return self._read_some(view[:nbytes], deadline_for(self._timeout))
            finally:
                self._drop_fds()

    def recv_exact(self, n: int) -> bytes:
        if self._seq:
            raise NotSupportedError(f"recv_exact is not supported on seqpacket ({self._address})")
        if n < 0:
            raise ValueError("negative size")
        with self._rlock:
            if self._closed:
                raise self._ebadf()
            if n == 0:
                return b""
            deadline = deadline_for(self._timeout)
            if n <= BUFSIZE:
                while self._end - self._start < n:
                    if self._fill(n, deadline) == 0:
                        self._exact_eof(n, self._end - self._start)
                data = self._take(n)
                if self._pfds:
                    # Raw bytes claim no descriptors: close those of the bytes just taken.
                    self._claim(self._abs_end - (self._end - self._start), 0)
                return data
            msg = bytearray(n)
            view = memoryview(msg)
            got = self._end - self._start
            view[:got] = self._view[self._start : self._end]
            self._start = self._end = 0
            try:
                while got < n:
                    r = self._read_some(view[got:], deadline)
                    if r == 0:
                        self._exact_eof(n, got)
                    got += r
            finally:
                self._drop_fds()
            view.release()
            return bytes(msg)

    def _exact_eof(self, n: int, got: int) -> None:
        self._start = self._end = 0
        if got == 0:
            raise EOFError(f"connection closed ({self._address})")
        raise TruncatedMessage(
            f"connection closed after {got} of {n} bytes ({self._address})", n, got
        )

    # -- socket-like ----------------------------------------------------------------------------

    def settimeout(self, timeout: float | None) -> None:
        timeout = _platform.check_timeout(timeout)
        if self._closed:
            raise self._ebadf()
        self._timeout = timeout
        self._sock.setblocking(timeout is None)

    def gettimeout(self) -> float | None:
        return self._timeout

    def fileno(self) -> int:
        if self._closed:
            raise self._ebadf()
        return self._sock.fileno()

    def shutdown(self, how: int = socket.SHUT_RDWR) -> None:
        if self._closed:
            raise self._ebadf()
        try:
            self._sock.shutdown(how)
        except OSError as e:
            raise self._error(e) from None

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._drop_fds()
        pending, self._pfds = self._pfds, []
        for entry in pending:
            close_all(entry[2])
        self._sock.close()

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.close()


#: The class of a connection that ``fastipc.aio`` holds: its blocking calls refuse.
WRAPPED = refuse_blocking(Connection)
