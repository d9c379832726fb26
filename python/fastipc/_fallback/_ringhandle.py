"""The part the fallback's ``Queue`` and ``Channel`` share: a handle on a mapped ring segment,
its locks, closing, readiness descriptors and pickling into ``multiprocessing`` processes."""

from __future__ import annotations

import contextlib
import math
from typing import Any

from . import _ringsync
from ._closing import Closing, closed_error
from ._ready import Probe, Readiness
from ._ring import Segment
from ._ringops import Port
from ._ringsync import FileLocks
from ._waits import check_timeout

__all__ = ["RingHandle", "check_capacity", "check_mode", "dup_for_child", "from_child"]


def check_capacity(capacity: int) -> int:
    """Bytes of a ring, rounded up to a multiple of 8 (at least 64)."""
    if isinstance(capacity, bool) or not isinstance(capacity, int):
        raise TypeError(f"capacity must be an int, not {type(capacity).__name__}")
    if not 0 < capacity <= 1 << 40:
        raise ValueError(f"capacity must be between 1 and 2**40 bytes, not {capacity}")
    return max(64, (capacity + 7) & ~7)


def check_mode(mode: int) -> int:
    if isinstance(mode, bool) or not isinstance(mode, int) or mode & ~0o777:
        raise ValueError(f"mode must be permission bits (0 to 0o777), not {mode!r}")
    return mode


def deadline(block: bool, timeout: float | None) -> float | None:
    """The monotonic deadline of a queue call (``block=False``: try once)."""
    import time

    if not block:
        return time.monotonic()
    timeout = check_timeout(timeout)
    return None if timeout is None or math.isinf(timeout) else time.monotonic() + timeout


class RingHandle(Closing):
    """A handle on a segment: ``_seg``, ``_locks``, the ports its subclass makes, ``closed``."""

    _seg: Segment
    _locks: FileLocks

    def _attach(self, seg: Segment) -> None:
        self._seg = seg
        self._locks = FileLocks(seg.lock_path)
        self._closed = False
        self._holds = 0
        self._ready: dict[str, Readiness] = {}
        self._ready_generation = _ringsync.fork_generation()

    # -- Owner of the ports --------------------------------------------------------------------
    def _check_open(self) -> None:
        if self._closed:
            raise closed_error(self._seg.what)

    def _before_sleep(self, word: int) -> None:
        """Queues wait for anyone; a channel end overrides this to notice a dead peer."""

    # -- properties ----------------------------------------------------------------------------
    @property
    def name(self) -> str | None:
        return self._seg.name

    @property
    def capacity(self) -> int:
        return self._seg.capacity

    @property
    def closed(self) -> bool:
        return self._closed

    # -- held views and reservations -----------------------------------------------------------
    def _held(self, done: Any) -> Any:
        """``done`` wrapped to count the views and reservations not yet given back."""
        self._holds += 1

        def wrapped(*args: Any) -> None:
            self._holds -= 1
            done(*args)

        return wrapped

    # -- readiness -----------------------------------------------------------------------------
    def _readiness(self, key: str, probe: Probe) -> int:
        self._check_open()
        if self._ready_generation != _ringsync.fork_generation():
            for ready in self._ready.values():
                ready.abandon()
            self._ready = {}
            self._ready_generation = _ringsync.fork_generation()
        found = self._ready.get(key)
        if found is None:
            found = self._ready[key] = Readiness(probe, f"{key} {self._seg.what}")
        return found.fileno()

    @staticmethod
    def _probe_of(port: Port, test: Any, when_true: int, when_false: int) -> Probe:
        """A readiness probe: ``test(state)`` under the state lock, sleeping on ``when_true``
        (what may end the condition) while it holds, else on ``when_false``."""

        def probe() -> tuple[bool, int, int] | None:
            try:
                port.acquire(port.b_state, None)
            except OSError:
                return None  # closed
            try:
                ready = bool(test(port.ring.read_state()))
                word = when_true if ready else when_false
                return ready, port.ring.address(word), port.ring.announce(word)
            finally:
                port.release(port.b_state)

        return probe

    # -- closing -------------------------------------------------------------------------------
    def close(self) -> None:
        """Release this handle (idempotent); the segment lives on while others map it.
        ``BufferError`` while one of its views or reservations is held."""
        if self._closed:
            return
        if self._holds:
            raise BufferError(
                f"cannot close {self._seg.what}: a message view or reservation is still held"
            )
        self._closed = True
        if self._ready_generation == _ringsync.fork_generation():
            for ready in self._ready.values():
                ready.close()
        else:
            for ready in self._ready.values():
                ready.abandon()
        self._ready = {}
        # the state mutexes: no thread of this process is inside the segment while it goes
        with contextlib.ExitStack() as stack:
            for ring in range(self._seg.nrings):
                stack.enter_context(self._locks.mutex(4 * ring))
            self._close_segment()

    def _close_segment(self) -> None:
        try:
            self._seg.close()
        finally:
            self._locks.close()

    def unlink(self) -> None:
        """Remove the name (named ones; ``ValueError`` for anonymous ones)."""
        self._seg.unlink()

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            if not getattr(self, "_closed", True):
                self.close()


def dup_for_child(fd: int) -> Any | None:
    """``fd`` packed for the ``multiprocessing`` process being started (None if none is)."""
    from multiprocessing import context, reduction

    if context.get_spawning_popen() is None:
        return None
    return reduction.DupFd(fd)


def from_child(dupfd: Any) -> int:
    return int(dupfd.detach())
