"""The shared-memory ``Queue``, ``JoinableQueue`` and ``Channel``, awaited.

The loop watches the objects' notification descriptors (``fileno()``: a message may be waiting;
``space_fileno()``: space may have been freed), and when one says so, one non-blocking call of
the blocking object does the work (``get_nowait``, ``put_nowait``, a receive with timeout 0). A
call that takes or puts a whole message or raises is what makes cancellation safe: a cancelled
``get`` took nothing, a cancelled ``put`` put nothing.

The descriptors are woken by the other side's activity, not by its death: a wait on the loop is
therefore cut into slices of :data:`SLICE`, after each of which the non-blocking call runs again
(and sees a channel's peer gone, or a close from elsewhere).
"""

from __future__ import annotations

import asyncio
import queue as _queue
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, Self, TypeVar

import fastipc

from ._closing import AsyncClosing
from ._ready import WOULD_WAIT, Readiness, attempt

if TYPE_CHECKING:
    from typing_extensions import Buffer

__all__ = ["Channel", "JoinableQueue", "Queue", "channel"]

T = TypeVar("T")

#: Longest wait on the loop between two attempts: the bound on how late a dead peer (which wakes
#: no descriptor) or a close by another holder is noticed.
SLICE = 0.05

#: What the non-blocking calls raise instead of waiting.
_WOULD_WAIT = (_queue.Empty, _queue.Full, *WOULD_WAIT)


async def _attempt(op: Callable[[], T], readiness: Readiness, timeout: float | None) -> T:
    """:func:`attempt` of the queue and channel calls: tried again at least every
    :data:`SLICE`; raises what ``op`` raised last once ``timeout`` seconds have passed."""
    return await attempt(op, readiness, would_wait=_WOULD_WAIT, timeout=timeout, recheck=SLICE)


async def _attempt_space(op: Callable[[], T], readiness: Readiness, timeout: float | None) -> T:
    """:func:`_attempt` of the calls that wait for room in the ring: in the loop only (the idle
    wait is for receives)."""
    return await attempt(
        op, readiness, would_wait=_WOULD_WAIT, timeout=timeout, recheck=SLICE, idle=False
    )


class _Watched(AsyncClosing):
    """The two readiness registrations of a queue or channel end, made on first wait."""

    __slots__ = ("_messages", "_space")

    def _watch(self, obj: fastipc.Queue | fastipc.Channel) -> None:
        self._messages = Readiness(obj.fileno(), write=False)
        self._space = Readiness(obj.space_fileno(), write=False)

    def _unwatch(self) -> None:
        self._messages.close()
        self._space.close()


class Queue(_Watched):
    """:class:`fastipc.Queue`, awaited: ``await q.put(obj)``, ``await q.get()``, the bytes forms,
    batches, ``get_view`` and ``reserve``, with the blocking API's arguments and errors
    (``queue.Empty`` / ``queue.Full`` when ``timeout`` passes). A cancelled call took or put
    nothing. Made like the blocking queue, or around one with :meth:`from_queue`; the blocking
    object stays usable (by other processes and threads) and is :attr:`queue`."""

    __slots__ = ("_q",)

    def __init__(
        self,
        maxsize: int = 0,
        *,
        capacity: int = 1 << 20,
        name: str | None = None,
        mode: int = 0o600,
    ) -> None:
        self._adopt(self._make(maxsize, capacity=capacity, name=name, mode=mode))

    @staticmethod
    def _make(maxsize: int, *, capacity: int, name: str | None, mode: int) -> fastipc.Queue:
        return fastipc.Queue(maxsize, capacity=capacity, name=name, mode=mode)

    def _adopt(self, q: fastipc.Queue) -> None:
        self._q = q
        self._watch(q)

    @classmethod
    def from_queue(cls, q: fastipc.Queue) -> Self:
        """Awaited calls on an existing queue (anonymous, named, or received by pickling)."""
        self = cls.__new__(cls)
        self._adopt(q)
        return self

    @classmethod
    def open(cls, name: str) -> Self:
        """The named queue another process created (:meth:`fastipc.Queue.open`)."""
        return cls.from_queue(fastipc.Queue.open(name))

    @property
    def queue(self) -> fastipc.Queue:
        """The blocking queue behind this one."""
        return self._q

    async def put(self, obj: object, timeout: float | None = None) -> None:
        await _attempt_space(lambda: self._q.put_nowait(obj), self._space, timeout)

    async def get(self, timeout: float | None = None) -> Any:
        return await _attempt(self._q.get_nowait, self._messages, timeout)

    def put_nowait(self, obj: object) -> None:
        self._q.put_nowait(obj)

    def get_nowait(self) -> Any:
        return self._q.get_nowait()

    async def put_bytes(self, buf: Buffer, timeout: float | None = None) -> None:
        await _attempt_space(lambda: self._q.put_bytes(buf, block=False), self._space, timeout)

    async def get_bytes(self, timeout: float | None = None) -> bytes:
        return await _attempt(lambda: self._q.get_bytes(block=False), self._messages, timeout)

    async def get_bytes_into(self, buffer: Buffer, timeout: float | None = None) -> int:
        return await _attempt(
            lambda: self._q.get_bytes_into(buffer, block=False), self._messages, timeout
        )

    async def put_many(self, items: Iterable[object], timeout: float | None = None) -> int:
        """Puts the items in order, each whole, waiting for space between them; returns how
        many. As the blocking ``put_many``, ``timeout`` bounds the whole call and ``queue.Full``
        says how many went in (``args[0]``). Cancelled part way, the items put so far stay put."""
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + max(0.0, timeout)
        count = 0
        for item in items:
            left = None if deadline is None else max(0.0, deadline - loop.time())
            try:
                await self.put(item, left)
            except _queue.Full:
                raise _queue.Full(count) from None
            count += 1
        return count

    async def get_many(self, max_items: int, timeout: float | None = None) -> list[Any]:
        """Waits (up to ``timeout``) for one item, then takes what is there, up to
        ``max_items``; ``queue.Empty`` if nothing came."""
        return await _attempt(
            lambda: self._q.get_many(max_items, timeout=0.0), self._messages, timeout
        )

    async def get_view(self, timeout: float | None = None) -> fastipc.MessageView:
        """The next message where it lies in the ring: use the result as the blocking
        ``get_view``'s (``with view as memory:``)."""
        return await _attempt(lambda: self._q.get_view(block=False), self._messages, timeout)

    async def reserve(self, n: int, timeout: float | None = None) -> fastipc.Reservation:
        """``n`` bytes reserved in the ring, once there is room: use the result as the blocking
        ``reserve``'s (``with reservation as memory:``)."""
        return await _attempt_space(lambda: self._q.reserve(n, block=False), self._space, timeout)

    def unlink(self) -> None:
        """Removes the name of a named queue (:meth:`fastipc.Queue.unlink`)."""
        self._q.unlink()

    def qsize(self) -> int:
        return self._q.qsize()

    def empty(self) -> bool:
        return self._q.empty()

    def full(self) -> bool:
        return self._q.full()

    def close(self) -> None:
        """Stops watching and closes the blocking queue (a task waiting here then raises
        ``OSError(EBADF)``). Idempotent."""
        self._unwatch()
        self._q.close()


class JoinableQueue(Queue):
    """:class:`fastipc.JoinableQueue`, awaited; ``await join()`` waits on the loop's timer
    (the unfinished count has no descriptor), checking every few milliseconds."""

    __slots__ = ()

    @staticmethod
    def _make(maxsize: int, *, capacity: int, name: str | None, mode: int) -> fastipc.Queue:
        return fastipc.JoinableQueue(maxsize, capacity=capacity, name=name, mode=mode)

    def task_done(self) -> None:
        q = self._q
        assert isinstance(q, fastipc.JoinableQueue)
        q.task_done()

    async def join(self, timeout: float | None = None) -> bool:
        """``True`` once every item put was marked done; ``False`` if ``timeout`` passed."""
        q = self._q
        assert isinstance(q, fastipc.JoinableQueue)
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + max(0.0, timeout)
        pause = 0.001
        while not q.join(timeout=0.0):
            left = None if deadline is None else deadline - loop.time()
            if left is not None and left <= 0:
                return False
            await asyncio.sleep(pause if left is None else min(pause, left))
            pause = min(pause * 2, SLICE)
        return True


class Channel(_Watched):
    """One end of a :func:`fastipc.channel` (or a named :class:`fastipc.Channel`), awaited: the
    ``Connection`` methods of ``fastipc.aio`` (``await send_bytes``, ``recv_bytes``,
    ``recv_bytes_into``, ``send``, ``recv``) plus ``get_view`` and ``reserve``. ``EOFError``
    once the other end is gone and the ring is drained, ``BrokenPipeError`` on a send then,
    each within :data:`SLICE` of the other end's death. The blocking end's timeout is set to 0
    while wrapped; :meth:`detach` gives it back as it was."""

    __slots__ = ("_end", "_saved_timeout")

    def __init__(self, end: fastipc.Channel) -> None:
        self._end = end
        self._saved_timeout = end.gettimeout()
        end.settimeout(0.0)
        self._watch(end)

    @classmethod
    def from_channel(cls, end: fastipc.Channel) -> Self:
        return cls(end)

    @classmethod
    def create(cls, name: str, *, capacity: int = 1 << 20, mode: int = 0o600) -> Self:
        return cls(fastipc.Channel.create(name, capacity=capacity, mode=mode))

    @classmethod
    def open(cls, name: str) -> Self:
        return cls(fastipc.Channel.open(name))

    @property
    def closed(self) -> bool:
        return self._end.closed

    async def send_bytes(
        self, buf: Buffer, offset: int = 0, size: int | None = None, *, timeout: float | None = None
    ) -> None:
        await _attempt_space(lambda: self._end.send_bytes(buf, offset, size), self._space, timeout)

    async def recv_bytes(
        self, maxlength: int | None = None, *, timeout: float | None = None
    ) -> bytes:
        return await _attempt(lambda: self._end.recv_bytes(maxlength), self._messages, timeout)

    async def recv_bytes_into(
        self, buf: Buffer, offset: int = 0, *, timeout: float | None = None
    ) -> int:
        return await _attempt(
            lambda: self._end.recv_bytes_into(buf, offset), self._messages, timeout
        )

    async def send(self, obj: object, *, timeout: float | None = None) -> None:
        await _attempt_space(lambda: self._end.send(obj), self._space, timeout)

    async def recv(self, *, timeout: float | None = None) -> Any:
        return await _attempt(self._end.recv, self._messages, timeout)

    async def get_view(self, timeout: float | None = None) -> fastipc.MessageView:
        return await _attempt(lambda: self._end.get_view(timeout=0.0), self._messages, timeout)

    async def reserve(self, n: int, timeout: float | None = None) -> fastipc.Reservation:
        return await _attempt_space(lambda: self._end.reserve(n, timeout=0.0), self._space, timeout)

    def unlink(self) -> None:
        """Removes the name of a named channel (:meth:`fastipc.Channel.unlink`)."""
        self._end.unlink()

    def detach(self) -> fastipc.Channel:
        """Stops watching and returns the blocking end, its timeout restored."""
        self._unwatch()
        if not self._end.closed:
            self._end.settimeout(self._saved_timeout)
        return self._end

    def close(self) -> None:
        """Stops watching and closes the end. Idempotent."""
        self._unwatch()
        self._end.close()


def channel(capacity: int = 1 << 20) -> tuple[Channel, Channel]:
    """Both ends of a new :func:`fastipc.channel`, awaited (hand one to another process as a
    blocking end, e.g. ``aio_end.detach()`` before pickling, or make the pair with
    :func:`fastipc.channel` and wrap the end you keep)."""
    a, b = fastipc.channel(capacity)
    return Channel(a), Channel(b)
