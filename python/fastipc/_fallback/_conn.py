"""``Connection``: framed messages and raw bytes over a connected stream or seqpacket socket."""

from __future__ import annotations

import contextlib
import errno
import socket
import struct
import threading
from collections.abc import Iterable
from typing import TYPE_CHECKING

from .. import _handles
from .._errors import BufferTooShort, MessageTooLarge, NotSupportedError, TruncatedMessage
from .._types import Credentials
from . import _fds, _platform
from ._closing import Closing, closed_error
from ._fds import (
    ANC_SPACE,
    CLOEXEC,
    close_all,
    fd_list,
    parse_ancillary,
    rights,
    truncated,
)
from ._platform import MSG_NOSIGNAL, deadline_for, oserror, remaining, timeout_error, wait_fd

if TYPE_CHECKING:
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
_MSG_PEEK_TRUNC = int(getattr(socket, "MSG_PEEK", 0) | getattr(socket, "MSG_TRUNC", 0))
_WOULDBLOCK = (BlockingIOError, InterruptedError)
_SO_PASSCRED: int | None = getattr(socket, "SO_PASSCRED", None)
_MSG_CTRUNC = _fds.MSG_CTRUNC
_AF_UNIX: int | None = getattr(socket, "AF_UNIX", None)
_HAS_RECVMSG = hasattr(socket.socket, "recvmsg_into")
#: The descriptors of a read that brought none (shared: never stored where it could grow).
_NO_FDS: list[int] = []


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


class Connection(Closing):
    """A connected stream or seqpacket socket carrying framed messages and raw bytes."""

    __slots__ = (
        "__weakref__",
        "_abs_end",
        "_address",
        "_buf",
        "_claimed",
        "_closed",
        "_end",
        "_kind",
        "_max",
        "_pending",
        "_pfds",
        "_rlock",
        "_seq",
        "_slock",
        "_sock",
        "_start",
        "_timeout",
        "_unix",
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
        # Descriptors: the stream offset of ``_buf[_end]`` (every byte ever read), those that
        # arrived with buffered bytes as (from, to, fds), and those of the current message.
        self._abs_end = 0
        self._pfds: list[tuple[int, int, list[int]]] = []
        self._claimed: list[int] = []
        self._unix = _HAS_RECVMSG and sock.family == _AF_UNIX
        sock.setblocking(True)
        _platform.nosigpipe(sock)
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

    def _recvmsg(self, view: memoryview, deadline: float | None) -> tuple[int, list[int] | None]:
        """One successful read (waiting up to the deadline) and the descriptors that came with
        it (close-on-exec); ``None`` for a truncated control message, whose descriptors are
        closed already."""
        if not self._unix:
            return self._recv_into(view, deadline), _NO_FDS
        sock = self._sock
        while True:
            try:
                n, anc, flags, _ = sock.recvmsg_into((view,), ANC_SPACE, CLOEXEC)
                break
            except _WOULDBLOCK:
                pass
            except OSError as e:
                raise self._error(e) from None
            self._wait(False, deadline)
        if anc or flags & _MSG_CTRUNC:
            try:
                return n, parse_ancillary(anc, flags, self._address)[0]
            except OSError:
                return n, None
        return n, _NO_FDS

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
        view = self._view[self._end :]
        if not self._unix:
            got = self._recv_into(view, deadline)
            self._end += got
            self._abs_end += got
            return got
        # The common case inline: one read that is ready and brings no descriptors.
        try:
            got, anc, flags, _ = self._sock.recvmsg_into((view,), ANC_SPACE, CLOEXEC)
        except _WOULDBLOCK:
            got, fds = self._recvmsg(view, deadline)
        except OSError as e:
            raise self._error(e) from None
        else:
            if not anc and not flags & _MSG_CTRUNC:
                self._end += got
                self._abs_end += got
                return got
            try:
                fds = parse_ancillary(anc, flags, self._address)[0]
            except OSError:
                fds = None
        return self._filled(got, fds)

    def _filled(self, got: int, fds: list[int] | None) -> int:
        """Records ``got`` bytes read into the buffer with descriptors ``fds`` (``None``: a
        truncated control message, raised once the bytes are recorded)."""
        start = self._abs_end
        self._end += got
        self._abs_end = start + got
        if fds is None:
            raise truncated(self._address)
        if fds:
            self._pfds.append((start, start + got, fds))
        return got

    def _claim(self, at: int, total: int) -> None:
        """Claims the descriptors of the frame at stream offsets ``at..at + total``: those of
        the read in which its header starts, when its bytes reach that read's end (the kernel
        ends a read right after the segment carrying descriptors, and they ride on a frame's
        first segment). Descriptors of bytes before it, which nobody claimed, are closed."""
        keep: list[tuple[int, int, list[int]]] = []
        for entry in self._pfds:
            start, end, fds = entry
            if end <= at:
                close_all(fds)
            elif start <= at and at + total >= end:
                self._claimed.extend(fds)
            else:
                keep.append(entry)
        self._pfds = keep

    def _take_fds(self) -> list[int]:
        fds = self._claimed
        if fds:
            self._claimed = []
        return fds

    def _drop_fds(self) -> None:
        if self._claimed:
            fds, self._claimed = self._claimed, []
            close_all(fds)

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
            self._drop_fds()
            return self._recv_packet(limit, deadline)
        if self._pending is not None:
            msg, got = self._pending
            return self._recv_large(msg, got, deadline)
        if self._claimed:
            self._drop_fds()
        if self._end == 0 and self._unix:
            ready = self._recv_ready(limit)
            if ready is not None:
                return ready
        hlen, size = self._recv_header(limit, deadline)
        return self._recv_payload(hlen, size, deadline)

    def _recv_ready(self, limit: int) -> bytes | None:
        """The fast path, with the buffer empty: one ready read that brings a whole small frame
        returns it. ``None`` otherwise, with whatever was read kept in the buffer."""
        try:
            got, anc, flags, _ = self._sock.recvmsg_into((self._view,), ANC_SPACE, CLOEXEC)
        except _WOULDBLOCK:
            return None
        except OSError as e:
            raise self._error(e) from None
        if anc or flags & _MSG_CTRUNC:
            return self._ready_with_fds(got, anc, flags, limit)
        self._end = got
        self._abs_end += got
        if got < 4:
            return None
        size = _HDR.unpack_from(self._buf)[0]
        end = size + 4
        if not (0 <= size <= limit and end <= got):
            return None
        if end == got:
            self._end = 0
        else:
            self._start = end
        return bytes(self._view[4:end])

    def _ready_with_fds(
        self, got: int, anc: list[tuple[int, int, bytes]], flags: int, limit: int
    ) -> bytes | None:
        """The fast path's read brought descriptors (or a truncated control message)."""
        try:
            fds: list[int] | None = parse_ancillary(anc, flags, self._address)[0]
        except OSError:
            fds = None
        if fds and got >= 4 and not self._pfds:
            # The read ends right after the segment with the descriptors: they are the first
            # frame's when it ends there too.
            size = _HDR.unpack_from(self._buf)[0]
            if 0 <= size <= limit and size + 4 == got:
                self._abs_end += got
                self._claimed = fds
                return bytes(self._view[4:got])
        self._filled(got, fds)
        return None

    def _recv_header(self, limit: int, deadline: float | None) -> tuple[int, int]:
        """Reads the next frame's header into the buffer: its length and the payload's size."""
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
        return hlen, size

    def _recv_payload(self, hlen: int, size: int, deadline: float | None) -> bytes | bytearray:
        """The payload of the frame whose header starts the buffer: from the internal buffer
        when it fits there, else into a message of its own."""
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
            if self._pfds:
                self._claim(self._abs_end - (self._end - self._start), total)
            self._start += hlen
            return self._take(size)
        if self._pfds:
            self._claim(self._abs_end - (self._end - self._start), total)
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
                # Reads stay inside this frame: whatever descriptors come are its own.
                n, fds = self._recvmsg(view[got:], deadline)
                self._abs_end += n
                if fds:
                    self._claimed.extend(fds)
                elif fds is None:
                    raise truncated(self._address)
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
        _, fds = self._recvmsg(memoryview(msg), deadline)
        if fds is None:
            raise truncated(self._address)
        if fds:  # never the shared empty list: ``_claimed`` is extended in place
            self._claimed = fds
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
                _, ancdata, flags, _ = sock.recvmsg(1, ANC_SPACE, CLOEXEC)
                break
            except _WOULDBLOCK:
                pass
            except OSError as e:
                raise self._error(e) from None
            self._wait(False, deadline)
        fds, creds = parse_ancillary(ancdata, flags, self._address)
        self._claimed = fds
        return creds is not None or bool(fds)

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
            except _WOULDBLOCK:
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
        fdl = self._fd_args(fds) if fds is not None else _NO_FDS
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
            self._send_all(_HDR.pack(size) + payload, deadline)
        else:
            self._send_all(_HDR.pack(size), deadline)
            self._send_all(payload, deadline)

    def _send_frame_with_fds(
        self, payload: memoryview, fdl: list[int], deadline: float | None
    ) -> None:
        """Sends ``payload`` as one packet or frame with ``fdl`` riding on its first bytes."""
        size = len(payload)
        if self._seq:
            self._sendmsg([payload], fdl, deadline)
        elif size <= _SMALL:
            frame = _HDR.pack(size) + payload
            sent = self._sendmsg([frame], fdl, deadline)
            if sent < len(frame):
                self._send_all(memoryview(frame)[sent:], deadline)
        else:
            head = _HDR_LONG.pack(-1, size) if size >= _LONG else _HDR.pack(size)
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
                if timeout is not None and self._timeout is None:
                    self._sock.setblocking(True)
            fds = self._take_fds()
        if len(fds) > maxfds:
            close_all(fds)
            raise truncated(self._address)
        return bytes(buf[:n]), fds

    def _read_some(self, view: memoryview, deadline: float | None) -> int:
        """Raw bytes: buffered ones first, else one read; its descriptors become claimed."""
        self._drop_fds()
        if not view:
            return 0
        avail = self._end - self._start
        if avail:
            n = min(avail, len(view))
            view[:n] = self._view[self._start : self._start + n]
            self._start += n
            if self._start == self._end:
                self._start = self._end = 0
            if self._pfds:
                upto = self._abs_end - (self._end - self._start)
                keep = []
                for entry in self._pfds:
                    if entry[0] < upto:
                        self._claimed.extend(entry[2])
                    else:
                        keep.append(entry)
                self._pfds = keep
            return n
        n, fds = self._recvmsg(view, deadline)
        self._abs_end += n
        if fds is None:
            raise truncated(self._address)
        if fds:  # never the shared empty list: ``_claimed`` is extended in place
            self._claimed = fds
        return n

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
        try:
            return wait_fd(self._sock.fileno(), False, timeout)
        except OSError as e:
            raise self._error(e) from None

    def send(self, obj: object) -> None:
        data, fds = _handles.dumps(obj)
        self.send_bytes(data, fds=fds)

    def recv(self) -> object:
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
            if n <= _BUFSIZE:
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
