"""Waiting for a descriptor to be ready on the running event loop, without a thread.

A :class:`Readiness` registers its descriptor with the loop (``add_reader`` or ``add_writer``)
the first time a task waits, and keeps the registration while tasks keep waiting: a stream of
receives costs one ``epoll_ctl`` rather than two per message. The registration is dropped the
first time the descriptor becomes ready with no task waiting (or by :meth:`Readiness.close`).

On asyncio's own (selector) loops the first report after a wake-up may be stale: the loop
polls again before the woken task runs, so it reports the data that task is about to take,
and the report reaches the callback after the task has taken it (and is perhaps waiting
again). That report is checked with one ``poll`` of the descriptor, which costs far less than
the loop iteration a spurious wake-up would (the task's step, its non-blocking call, its wait
again). uvloop runs the woken task before it polls again: nothing to check there.

A task about to wait on a loop that has nothing else to do may wait in the loop's stead
(:meth:`Readiness.idle`): for its descriptor and the loop's own epoll (or kqueue) descriptor
together, in one call with the GIL released, until the loop's next timer and at most
:data:`IDLE_MAX`. Its data coming first, the task goes on without the loop's two passes (the
wake-up, then the task's step); anything else the loop watches becoming ready (another
descriptor, a signal, a thread's ``call_soon_threadsafe``) gives the wait back to the loop at
once. This needs the loop's internals (its ready queue and timers), so it is done on asyncio's
own selector loops only; elsewhere (uvloop) tasks wait in the loop.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import os
import select
import selectors
from collections.abc import Callable, Iterable
from threading import get_ident
from typing import Any, TypeVar

from .._poll import wait_beside

T = TypeVar("T")

__all__ = [
    "IDLE_MAX",
    "WOULD_WAIT",
    "Readiness",
    "Turns",
    "attempt",
    "retry_after",
    "wait_idle",
]

#: The longest a task waits in an idle loop's stead (:meth:`Readiness.idle`) before it waits in
#: the loop: under asyncio's slow-callback threshold (0.1 s, in debug mode).
IDLE_MAX = 0.05
#: The selectors whose descriptor is readable while any descriptor they watch is ready.
_POLLABLE_SELECTORS = tuple(
    getattr(selectors, name)
    for name in ("EpollSelector", "KqueueSelector", "DevpollSelector")
    if hasattr(selectors, name)
)
_NOT_IDLE: tuple[()] = ()
_yield_cpu: Callable[[], None] = getattr(os, "sched_yield", lambda: None)


class Readiness:
    """Readiness of one descriptor in one direction (``write``: writable, else readable)."""

    __slots__ = (
        "_fd",
        "_future",
        "_idle_fd",
        "_idle_loop",
        "_loop",
        "_poll",
        "_stale",
        "_woke",
        "_write",
    )

    def __init__(self, fd: int, *, write: bool) -> None:
        self._fd = fd
        self._write = write
        self._loop: asyncio.AbstractEventLoop | None = None
        self._future: asyncio.Future[None] | None = None
        # Whether the last report woke a task on a loop where the next one may be stale.
        self._woke = False
        self._stale = False
        self._poll: select.poll | None = None
        # The loop last asked about in idle() and its descriptor (-1: it has none to wait on).
        self._idle_loop: asyncio.AbstractEventLoop | None = None
        self._idle_fd = -1

    def idle(self) -> tuple[int, float] | tuple[()]:
        """``(loop_fd, seconds)`` if the running loop has nothing else to do: the task may wait
        for this descriptor in the loop's stead, beside ``loop_fd``, for up to ``seconds``
        (see the module's text); else ``()``. The loop stops watching this descriptor (it
        would make ``loop_fd`` readable for the task's own data)."""
        loop: Any = self._idle_loop
        fd = self._idle_fd
        # The loop asked about last time, if it is running in this thread, is the running loop
        # (a thread runs one loop at a time). Asking asyncio costs a system call (getpid, in
        # get_running_loop) that, after a large copy, is a good part of a small message's time.
        if loop is None or (fd >= 0 and loop._thread_id != get_ident()):
            loop = self._idle_loop = asyncio.get_running_loop()
            fd = self._idle_fd = _loop_fd(loop)
        if fd < 0 or loop._stopping or (loop._ready and not self._only_mine(loop._ready)):
            return _NOT_IDLE
        seconds = IDLE_MAX
        if loop._scheduled:
            seconds = min(seconds, loop._scheduled[0]._when - loop.time())
            if seconds <= 0:
                return _NOT_IDLE
        if self._loop is not None:
            self.close()
        return fd, seconds

    def _only_mine(self, handles: Iterable[Any]) -> bool:
        """Whether the loop's ready callbacks are all cancelled or this descriptor's own report
        (stale, or about to be dropped)."""
        mine = self._ready
        return all(handle._cancelled or handle._callback == mine for handle in handles)

    def wait(self) -> asyncio.Future[None]:
        """A future done once the descriptor may be ready (spurious wake-ups are allowed: the
        caller tries its non-blocking call again); one task waits at a time. Cancellation
        leaves nothing behind. (A future rather than a coroutine: no frame of its own.)"""
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            if loop is not self._idle_loop:
                self._idle_loop = None  # idle() asks again
            self.close()
            if self._write:
                loop.add_writer(self._fd, self._ready)
            else:
                loop.add_reader(self._fd, self._ready)
            self._loop = loop
            self._stale = isinstance(loop, asyncio.selector_events.BaseSelectorEventLoop)
        future: asyncio.Future[None] = loop.create_future()
        self._future = future
        return future

    def _ready(self) -> None:
        if self._woke:
            self._woke = False
            if not self._still_ready():
                # Stale: the task woken by the last report took what it was about.
                return
        future = self._future
        if future is None or future.done():
            # Ready with nobody waiting (woken already, or cancelled): stop watching until
            # someone waits again.
            self._future = None
            self.close()
        else:
            self._woke = self._stale
            future.set_result(None)

    def _still_ready(self) -> bool:
        poll = self._poll
        if poll is None:
            poll = self._poll = select.poll()
            poll.register(self._fd, select.POLLOUT if self._write else select.POLLIN)
        try:
            return bool(poll.poll(0))
        except OSError:
            return True  # let the task's own call see the error

    def close(self) -> None:
        """Stops watching the descriptor (before it is closed); a task waiting is woken, to
        find the object closed when it tries again. Idempotent."""
        future = self._future
        if future is not None and not future.done() and not future.get_loop().is_closed():
            future.set_result(None)
        self._woke = False
        loop, self._loop = self._loop, None
        if loop is None or loop.is_closed():
            return
        with contextlib.suppress(ValueError, OSError, RuntimeError):
            if self._write:
                loop.remove_writer(self._fd)
            else:
                loop.remove_reader(self._fd)


def _loop_fd(loop: asyncio.AbstractEventLoop) -> int:
    """The descriptor of an asyncio selector loop's selector, readable while anything the loop
    watches is ready; -1 for other loops (uvloop) and selectors without one."""
    if not isinstance(loop, asyncio.selector_events.BaseSelectorEventLoop):
        return -1
    if not all(hasattr(loop, a) for a in ("_ready", "_scheduled", "_stopping", "_thread_id")):
        return -1
    selector = getattr(loop, "_selector", None)
    if not isinstance(selector, _POLLABLE_SELECTORS):
        return -1
    try:
        fd: int = selector.fileno()
    except (AttributeError, OSError, ValueError):
        return -1
    return fd


class Turns:
    """Tasks taking turns, first come first served: an ``asyncio.Lock`` that costs nothing
    (no coroutine, no future) when nobody else wants a turn."""

    __slots__ = ("_waiting", "busy")

    def __init__(self) -> None:
        #: Whether a task has the turn (or one is handed over to a waiting task).
        self.busy = False
        self._waiting: collections.deque[asyncio.Future[None]] | None = None

    def take(self) -> bool:
        """Takes the turn now if nobody has it or waits for it (then :meth:`done` must
        follow)."""
        if self.busy:
            return False
        self.busy = True
        return True

    async def wait(self) -> None:
        """Waits for the turn (then :meth:`done` must follow). Cancelled while waiting, the
        task has no turn (one handed to it meanwhile goes on to the next)."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self._waiting is None:
            self._waiting = collections.deque()
        self._waiting.append(future)
        try:
            await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():
                self.done()
            raise

    def done(self) -> None:
        """Ends the turn: the first task still waiting has it next."""
        waiting = self._waiting
        while waiting:  # None or empty: nobody waits
            future = waiting.popleft()
            if not future.done():
                future.set_result(None)
                return
        self.busy = False


async def retry_after(delay: float) -> None:
    """For the primitives with nothing to watch (a FIFO's writer waiting for a reader): wait
    ``delay`` seconds on the loop's timer."""
    await asyncio.sleep(delay)


#: What a call made with timeout 0 (or on a non-blocking descriptor) raises instead of waiting.
WOULD_WAIT = (TimeoutError, BlockingIOError, InterruptedError)


def wait_idle(readiness: Readiness, limit: float | None = None) -> bool:
    """For a task about to wait for ``readiness`` (a readable descriptor), on a loop with
    nothing else to do (:meth:`Readiness.idle`): waits for the descriptor in the loop's stead,
    beside the loop's own descriptor, until the loop's next timer, at most :data:`IDLE_MAX` and
    at most ``limit`` seconds. Whether it waited: the task then tries its call once more, and
    waits in the loop if that would wait again (one idle wait per step of the task). False
    (nothing waited) for a writable descriptor and on a loop that is not idle."""
    if readiness._write:
        return False
    idle = readiness.idle()
    if not idle:
        return False
    loop_fd, seconds = idle
    if limit is not None and limit < seconds:
        seconds = limit
    if seconds <= 0:
        return False
    with contextlib.suppress(OSError):  # the task's own call reports a closed descriptor
        wait_beside(readiness._fd, loop_fd, seconds)
    return True


async def attempt(
    op: Callable[[], T],
    readiness: Readiness,
    *,
    would_wait: tuple[type[BaseException], ...] = WOULD_WAIT,
    timeout: float | None = None,
    recheck: float | None = None,
    idle: bool = True,
) -> T:
    """``op()`` (a call that never waits) once it succeeds, waiting for ``readiness`` between
    attempts; ``would_wait`` are what ``op`` raises instead of waiting. Cancelled between
    attempts, nothing was done. With ``timeout``, what ``op`` raised last is raised once that
    many seconds have passed; with ``recheck``, ``op`` is tried again at least that often even
    if the descriptor says nothing (for what it cannot report, such as a peer's death). A
    readable descriptor is first waited for in an idle loop's stead (:func:`wait_idle`), once
    per step of the task, for no longer than either; ``idle=False``: never (a readable
    descriptor that reports room rather than data)."""
    deadline: float | None = None
    may_idle = idle
    while True:
        try:
            return op()
        except would_wait:
            if timeout is not None:
                now = asyncio.get_running_loop().time()
                if deadline is None:
                    deadline = now + max(0.0, timeout)
                if deadline <= now:
                    raise
        step = recheck
        if deadline is not None:
            left = deadline - asyncio.get_running_loop().time()
            step = left if step is None else min(step, left)
        if may_idle:
            may_idle = False
            if wait_idle(readiness, step):
                continue
        elif idle:
            # Waited idle, then found nothing: a queue's or channel's descriptor may say ready
            # a moment after the take that emptied the ring (its thread, woken by that take,
            # clears it). On a busy CPU the task would go round the loop until that thread
            # runs (up to a scheduler tick): it offers it the CPU first.
            _yield_cpu()
        may_idle = idle
        if step is None:
            await readiness.wait()
            continue
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(step):
                await readiness.wait()
