"""``Channel`` and ``channel()`` of the fallback: a duplex pair of byte rings in one segment,
with the ``Connection`` API, the shared-memory counterpart of ``multiprocessing.Pipe()``.

End 0 sends on ring 0 and receives on ring 1; end 1 the other way round. Each end holds an
open-file-description lock on a byte of its own (64 + end) through the descriptor it maps, for
its lifetime: the kernel drops it when the last process holding that end closes it or dies (even
by SIGKILL), which is how the other end tells "closed" apart from "quiet" (it looks at every
wait slice, so within 50 ms) and why a second ``open`` of a named channel is refused.
"""

from __future__ import annotations

import errno
import os
from typing import Any, ClassVar, NoReturn, Self

from . import _transfer
from ._ring import KIND_CHANNEL, REC, WORD_DATA, WORD_SPACE, Segment, State
from ._ringhandle import (
    RingHandle,
    check_capacity,
    check_mode,
    dup_for_child,
    from_child,
)
from ._ringops import Expired, Port, as_bytes_view
from ._ringsync import held_elsewhere_fd, try_lock_fd
from ._views import MessageView, Reservation
from ._waits import check_timeout, deadline_of, timed_out

__all__ = ["Channel", "channel"]

_ALIVE = (64, 65)


class Channel(RingHandle):
    """One end of a duplex pair of rings in shared memory with the ``Connection`` API. When the
    other end is closed or its process dies, a receive raises ``EOFError`` once the messages
    already in the ring are read, and a send raises ``BrokenPipeError``."""

    DEFAULT_CAPACITY: ClassVar[int] = 1 << 20

    _tx: Port
    _rx: Port
    _end: int
    _timeout: float | None

    def __init__(self, *args: object, **kwargs: object) -> None:
        raise TypeError(
            "channel ends come from fastipc.channel(), Channel.create() or Channel.open()"
        )

    @classmethod
    def _make(cls, seg: Segment, end: int) -> Self:
        self = cls.__new__(cls)
        self._attach(seg)
        self._end = end
        self._tx = Port(seg.ring(end), self._locks, self)
        self._rx = Port(seg.ring(1 - end), self._locks, self)
        self._timeout = None
        return self

    @classmethod
    def create(cls, name: str, *, capacity: int = 1 << 20, mode: int = 0o600) -> Self:
        """A named channel; this is its first end (the other is :meth:`open`'s)."""
        cap = check_capacity(capacity)
        seg = Segment.create(KIND_CHANNEL, 2, cap, maxsize=0, name=name, mode=check_mode(mode))
        try:
            if not try_lock_fd(seg.fd, _ALIVE[0]):  # pragma: no cover - a new segment
                raise FileExistsError(errno.EEXIST, "the channel's first end is taken", name)
        except BaseException:
            seg.close()
            raise
        return cls._make(seg, 0)

    @classmethod
    def open(cls, name: str) -> Self:
        """The second end of the named channel another process created. ``FileExistsError`` while
        an earlier opener's end lives (one opener at a time)."""
        seg = Segment.open(name, KIND_CHANNEL)
        try:
            if not try_lock_fd(seg.fd, _ALIVE[1]):
                raise FileExistsError(
                    errno.EEXIST,
                    "the channel is already open at its second end (one opener at a time)",
                    seg.name,
                )
        except BaseException:
            seg.close()
            raise
        return cls._make(seg, 1)

    # -- the other end -------------------------------------------------------------------------
    def _peer_alive(self) -> bool:
        return held_elsewhere_fd(self._seg.fd, _ALIVE[1 - self._end])

    def _before_sleep(self, word: int) -> None:
        if self._peer_alive():
            return
        if word == WORD_DATA and self._rx.state().count == 0:
            raise EOFError("the other end of the channel is closed")
        if word == WORD_SPACE:
            self._broken()

    def _broken(self) -> NoReturn:
        raise BrokenPipeError(errno.EPIPE, "the other end of the channel is closed", self._seg.what)

    def _check_send(self) -> float | None:
        self._check_open()
        if not self._peer_alive():
            self._broken()
        return deadline_of(self._timeout)

    def _expired(self) -> TimeoutError:
        return timed_out(self._seg.what)

    # -- timeouts ------------------------------------------------------------------------------
    def settimeout(self, timeout: float | None) -> None:
        """The timeout of ``send*``/``recv*`` (None: wait forever); ``TimeoutError`` at it."""
        self._timeout = check_timeout(timeout)

    def gettimeout(self) -> float | None:
        return self._timeout

    # -- sending -------------------------------------------------------------------------------
    def send_bytes(self, buf: Any, offset: int = 0, size: int | None = None) -> None:
        view = as_bytes_view(buf)
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
        at = self._check_send()
        try:
            _transfer.put_bytes(self._tx, view[offset : offset + size], 0, at)
        except Expired:
            raise self._expired() from None

    def send(self, obj: object) -> None:
        at = self._check_send()
        try:
            _transfer.put_object(self._tx, obj, 0, at)
        except Expired:
            raise self._expired() from None

    def reserve(self, n: int, timeout: float | None = None) -> Reservation:
        self._check_send()
        try:
            return _transfer.reserve(self, self._tx, n, 0, deadline_of(timeout))
        except Expired:
            raise self._expired() from None

    # -- receiving -----------------------------------------------------------------------------
    def recv_bytes(self, maxlength: int | None = None) -> bytes:
        if maxlength is not None and maxlength < 0:
            raise ValueError("negative maxlength")
        self._check_open()
        try:
            return _transfer.take_bytes(self._rx, deadline_of(self._timeout), maxlength)
        except Expired:
            raise self._expired() from None

    def recv_bytes_into(self, buf: Any, offset: int = 0) -> int:
        if offset < 0:
            raise ValueError("negative offset")
        if offset > len(memoryview(buf).cast("B")):
            raise ValueError("offset too large")
        self._check_open()
        try:
            return _transfer.take_into(self._rx, buf, offset, deadline_of(self._timeout))
        except Expired:
            raise self._expired() from None

    def recv(self) -> Any:
        self._check_open()
        try:
            msg = _transfer.take_message(self._rx, deadline_of(self._timeout))
        except Expired:
            raise self._expired() from None
        return msg.load()

    def get_view(self, timeout: float | None = None) -> MessageView:
        self._check_open()
        try:
            return _transfer.hold(self, self._rx, deadline_of(timeout))
        except Expired:
            raise self._expired() from None

    def poll(self, timeout: float | None = 0.0) -> bool:
        """Whether a message (or the end of the stream) can be received, waiting up to
        ``timeout`` seconds (None: until then)."""
        at = deadline_of(timeout)
        self._check_open()
        try:
            return self._rx.wait_readable(at)
        except EOFError:
            return True

    # -- readiness -----------------------------------------------------------------------------
    def fileno(self) -> int:
        """Readable when a message (or the end of the stream) may be waiting."""

        def test(st: State) -> bool:
            return st.count > 0 or not self._peer_alive()

        return self._readiness("data", self._probe_of(self._rx, test, WORD_SPACE, WORD_DATA))

    def space_fileno(self) -> int:
        """Readable when a send may find room (or would fail at once: the other end is gone)."""

        def test(st: State) -> bool:
            free = self._seg.capacity - (st.tail - st.head)
            return free >= REC.size or st.head == st.tail or not self._peer_alive()

        return self._readiness("space", self._probe_of(self._tx, test, WORD_DATA, WORD_SPACE))

    # -- pickling ------------------------------------------------------------------------------
    def __reduce__(self) -> tuple[Any, ...]:
        self._check_open()
        dup = dup_for_child(self._seg.fd)
        if dup is None:
            raise TypeError(
                "a fastipc.Channel end travels only into a multiprocessing.Process (as an "
                "argument) or by fork, as sockets do"
            )
        return (_rebuild, (type(self), dup, self._seg.name, self._end))

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"capacity={self._seg.capacity}"
        return f"<fastipc.Channel {self._seg.name or 'anonymous'} end={self._end} {state}>"


def _rebuild(cls: type[Channel], dup: Any, name: str | None, end: int) -> Channel:
    seg = Segment.adopt(from_child(dup), name, KIND_CHANNEL)
    # the descriptor shares the sender's open file description, and with it the end's lock
    try_lock_fd(seg.fd, _ALIVE[end])
    return Channel._make(seg, end)


def channel(capacity: int = 1 << 20) -> tuple[Channel, Channel]:
    """A connected pair of :class:`Channel` ends over an anonymous (sealed memfd) segment."""
    cap = check_capacity(capacity)
    seg = Segment.create(KIND_CHANNEL, 2, cap, maxsize=0, name=None, mode=0o600)
    try:
        other = Segment.adopt(os.open(seg.lock_path, os.O_RDWR | os.O_CLOEXEC), None, KIND_CHANNEL)
    except BaseException:
        seg.close()
        raise
    try_lock_fd(seg.fd, _ALIVE[0])
    try_lock_fd(other.fd, _ALIVE[1])
    return Channel._make(seg, 0), Channel._make(other, 1)
