"""``Queue`` and ``JoinableQueue`` of the fallback: ``multiprocessing.Queue`` in shared memory,
without a feeder thread, on one byte ring (``_ring.py``) shared by every producer and consumer.

``docs/channel-fallback.md`` describes the segment, the locks and the waits; the behaviour is
the extension's (``docs/channel.md``).
"""

from __future__ import annotations

import queue
import time
from collections.abc import Iterable
from typing import Any, Self

from . import _transfer
from ._ring import KIND_QUEUE, REC, WORD_DATA, WORD_SPACE, Segment, State
from ._ringhandle import (
    RingHandle,
    check_capacity,
    check_mode,
    deadline,
    dup_for_child,
    from_child,
)
from ._ringops import Expired, Port
from ._views import MessageView, Reservation

__all__ = ["JoinableQueue", "Queue"]


class Queue(RingHandle):
    """``multiprocessing.Queue`` in shared memory: many producers and many consumers across
    processes. ``maxsize`` counts items (0: only the ring's ``capacity`` in bytes limits it)."""

    _port: Port

    def __init__(
        self,
        maxsize: int = 0,
        *,
        capacity: int = 1 << 20,
        name: str | None = None,
        mode: int = 0o600,
    ) -> None:
        if isinstance(maxsize, bool) or not isinstance(maxsize, int):
            raise TypeError(f"maxsize must be an int, not {type(maxsize).__name__}")
        if not 0 <= maxsize < 1 << 62:
            raise ValueError(f"maxsize must be 0 (no limit) or a positive count, not {maxsize}")
        cap = check_capacity(capacity)
        seg = Segment.create(KIND_QUEUE, 1, cap, maxsize=maxsize, name=name, mode=check_mode(mode))
        self._setup(seg)

    def _setup(self, seg: Segment) -> None:
        self._attach(seg)
        self._port = Port(seg.ring(0), self._locks, self)

    @classmethod
    def open(cls, name: str) -> Self:
        """Open the named queue another process created (``FileNotFoundError`` if missing;
        ``IPCError`` if the segment is not a queue of this backend's layout)."""
        self = cls.__new__(cls)
        self._setup(Segment.open(name, KIND_QUEUE))
        return self

    @property
    def maxsize(self) -> int:
        return self._seg.maxsize

    # -- putting -------------------------------------------------------------------------------
    def put(self, obj: object, block: bool = True, timeout: float | None = None) -> None:
        at = deadline(block, timeout)
        self._check_open()
        try:
            _transfer.put_object(self._port, obj, self._seg.maxsize, at)
        except Expired:
            raise queue.Full from None

    def put_nowait(self, obj: object) -> None:
        self.put(obj, False)

    def put_bytes(self, buf: Any, block: bool = True, timeout: float | None = None) -> None:
        """One message of the bytes of ``buf`` (any buffer), no pickling."""
        at = deadline(block, timeout)
        self._check_open()
        try:
            _transfer.put_bytes(self._port, buf, self._seg.maxsize, at)
        except Expired:
            raise queue.Full from None

    def put_many(
        self, items: Iterable[object], block: bool = True, timeout: float | None = None
    ) -> int:
        """Put every item in order; ``queue.Full(n)`` says how many went in."""
        at = deadline(block, timeout)
        self._check_open()
        done = 0
        for item in items:
            try:
                _transfer.put_object(self._port, item, self._seg.maxsize, at)
            except Expired:
                raise queue.Full(done) from None
            done += 1
        return done

    def reserve(self, n: int, block: bool = True, timeout: float | None = None) -> Reservation:
        at = deadline(block, timeout)
        self._check_open()
        try:
            return _transfer.reserve(self, self._port, n, self._seg.maxsize, at)
        except Expired:
            raise queue.Full from None

    # -- getting -------------------------------------------------------------------------------
    def get(self, block: bool = True, timeout: float | None = None) -> Any:
        at = deadline(block, timeout)
        self._check_open()
        try:
            msg = _transfer.take_message(self._port, at)
        except Expired:
            raise queue.Empty from None
        return msg.load()

    def get_nowait(self) -> Any:
        return self.get(False)

    def get_bytes(self, block: bool = True, timeout: float | None = None) -> bytes:
        at = deadline(block, timeout)
        self._check_open()
        try:
            return _transfer.take_bytes(self._port, at)
        except Expired:
            raise queue.Empty from None

    def get_bytes_into(self, buffer: Any, block: bool = True, timeout: float | None = None) -> int:
        """Copy the next message into ``buffer``; its length. ``BufferTooShort`` (the message
        consumed, ``args[0]`` its bytes) if it does not fit."""
        at = deadline(block, timeout)
        self._check_open()
        try:
            return _transfer.take_into(self._port, buffer, 0, at)
        except Expired:
            raise queue.Empty from None

    def get_many(self, max_items: int, timeout: float | None = None) -> list[Any]:
        """Wait (up to ``timeout``) for one item, then take what is there, up to ``max_items``."""
        if isinstance(max_items, bool) or not isinstance(max_items, int):
            raise TypeError(f"max_items must be an int, not {type(max_items).__name__}")
        if max_items < 1:
            raise ValueError(f"max_items must be at least 1, not {max_items}")
        at = deadline(True, timeout)
        self._check_open()
        try:
            msgs = [_transfer.take_message(self._port, at)]
        except Expired:
            raise queue.Empty from None
        now = time.monotonic()
        while len(msgs) < max_items:
            try:
                msgs.append(_transfer.take_message(self._port, now))
            except Expired:
                break
        return [m.load() for m in msgs]

    def get_view(self, block: bool = True, timeout: float | None = None) -> MessageView:
        at = deadline(block, timeout)
        self._check_open()
        try:
            return _transfer.hold(self, self._port, at)
        except Expired:
            raise queue.Empty from None

    # -- state ---------------------------------------------------------------------------------
    def qsize(self) -> int:
        self._check_open()
        return self._port.state().count

    def empty(self) -> bool:
        return self.qsize() == 0

    def full(self) -> bool:
        self._check_open()
        return not self._has_room(self._port.state())

    def _has_room(self, st: State) -> bool:
        maxsize = self._seg.maxsize
        if 0 < maxsize <= st.count:
            return False
        free = self._seg.capacity - (st.tail - st.head)
        return free >= REC.size or st.head == st.tail

    def fileno(self) -> int:
        """A descriptor readable while a message waits (a helper thread keeps it so)."""
        probe = self._probe_of(self._port, lambda st: st.count > 0, WORD_SPACE, WORD_DATA)
        return self._readiness("data", probe)

    def space_fileno(self) -> int:
        """A descriptor readable while there is room for a put."""
        probe = self._probe_of(self._port, self._has_room, WORD_DATA, WORD_SPACE)
        return self._readiness("space", probe)

    def join_thread(self) -> None:
        """Nothing to join (no feeder thread)."""

    def cancel_join_thread(self) -> None:
        """Nothing to cancel (no feeder thread)."""

    # -- pickling ------------------------------------------------------------------------------
    def __reduce__(self) -> tuple[Any, ...]:
        self._check_open()
        dup = dup_for_child(self._seg.fd)
        if dup is not None:
            return (_rebuild, (type(self), dup, self._seg.name))
        if self._seg.name is None:
            raise TypeError(
                "an anonymous fastipc.Queue travels only into a multiprocessing.Process (as an "
                "argument) or by fork: its memory cannot be pickled into bytes"
            )
        return (_reopen, (type(self), self._seg.name))

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"capacity={self._seg.capacity}"
        label = self._seg.name or "anonymous"
        return f"<fastipc.{type(self).__name__} {label} maxsize={self._seg.maxsize} {state}>"


class JoinableQueue(Queue):
    """``multiprocessing.JoinableQueue``: the count of unfinished tasks lives in the segment."""

    def task_done(self) -> None:
        """``ValueError`` if called more times than there were items put."""
        self._check_open()
        self._port.task_done()

    def join(self, timeout: float | None = None) -> bool:
        """Wait until every item put was marked done: True; False if ``timeout`` passed."""
        at = deadline(True, timeout)
        self._check_open()
        return self._port.join(at)


def _rebuild(cls: type[Queue], dup: Any, name: str | None) -> Queue:
    self = cls.__new__(cls)
    self._setup(Segment.adopt(from_child(dup), name, KIND_QUEUE))
    return self


def _reopen(cls: type[Queue], name: str) -> Queue:
    return cls.open(name)
