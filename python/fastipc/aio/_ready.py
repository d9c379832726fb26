"""Waiting for a descriptor to be ready on the running event loop, without a thread.

A :class:`Readiness` registers its descriptor with the loop (``add_reader`` or ``add_writer``)
the first time a task waits, and keeps the registration while tasks keep waiting: a stream of
receives costs one ``epoll_ctl`` rather than two per message. The registration is dropped the
first time the descriptor becomes ready with no task waiting (or by :meth:`Readiness.close`).

The loop's first report after a wake-up may be stale: the loop polls again before the woken
task runs, so it reports the data that task is about to take, and the report reaches the
callback after the task has taken it (and is perhaps waiting again). That report is checked
with one ``poll`` of the descriptor, which costs far less than the loop iteration a spurious
wake-up would (the task's step, its non-blocking call, its wait again).
"""

from __future__ import annotations

import asyncio
import contextlib
import select
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

__all__ = ["WOULD_WAIT", "Readiness", "attempt", "retry_after"]


class Readiness:
    """Readiness of one descriptor in one direction (``write``: writable, else readable)."""

    __slots__ = ("_fd", "_future", "_loop", "_poll", "_woke", "_write")

    def __init__(self, fd: int, *, write: bool) -> None:
        self._fd = fd
        self._write = write
        self._loop: asyncio.AbstractEventLoop | None = None
        self._future: asyncio.Future[None] | None = None
        # Whether the last report woke a task: the next one may be stale.
        self._woke = False
        self._poll: select.poll | None = None

    async def wait(self) -> None:
        """Returns once the descriptor may be ready (spurious wake-ups are allowed: the caller
        tries its non-blocking call again). Cancellation leaves nothing behind."""
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            self.close()
            if self._write:
                loop.add_writer(self._fd, self._ready)
            else:
                loop.add_reader(self._fd, self._ready)
            self._loop = loop
        future = loop.create_future()
        self._future = future
        try:
            await future
        finally:
            if self._future is future:
                self._future = None

    def _ready(self) -> None:
        if self._woke:
            self._woke = False
            if not self._still_ready():
                # Stale: the task woken by the last report took what it was about.
                return
        future = self._future
        if future is None:
            # Ready with nobody waiting: stop watching until someone waits again.
            self.close()
        elif not future.done():
            self._woke = True
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


async def retry_after(delay: float) -> None:
    """For the primitives with nothing to watch (a FIFO's writer waiting for a reader): wait
    ``delay`` seconds on the loop's timer."""
    await asyncio.sleep(delay)


#: What a call made with timeout 0 (or on a non-blocking descriptor) raises instead of waiting.
WOULD_WAIT = (TimeoutError, BlockingIOError, InterruptedError)


async def attempt(op: Callable[[], T], readiness: Readiness) -> T:
    """``op()`` (a call that never waits) once it succeeds, waiting for ``readiness`` between
    attempts. Cancelled between attempts, nothing was done."""
    while True:
        try:
            return op()
        except WOULD_WAIT:
            pass
        await readiness.wait()
