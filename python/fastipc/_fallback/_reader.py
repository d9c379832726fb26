"""The receive side of the fallback's ``Connection``: one read buffer through which frames
arrive (a small one whole in one read), larger payloads read into their own message, seqpacket
packets, and the descriptors that come with the bytes, claimed by the frame they ride on."""

from __future__ import annotations

import contextlib
import errno
import functools
import os
import socket
import struct
import sys

from .._errors import MessageTooLarge, TruncatedMessage
from . import _fds, _platform
from ._closing import Closing, closed_error
from ._fds import ANC_SPACE, CLOEXEC, close_all, parse_ancillary, truncated
from ._platform import SLICE, deadline_for, oserror, remaining, timeout_error, wait_fd

__all__ = ["BUFSIZE", "HDR", "NO_FDS", "WOULDBLOCK", "FrameReader"]

#: Size of the internal read buffer; frames up to this size (header included) cost one ``recv``.
BUFSIZE = 64 * 1024
HDR = struct.Struct("!i")
_LEN8 = struct.Struct("!Q")
_MSG_PEEK_TRUNC = int(getattr(socket, "MSG_PEEK", 0) | getattr(socket, "MSG_TRUNC", 0))
WOULDBLOCK = (BlockingIOError, InterruptedError)
_SO_PASSCRED: int | None = getattr(socket, "SO_PASSCRED", None)
_MSG_CTRUNC = _fds.MSG_CTRUNC
#: The descriptors of a read that brought none (shared: never stored where it could grow).
NO_FDS: list[int] = []


@functools.cache
def _physical_memory() -> int:
    """This machine's physical memory in bytes (``sys.maxsize`` where it cannot be read): the
    bound on a message the fallback will try to receive."""
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return sys.maxsize


class FrameReader(Closing):
    """What a Connection reads with: the read buffer ``_buf[_start:_end]``, an interrupted large
    message, and the descriptors of buffered bytes. The socket and the settings it reads them
    with are the Connection's."""

    __slots__ = ("_abs_end", "_buf", "_claimed", "_end", "_pending", "_pfds", "_start", "_view")

    _sock: socket.socket
    _address: str
    _closed: bool
    _seq: bool
    _unix: bool
    _max: int
    _timeout: float | None

    def _init_reader(self) -> None:
        self._buf = bytearray(BUFSIZE)
        self._view = memoryview(self._buf)
        self._start = 0
        self._end = 0
        # A large payload whose reception was interrupted (timeout, Ctrl-C): (message so far,
        # bytes received, announced size).
        self._pending: tuple[bytearray, int, int] | None = None
        # Descriptors: the stream offset of ``_buf[_end]`` (every byte ever read), those that
        # arrived with buffered bytes as (from, to, fds), and those of the current message.
        self._abs_end = 0
        self._pfds: list[tuple[int, int, list[int]]] = []
        self._claimed: list[int] = []

    def _error(self, e: OSError) -> OSError:
        if self._closed:
            return closed_error(self._address)
        if e.errno is None:
            return e
        return oserror(e.errno, self._address)

    def _wait(self, write: bool, deadline: float | None) -> None:
        """Between two attempts of a call that would block: the closed error once the
        connection was closed (by another thread), TimeoutError at the deadline, else a wait
        for readiness of at most one slice. A blocking socket waits in the call itself, which
        ``SO_RCVTIMEO``/``SO_SNDTIMEO`` end after a slice."""
        if self._closed:
            raise closed_error(self._address)
        left = remaining(deadline, self._address)
        if self._sock.gettimeout() is None:
            return
        fd = self._sock.fileno()
        if fd < 0:
            raise closed_error(self._address)
        step = SLICE if left is None else min(left, SLICE)
        if not wait_fd(fd, write, step) and left is not None and left <= SLICE:
            raise timeout_error(self._address)

    def _recv_into(self, view: memoryview, deadline: float | None, flags: int = 0) -> int:
        """One successful ``recv_into`` (waiting up to the deadline); 0 at end of file."""
        sock = self._sock
        while True:
            try:
                return sock.recv_into(view, 0, flags)
            except WOULDBLOCK:
                pass
            except OSError as e:
                raise self._error(e) from None
            self._wait(False, deadline)

    def _recvmsg(self, view: memoryview, deadline: float | None) -> tuple[int, list[int] | None]:
        """One successful read (waiting up to the deadline) and the descriptors that came with
        it (close-on-exec); ``None`` for a truncated control message, whose descriptors are
        closed already."""
        if not self._unix:
            return self._recv_into(view, deadline), NO_FDS
        sock = self._sock
        while True:
            try:
                n, anc, flags, _ = sock.recvmsg_into((view,), ANC_SPACE, CLOEXEC)
                break
            except WOULDBLOCK:
                pass
            except OSError as e:
                raise self._error(e) from None
            self._wait(False, deadline)
        if anc or flags & _MSG_CTRUNC:
            try:
                return n, parse_ancillary(anc, flags, self._address)[0]
            except OSError:
                return n, None
        return n, NO_FDS

    def _fill(self, need: int, deadline: float | None) -> int:
        """Read into the internal buffer so that ``need`` bytes may fit; returns bytes read."""
        if self._start + need > BUFSIZE:
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
        except WOULDBLOCK:
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
            msg, got, size = self._pending
            return self._recv_large(msg, got, size, deadline)
        if self._claimed:
            self._drop_fds()
        if self._end == 0 and self._unix:
            ready = self._recv_ready(limit)
            if ready is not None:
                return ready
        hlen, size = self._recv_header(limit, deadline)
        try:
            return self._recv_payload(hlen, size, deadline)
        except (MemoryError, OverflowError):
            # No room for the payload (OverflowError: over sys.maxsize, with a max_message that
            # large). The header is consumed and the payload would be read as frames: close, as
            # after MessageTooLarge.
            self.close()
            raise

    def _recv_ready(self, limit: int) -> bytes | None:
        """The fast path, with the buffer empty: one ready read that brings a whole small frame
        returns it. ``None`` otherwise, with whatever was read kept in the buffer."""
        try:
            got, anc, flags, _ = self._sock.recvmsg_into((self._view,), ANC_SPACE, CLOEXEC)
        except WOULDBLOCK:
            return None
        except OSError as e:
            raise self._error(e) from None
        if anc or flags & _MSG_CTRUNC:
            return self._ready_with_fds(got, anc, flags, limit)
        self._end = got
        self._abs_end += got
        if got < 4:
            return None
        size = HDR.unpack_from(self._buf)[0]
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
            size = HDR.unpack_from(self._buf)[0]
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
        size = HDR.unpack_from(self._buf, self._start)[0]
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
        if total <= BUFSIZE:
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
        if size > _physical_memory():
            # No machine-sized buffer can ever hold it: refuse at once, as the extension does
            # when it cannot reserve the announced length (the caller closes the connection).
            raise MemoryError(f"a message of {size} bytes cannot be allocated ({self._address})")
        if self._pfds:
            self._claim(self._abs_end - (self._end - self._start), total)
        self._start += hlen
        # The message grows with what arrives (see ``_recv_large``): a peer that announces a
        # large frame and sends nothing more costs a buffer's worth, not the announced size.
        msg = bytearray(self._view[self._start : self._end])
        got = len(msg)
        self._start = self._end = 0
        return self._recv_large(msg, got, size, deadline)

    def _eof(self, header: int) -> None:
        received = self._end - self._start
        if received == 0:
            raise EOFError(f"connection closed ({self._address})")
        self._start = self._end = 0
        raise TruncatedMessage(
            f"connection closed inside a message header: got {received} of {header} bytes "
            f"({self._address})",
            header,
            received,
        )

    def _recv_large(self, msg: bytearray, got: int, size: int, deadline: float | None) -> bytearray:
        """Receives the rest of a ``size``-byte payload of which ``msg[:got]`` arrived. ``msg``
        grows geometrically (from at least one buffer, never past ``size``) as bytes arrive,
        so memory follows what the peer sent rather than what it announced."""
        self._pending = None
        try:
            while got < size:
                if got == len(msg):
                    grow = min(size, max(2 * got, BUFSIZE)) - got
                    msg += bytes(grow)
                with memoryview(msg) as whole:
                    # Reads stay inside this frame: whatever descriptors come are its own.
                    n, fds = self._recvmsg(whole[got:], deadline)
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
            self._pending = (msg, got, size)
            raise
        return msg

    def _recv_packet(self, limit: int, deadline: float | None) -> bytes | bytearray:
        probe = bytearray(1)
        size = self._recv_into(memoryview(probe), deadline, _MSG_PEEK_TRUNC)
        if size == 0:
            if self._empty_packet(deadline):
                return b""
            raise EOFError(f"connection closed ({self._address})")
        if size > limit:
            # A seqpacket socket keeps message boundaries: drop this packet (and whatever
            # descriptors ride on it), and the connection stays usable, as in the Rust backend.
            self._drop_packet()
            raise MessageTooLarge(
                f"message of {size} bytes is larger than the limit of {limit} bytes "
                f"({self._address})"
            )
        msg = bytearray(size)
        _, fds = self._recvmsg(memoryview(msg), deadline)
        if fds is None:
            raise truncated(self._address)
        if fds:  # never the shared empty list: ``_claimed`` is extended in place
            self._claimed = fds
        return msg

    def _drop_packet(self) -> None:
        """Consumes the packet at the head of the queue (it is there: it was just peeked) and
        closes the descriptors that came with it."""
        try:
            _, anc, flags, _ = self._sock.recvmsg(0, ANC_SPACE, socket.MSG_DONTWAIT | CLOEXEC)
        except OSError as e:
            raise self._error(e) from None
        with contextlib.suppress(OSError):
            close_all(parse_ancillary(anc, flags, self._address)[0])

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
            except WOULDBLOCK:
                pass
            except OSError as e:
                raise self._error(e) from None
            self._wait(False, deadline)
        fds, creds = parse_ancillary(ancdata, flags, self._address)
        self._claimed = fds
        return creds is not None or bool(fds)

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
