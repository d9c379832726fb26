"""``Connection``: framed messages and raw bytes over a connected stream or seqpacket socket."""

from __future__ import annotations

import contextlib
import errno
import pickle
import socket
import struct
import threading
from types import TracebackType
from typing import TYPE_CHECKING

from .._errors import BufferTooShort, MessageTooLarge, NotSupportedError, TruncatedMessage
from . import _platform
from ._platform import MSG_NOSIGNAL, deadline_for, oserror, remaining, timeout_error, wait_fd

if TYPE_CHECKING:
    from typing import Self

    from typing_extensions import Buffer

__all__ = ["Connection"]

#: Size of the internal read buffer; frames up to this size (header included) cost one ``recv``.
_BUFSIZE = 64 * 1024
#: Payloads up to this size are sent in one ``sendall`` with their header (one copy).
_SMALL = 64 * 1024
#: Payloads of this size or more use the 8-byte length (after a ``-1``), as multiprocessing does.
_LONG = 0x7FFFFFFF

_HDR = struct.Struct("!i")
_HDR_LONG = struct.Struct("!iQ")
_LEN8 = struct.Struct("!Q")
_MSG_PEEK_TRUNC = getattr(socket, "MSG_PEEK", 0) | getattr(socket, "MSG_TRUNC", 0)
_WOULDBLOCK = (BlockingIOError, InterruptedError)
_SO_PASSCRED: int | None = getattr(socket, "SO_PASSCRED", None)
_CREDS_SPACE = socket.CMSG_SPACE(12) if hasattr(socket, "CMSG_SPACE") else 0


def _byte_view(buf: Buffer) -> memoryview:
    view = memoryview(buf)
    if view.ndim != 1 or view.format not in ("B", "b", "c"):
        view = view.cast("B")
    return view


class Connection:
    """A connected stream or seqpacket socket carrying framed messages and raw bytes."""

    __slots__ = (
        "__weakref__",
        "_address",
        "_buf",
        "_closed",
        "_end",
        "_kind",
        "_max",
        "_pending",
        "_rlock",
        "_seq",
        "_slock",
        "_sock",
        "_start",
        "_timeout",
        "_view",
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
        self._buf = bytearray(_BUFSIZE)
        self._view = memoryview(self._buf)
        self._start = 0
        self._end = 0
        # A large payload whose reception was interrupted (timeout, Ctrl-C): (message, received).
        self._pending: tuple[bytearray, int] | None = None
        sock.setblocking(True)
        _platform.nosigpipe(sock)

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
        return oserror(errno.EBADF, self._address)

    def _error(self, e: OSError) -> OSError:
        if e.errno is None:
            return e
        return oserror(e.errno, self._address)

    def _send_error(self, e: OSError) -> Exception:
        if e.errno in (errno.EPIPE, errno.ECONNRESET, errno.ESHUTDOWN):
            return oserror(errno.EPIPE, self._address)
        if e.errno == errno.EMSGSIZE:
            return MessageTooLarge(f"message too large for one packet ({self._address})")
        return self._error(e)

    def _wait(self, write: bool, deadline: float | None) -> None:
        left = remaining(deadline, self._address)
        if not wait_fd(self._sock.fileno(), write, left):
            raise timeout_error(self._address)

    def _recv_into(self, view: memoryview, deadline: float | None, flags: int = 0) -> int:
        """One successful ``recv_into`` (waiting up to the deadline); 0 at end of file."""
        sock = self._sock
        while True:
            try:
                return sock.recv_into(view, 0, flags)
            except _WOULDBLOCK:
                pass
            except OSError as e:
                raise self._error(e) from None
            self._wait(False, deadline)

    def _send_all(self, data: Buffer, deadline: float | None) -> None:
        sock = self._sock
        if self._timeout is None:
            try:
                sock.sendall(data, MSG_NOSIGNAL)
            except OSError as e:
                raise self._send_error(e) from None
            return
        view = _byte_view(data)
        while view:
            try:
                sent = sock.send(view, MSG_NOSIGNAL)
            except _WOULDBLOCK:
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
            except _WOULDBLOCK:
                pass
            except OSError as e:
                raise self._send_error(e) from None
            self._wait(True, deadline)

    def _fill(self, need: int, deadline: float | None) -> int:
        """Read into the internal buffer so that ``need`` bytes may fit; returns bytes read."""
        if self._start + need > _BUFSIZE:
            avail = self._end - self._start
            self._buf[:avail] = bytes(self._view[self._start : self._end])
            self._start, self._end = 0, avail
        got = self._recv_into(self._view[self._end :], deadline)
        self._end += got
        return got

    def _take(self, n: int) -> bytes:
        data = bytes(self._view[self._start : self._start + n])
        self._start += n
        if self._start == self._end:
            self._start = self._end = 0
        return data

    def _too_large(self, size: int, limit: int) -> MessageTooLarge:
        self.close()
        return MessageTooLarge(
            f"message of {size} bytes is larger than the limit of {limit} bytes ({self._address})"
        )

    def _recv_message(self, maxlength: int | None) -> bytes | bytearray:
        """The next message (the caller holds the receive lock and checked the connection)."""
        limit = self._max if maxlength is None else min(maxlength, self._max)
        deadline = deadline_for(self._timeout)
        if self._seq:
            return self._recv_packet(limit, deadline)
        if self._pending is not None:
            msg, got = self._pending
            return self._recv_large(msg, got, deadline)
        # The header.
        while self._end - self._start < 4:
            if self._fill(4, deadline) == 0:
                self._eof(4)
        size = _HDR.unpack_from(self._buf, self._start)[0]
        hlen = 4
        if size == -1:
            while self._end - self._start < 12:
                if self._fill(12, deadline) == 0:
                    self._eof(12)
            size = _LEN8.unpack_from(self._buf, self._start + 4)[0]
            hlen = 12
        elif size < 0:
            self.close()
            raise oserror(errno.EBADMSG, self._address)
        if size > limit:
            raise self._too_large(size, limit)
        # The payload: from the internal buffer when it fits there.
        total = hlen + size
        if total <= _BUFSIZE:
            while self._end - self._start < total:
                if self._fill(total, deadline) == 0:
                    received = self._end - self._start - hlen
                    self._start = self._end = 0
                    raise TruncatedMessage(
                        f"connection closed inside a message of {size} bytes after {received} "
                        f"({self._address})",
                        size,
                        received,
                    )
            self._start += hlen
            return self._take(size)
        self._start += hlen
        msg = bytearray(size)
        got = self._end - self._start
        msg[:got] = self._view[self._start : self._end]
        self._start = self._end = 0
        return self._recv_large(msg, got, deadline)

    def _eof(self, header: int) -> None:
        received = self._end - self._start
        if received == 0:
            raise EOFError(f"connection closed ({self._address})")
        self._start = self._end = 0
        raise TruncatedMessage(
            f"connection closed inside a message header ({self._address})", header, received
        )

    def _recv_large(self, msg: bytearray, got: int, deadline: float | None) -> bytearray:
        self._pending = None
        view = memoryview(msg)
        size = len(msg)
        try:
            while got < size:
                n = self._recv_into(view[got:], deadline)
                if n == 0:
                    raise TruncatedMessage(
                        f"connection closed inside a message of {size} bytes after {got} "
                        f"({self._address})",
                        size,
                        got,
                    )
                got += n
        except (TimeoutError, KeyboardInterrupt, InterruptedError):
            # Keep what arrived so that the next receive carries on with this message.
            self._pending = (msg, got)
            raise
        finally:
            view.release()
        return msg

    def _recv_packet(self, limit: int, deadline: float | None) -> bytes | bytearray:
        probe = bytearray(1)
        size = self._recv_into(memoryview(probe), deadline, _MSG_PEEK_TRUNC)
        if size == 0:
            if self._empty_packet(deadline):
                return b""
            raise EOFError(f"connection closed ({self._address})")
        if size > limit:
            raise self._too_large(size, limit)
        msg = bytearray(size)
        self._recv_into(memoryview(msg), deadline)
        return msg

    def _empty_packet(self, deadline: float | None) -> bool:
        """Consume a 0-byte read: True for an empty packet, False at end of file.

        Both read as 0 bytes. Where the kernel can attach credentials to every packet
        (``SO_PASSCRED``), a packet comes with them and the end of file without; elsewhere only
        the end of file comes with a hang-up."""
        sock = self._sock
        if _SO_PASSCRED is None:
            if _platform.poll_hup(sock.fileno()):
                with contextlib.suppress(OSError):
                    sock.recv(1, socket.MSG_DONTWAIT)
                return False
            self._recv_into(memoryview(bytearray(1)), deadline)
            return True
        try:
            sock.setsockopt(socket.SOL_SOCKET, _SO_PASSCRED, 1)
        except OSError as e:
            raise self._error(e) from None
        while True:
            try:
                _, ancdata, _, _ = sock.recvmsg(1, _CREDS_SPACE)
                return bool(ancdata)
            except _WOULDBLOCK:
                pass
            except OSError as e:
                raise self._error(e) from None
            self._wait(False, deadline)

    # -- framed messages ------------------------------------------------------------------------

    def send_bytes(self, buf: Buffer, offset: int = 0, size: int | None = None) -> None:
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
        payload = view[offset : offset + size]
        with self._slock:
            if self._closed:
                raise self._ebadf()
            deadline = deadline_for(self._timeout)
            if self._seq:
                self._send_packet(payload, deadline)
            elif size >= _LONG:
                self._send_all(_HDR_LONG.pack(-1, size), deadline)
                self._send_all(payload, deadline)
            elif size <= _SMALL:
                self._send_all(_HDR.pack(size) + payload, deadline)
            else:
                self._send_all(_HDR.pack(size), deadline)
                self._send_all(payload, deadline)

    def recv_bytes(self, maxlength: int | None = None) -> bytes:
        if maxlength is not None and maxlength < 0:
            raise ValueError("negative maxlength")
        with self._rlock:
            if self._closed:
                raise self._ebadf()
            msg = self._recv_message(maxlength)
        return msg if type(msg) is bytes else bytes(msg)

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
        try:
            return wait_fd(self._sock.fileno(), False, timeout)
        except OSError as e:
            raise self._error(e) from None

    def send(self, obj: object) -> None:
        self.send_bytes(pickle.dumps(obj))

    def recv(self) -> object:
        return pickle.loads(self.recv_bytes())

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
            avail = self._end - self._start
            if avail:
                n = min(avail, nbytes)
                view[:n] = self._view[self._start : self._start + n]
                self._start += n
                if self._start == self._end:
                    self._start = self._end = 0
                return n
            if nbytes == 0:
                return 0
            return self._recv_into(view[:nbytes], deadline_for(self._timeout))

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
            if n <= _BUFSIZE:
                while self._end - self._start < n:
                    if self._fill(n, deadline) == 0:
                        self._exact_eof(n, self._end - self._start)
                return self._take(n)
            msg = bytearray(n)
            view = memoryview(msg)
            got = self._end - self._start
            view[:got] = self._view[self._start : self._end]
            self._start = self._end = 0
            while got < n:
                r = self._recv_into(view[got:], deadline)
                if r == 0:
                    self._exact_eof(n, got)
                got += r
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
        self._sock.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.close()
