"""The non-blocking entry points of the fallback's ``Connection`` that ``fastipc.aio`` drives
from an event loop, as the extension has them (``src/py/aio/``).

Each call makes one attempt and never waits. While ``fastipc.aio`` holds a connection its socket
is non-blocking and its timeout 0, so the receive path the blocking calls use stops with
``TimeoutError`` where it would wait, keeping what arrived (a small frame in the read buffer, a
large message as the pending one) for the next attempt. The unsent rest of a frame is kept
between attempts here. The connection's class is swapped for one whose blocking calls refuse.
"""

from __future__ import annotations

import os
import socket
import struct
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, NoReturn

from .._poll import wait_beside
from ._closing import closed_error
from ._fds import close_all, rights, truncated
from ._platform import MSG_NOSIGNAL, wait_fd
from ._reader import HDR, NO_FDS, WOULDBLOCK

if TYPE_CHECKING:
    from typing_extensions import Buffer

    from ..aio._ready import Readiness

__all__ = ["SENT_ALL", "SENT_NOTHING", "SENT_PART", "AsyncEntry", "refuse_blocking"]

SENT_NOTHING, SENT_PART, SENT_ALL = 0, 1, 2
#: Payloads up to this size go with their header in one piece.
_SMALL = 64 * 1024
_LONG = 0x7FFFFFFF
_HDR_LONG = struct.Struct("!iQ")
_HAS_SENDMSG = hasattr(socket.socket, "sendmsg")
#: Once a frame has started, how long one call waits for its next piece (for room to send it,
#: or for it to arrive) before going back to the event loop, and how long it waits in all: as
#: ``FLOWING`` and ``FLOWING_BUDGET`` in ``src/py/aio/mod.rs``. Python's ``poll`` counts whole
#: milliseconds, so a wait here lasts up to 1 ms.
FLOWING = 0.00025
FLOWING_BUDGET = 0.001

#: The blocking calls that refuse while ``fastipc.aio`` holds the connection (as the
#: extension's do).
BLOCKING_CALLS = (
    "send_bytes",
    "recv_bytes",
    "recv_bytes_and_fds",
    "recv_bytes_into",
    "send",
    "recv",
    "send_fds",
    "recv_fds",
    "sendall",
    "recv_into",
    "recv_exact",
    "poll",
    "settimeout",
    "gettimeout",
    "shutdown",
)


def wrapped_error(address: str) -> RuntimeError:
    return RuntimeError(
        f"the connection to {address} is in use by fastipc.aio.Connection: its blocking "
        "calls refuse until detach() gives it back"
    )


def _refusing(name: str) -> Any:
    def refuse(self: Any, *args: object, **kwargs: object) -> NoReturn:
        raise wrapped_error(self._address)

    refuse.__name__ = name
    return refuse


def refuse_blocking(cls: type) -> type:
    """A subclass of ``cls`` (same layout) whose blocking calls refuse."""
    namespace: dict[str, object] = {
        "__slots__": (),
        "__module__": cls.__module__,
        "__qualname__": cls.__qualname__,
    }
    namespace.update({name: _refusing(name) for name in BLOCKING_CALLS})
    return type(cls.__name__, (cls,), namespace)


class AsyncEntry:
    """The ``_aio_*`` methods, mixed into ``Connection`` (which holds ``_aio_tx`` and
    ``_aio_saved`` in its slots)."""

    if not TYPE_CHECKING:
        # The attributes are the subclass's slots (two bases with slots cannot be combined).
        __slots__ = ()

    _sock: socket.socket
    _address: str
    _closed: bool
    _seq: bool
    _unix: bool
    _timeout: float | None
    _aio_tx: list[memoryview] | None
    _aio_saved: float | None
    _aio_plain: type | None
    _pending: tuple[bytearray, int, int] | None

    if TYPE_CHECKING:

        def _recv_message(self, maxlength: int | None) -> bytes | bytearray: ...
        def _take_fds(self) -> list[int]: ...
        def _send_error(self, e: OSError) -> Exception: ...
        def _fd_args(self, fds: Iterable[object] | None) -> list[int]: ...

    def _aio_wrap(self, on: bool) -> None:
        if self._closed:
            raise closed_error(self._address)
        plain = type(self)
        if on:
            if self._aio_plain is not None:
                raise RuntimeError("the connection is already in use by a fastipc.aio.Connection")
            from ._conn import WRAPPED

            self._aio_saved, self._timeout = self._timeout, 0.0
            self._sock.setblocking(False)
            self._aio_plain = plain
            self.__class__ = WRAPPED
            return
        if self._aio_plain is None:
            return
        if self._aio_tx is not None:
            raise RuntimeError("a frame is still being sent: await its send before detach()")
        self._timeout = self._aio_saved
        self._sock.setblocking(self._timeout is None)
        self.__class__ = self._aio_plain
        self._aio_plain = None

    def _aio_try_send(
        self,
        buf: Buffer,
        offset: int = 0,
        size: int | None = None,
        fds: Iterable[object] | None = None,
    ) -> int:
        from ._conn import _payload

        fdl = self._fd_args(fds) if fds is not None else NO_FDS
        payload = _payload(buf, offset, size)
        if self._closed:
            raise closed_error(self._address)
        if self._aio_tx is not None:
            raise RuntimeError("the previous frame is still being sent")
        parts = self._frame(payload, bool(fdl))
        try:
            sent = self._send_parts(parts, fdl)
        except WOULDBLOCK:
            return SENT_NOTHING
        except OSError as e:
            raise self._send_error(e) from None
        rest = _advance(parts, sent)
        if not rest:
            return SENT_ALL
        if sent == 0:
            return SENT_NOTHING
        self._aio_tx = rest
        return SENT_ALL if self._push() else SENT_PART

    def _frame(self, payload: memoryview, with_fds: bool) -> list[memoryview]:
        if self._seq:
            return [payload]
        size = len(payload)
        head = _HDR_LONG.pack(-1, size) if size >= _LONG else HDR.pack(size)
        if size <= _SMALL and not with_fds:
            return [memoryview(head + payload)]
        return [memoryview(head), payload]

    def _send_parts(self, parts: list[memoryview], fdl: list[int]) -> int:
        sock = self._sock
        if fdl:
            return sock.sendmsg(parts, rights(fdl), MSG_NOSIGNAL)
        if len(parts) == 1 or not _HAS_SENDMSG:
            return sock.send(parts[0], MSG_NOSIGNAL)
        return sock.sendmsg(parts, [], MSG_NOSIGNAL)

    def _aio_send_more(self) -> bool:
        parts = self._aio_tx
        if parts is None:
            return True
        if self._closed:
            self._aio_tx = None
            raise closed_error(self._address)
        return self._push()

    def _push(self) -> bool:
        """Sends more of the frame part way out while the peer takes it (see :func:`_flowing`);
        whether it is all out."""
        start: float | None = None
        while (parts := self._aio_tx) is not None:
            try:
                sent = self._send_parts(parts, NO_FDS)
            except WOULDBLOCK:
                sent = 0
            except OSError as e:
                self._aio_tx = None
                raise self._send_error(e) from None
            self._aio_tx = _advance(parts, sent) or None
            if self._aio_tx is None:
                break
            if start is None:
                start = time.monotonic()
            if not _flowing(self._sock.fileno(), True, start, sent > 0):
                return False
        return True

    def _aio_try_recv(
        self,
        maxlength: int | None = None,
        maxfds: int | None = None,
        readable: Readiness | None = None,
    ) -> bytes | tuple[bytes, list[int]] | None:
        if maxlength is not None and maxlength < 0:
            raise ValueError("negative maxlength")
        if maxfds is not None and maxfds < 0:
            raise OverflowError("can't convert negative int to unsigned")
        if self._closed:
            raise closed_error(self._address)
        loop_fd, idle_for = (readable.idle() if readable is not None else ()) or (-1, 0.0)
        msg = self._recv_idle(maxlength, loop_fd, idle_for)
        if msg is None:
            return None
        fds = self._take_fds()
        data = msg if type(msg) is bytes else bytes(msg)
        if maxfds is None:
            close_all(fds)
            return data
        if len(fds) > maxfds:
            close_all(fds)
            raise truncated(f"{self._address}: {len(fds)} descriptors, maxfds={maxfds}")
        return data, fds

    def _recv_idle(
        self, maxlength: int | None, loop_fd: int, idle_for: float
    ) -> bytes | bytearray | None:
        """A whole message, or None. With ``loop_fd`` (an idle event loop's own descriptor), a
        message not there yet is waited for beside it, up to ``idle_for`` seconds (as
        ``AioState::try_recv`` in ``src/py/aio/mod.rs``)."""
        if loop_fd < 0:
            return self._recv_flowing(maxlength)
        until = time.monotonic() + idle_for
        fd = self._sock.fileno()
        while True:
            if not wait_beside(fd, loop_fd, until - time.monotonic()):
                return self._recv_flowing(maxlength)
            msg = self._recv_flowing(maxlength)
            if msg is not None:
                return msg

    def _recv_flowing(self, maxlength: int | None) -> bytes | bytearray | None:
        """A whole message, or None. A large message part way in is read on while it keeps
        arriving (see :func:`_flowing`); what arrived stays for the next call."""
        start: float | None = None
        while True:
            before = self._pending[1] if self._pending is not None else 0
            try:
                return self._recv_message(maxlength)
            except TimeoutError:
                if self._pending is None:
                    return None
            if start is None:
                start = time.monotonic()
            if not _flowing(self._sock.fileno(), False, start, self._pending[1] > before):
                return None


def _flowing(fd: int, write: bool, start: float, progressed: bool) -> bool:
    """Whether to try again, within :data:`FLOWING_BUDGET` of ``start``: after an attempt that
    ``progressed``, at once (having offered the CPU to the peer, which on the same CPU is what
    moves the data on); after one that did not, once ``fd`` is ready, waited for up to
    :data:`FLOWING`."""
    left = FLOWING_BUDGET - (time.monotonic() - start)
    if left <= 0:
        return False
    if progressed:
        if hasattr(os, "sched_yield"):
            os.sched_yield()
        return True
    try:
        return wait_fd(fd, write, min(left, FLOWING))
    except OSError:
        return False  # the next attempt reports it


def _advance(parts: list[memoryview], sent: int) -> list[memoryview]:
    """What is left of ``parts`` after ``sent`` bytes went."""
    rest: list[memoryview] = []
    for part in parts:
        n = len(part)
        if sent >= n:
            sent -= n
            continue
        rest.append(part[sent:])
        sent = 0
    return rest
