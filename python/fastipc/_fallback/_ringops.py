"""One handle's operations on one ring of a segment: put a record, take one, reserve space,
hold a received record in place, and the waits in between.

Three byte locks per ring (``_ringsync.FileLocks``): the producers' (held for a whole put or
reservation), the consumers' (a whole get or view) and the state's (held while the state slots
are read and written; always taken after a role lock, never across user code). Sleeping happens
with no lock held, on the ring's data or space word, announced under the state lock so the other
side knows to wake it.
"""

from __future__ import annotations

import _thread
import os
import time
from collections.abc import Callable, Iterable
from typing import Any, Protocol, TypeVar

from .._errors import IPCError
from ._ring import (
    REC_WRAP,
    WORD_DATA,
    WORD_DONE,
    WORD_SPACE,
    Ring,
    State,
    corrupt,
    record_size,
)
from ._ringsync import SLICE, FileLocks, futex_wait, futex_wake

__all__ = ["Expired", "Owner", "Port", "as_bytes_view"]

T = TypeVar("T")


#: Tries of a busy file lock with ``sched_yield`` between them before sleeping: its holder
#: needs microseconds, a ``time.sleep`` lasts 50 us or more (timer slack). Measured on the 2-core
#: VM, one-way 64 B through a Queue between two processes: 61-68k messages/s with sleeps alone,
#: 109-114k with 20 yields first (100 gave no more).
_YIELDS = 20


#: How long a call that does not wait for messages or space waits for a busy lock: a holder
#: descheduled on a loaded machine can keep it for milliseconds; one that holds a view or a
#: reservation keeps it until released, and then the call gives up.
_LOCK_GRACE = 0.1


class Expired(Exception):
    """The deadline of a ring operation passed (the caller raises its own error)."""


class Owner(Protocol):
    """What a port asks of the queue or channel end that owns it."""

    def _check_open(self) -> None:
        """Raises the closed error if the handle was closed."""

    def _before_sleep(self, word: int) -> None:
        """Called before each sleep on ``word``: raises if the wait can never end (the peer of
        a channel is gone)."""


def as_bytes_view(buf: Any) -> memoryview:
    """``buf`` (any buffer) as a 1-D view of bytes."""
    view = memoryview(buf)
    if view.format != "B" or view.ndim != 1:
        try:
            view = view.cast("B")
        except TypeError:
            view = memoryview(view.tobytes())
    return view


def _left(deadline: float | None) -> float:
    if deadline is None:
        return SLICE
    left = deadline - time.monotonic()
    if left <= 0:
        raise Expired
    return min(left, SLICE)


class Port:
    """A handle's side of ring ``ring``; ``owner`` is the queue or channel end."""

    def __init__(self, ring: Ring, locks: FileLocks, owner: Owner) -> None:
        self.ring = ring
        self.locks = locks
        self.owner = owner
        base = 4 * ring.index
        self.b_state, self.b_prod, self.b_cons = base, base + 1, base + 2

    # -- locks --------------------------------------------------------------------------------
    def acquire(self, byte: int, deadline: float | None) -> None:
        """The in-process mutex of ``byte``, then its file lock; ``Expired`` at the deadline.
        A call that does not wait for messages or space (``put_nowait``, ``get_nowait``: its
        deadline is now) still waits up to :data:`_LOCK_GRACE` for a lock held by another thread
        or process (its holder needs microseconds), as ``multiprocessing.Queue`` waits for its
        internal locks; a call with time left keeps its own deadline."""
        if deadline is not None:
            now = time.monotonic()
            if deadline <= now:
                deadline = now + _LOCK_GRACE
        mutex = self.locks.mutex(byte)
        if not mutex.acquire(False):
            while not mutex.acquire(timeout=_left(deadline)):
                self.owner._check_open()
        try:
            self.owner._check_open()
            tries, delay = 0, 20e-6
            while not self.locks.try_lock(byte):
                self.owner._check_open()
                tries += 1
                if tries <= _YIELDS:
                    _left(deadline)
                    os.sched_yield()
                    continue
                time.sleep(min(delay, _left(deadline)))
                delay = min(delay * 2, 0.001)
        except BaseException:
            mutex.release()
            raise

    def release(self, byte: int) -> None:
        try:
            self.locks.unlock(byte)
        finally:
            self.locks.mutex(byte).release()

    def _sleep(self, word: int, observed: int, deadline: float | None) -> None:
        self.owner._check_open()
        self.owner._before_sleep(word)
        futex_wait(self.ring.address(word), observed, _left(deadline))

    def wake(self, word: int) -> None:
        futex_wake(self.ring.address(word))

    def state(self) -> State:
        """The state, read under the state lock."""
        self.acquire(self.b_state, None)
        try:
            return self.ring.read_state()
        finally:
            self.release(self.b_state)

    # -- producing ----------------------------------------------------------------------------
    def put(
        self,
        parts: Iterable[Any],
        length: int,
        *,
        kind: int,
        aux: int,
        maxsize: int,
        deadline: float | None,
    ) -> None:
        """Writes one record of ``length`` bytes (``parts`` in order); ``Expired`` if there is
        no room by the deadline (nothing written)."""
        need = record_size(length)
        ring = self.ring
        while True:
            committed = wake = False
            self.acquire(self.b_prod, deadline)
            try:
                self.acquire(self.b_state, deadline)
                try:
                    st = ring.read_state()
                    skip = None if 0 < maxsize <= st.count else ring.place(st, need)
                    if skip is None:
                        observed = ring.announce(WORD_SPACE)
                    else:
                        pos = self._start(st, skip)
                        _copy(ring.payload(pos, length), parts)
                        ring.write_header(pos, length, kind, aux)
                        st.tail, st.n_put = pos + need, st.n_put + 1
                        ring.commit(st)
                        committed = True
                        wake = ring.bump(WORD_DATA)
                finally:
                    self.release(self.b_state)
            except KeyboardInterrupt:
                if not committed:
                    raise
                _thread.interrupt_main()  # in: say so after returning, never twice
            finally:
                self.release(self.b_prod)
            if committed:
                if wake:
                    self.wake(WORD_DATA)
                return
            self._sleep(WORD_SPACE, observed, deadline)

    def _start(self, st: State, skip: int) -> int:
        """The position of the record after ``skip`` bytes of wrap marker (written now)."""
        if skip:
            self.ring.write_header(st.tail, 0, REC_WRAP, 0)
        return st.tail + skip

    def reserve(
        self, n: int, maxsize: int, deadline: float | None
    ) -> tuple[memoryview, Callable[[int | None], None]]:
        """Room for a record of ``n`` bytes, kept with the producers' lock held: its writable
        payload, and ``finish(size)`` that publishes ``size`` bytes of it (None: discards)."""
        need = record_size(n)
        ring = self.ring
        self.acquire(self.b_prod, deadline)
        try:
            while True:
                self.acquire(self.b_state, deadline)
                try:
                    st = ring.read_state()
                    before = (st.head, st.tail)
                    skip = None if 0 < maxsize <= st.count else ring.place(st, need)
                    if skip is None:
                        observed = ring.announce(WORD_SPACE)
                    else:
                        restarted = (st.head, st.tail) != before
                        pos = self._start(st, skip)
                        break
                finally:
                    self.release(self.b_state)
                self._sleep(WORD_SPACE, observed, deadline)
        except BaseException:
            self.release(self.b_prod)
            raise
        view = ring.payload(pos, n)

        def finish(size: int | None) -> None:
            try:
                if size is not None:
                    self._publish(pos, size, restarted)
            finally:
                self.release(self.b_prod)

        return view, finish

    def _publish(self, pos: int, size: int, restarted: bool) -> None:
        ring = self.ring
        self.acquire(self.b_state, None)
        try:
            st = ring.read_state()
            if restarted:
                if st.head != st.tail:
                    raise corrupt(ring.what, "the ring changed under a reservation")
                st.head = pos
            ring.write_header(pos, size, 1, 0)
            st.tail, st.n_put = pos + record_size(size), st.n_put + 1
            ring.commit(st)
            wake = ring.bump(WORD_DATA)
        finally:
            self.release(self.b_state)
        if wake:
            self.wake(WORD_DATA)

    # -- consuming ----------------------------------------------------------------------------
    def take(
        self,
        deadline: float | None,
        consume: Callable[[int, int, memoryview], T],
    ) -> T:
        """Waits for a record and gives it to ``consume(kind, aux, payload)`` (which copies what
        it needs; the payload is valid only during the call), then frees its space. If
        ``consume`` raises an ``IPCError`` (a malformed payload) the record is dropped too."""
        ring = self.ring
        while True:
            committed = wake = False
            self.acquire(self.b_cons, deadline)
            try:
                self.acquire(self.b_state, deadline)
                try:
                    st = ring.read_state()
                    if st.count:
                        pos, length, kind, aux = ring.next_record(st)
                        malformed = None
                        try:
                            result = consume(kind, aux, ring.payload(pos, length))
                        except IPCError as exc:
                            malformed = exc
                        st.head, st.n_got = pos + record_size(length), st.n_got + 1
                        ring.commit(st)
                        committed = True
                        wake = ring.bump(WORD_SPACE)
                        if malformed is not None:
                            raise malformed
                    else:
                        observed = ring.announce(WORD_DATA)
                finally:
                    self.release(self.b_state)
            except KeyboardInterrupt:
                if not committed:
                    raise
                _thread.interrupt_main()  # taken: hand it over, then let Ctrl-C through
            finally:
                self.release(self.b_cons)
                if wake:
                    self.wake(WORD_SPACE)
            if committed:
                return result
            self._sleep(WORD_DATA, observed, deadline)

    def hold(self, deadline: float | None) -> tuple[int, int, memoryview, Callable[[], None]]:
        """Waits for a record and keeps it in place with the consumers' lock held: its kind,
        aux, payload, and ``done()`` that frees its space."""
        ring = self.ring
        self.acquire(self.b_cons, deadline)
        try:
            while True:
                self.acquire(self.b_state, deadline)
                try:
                    st = ring.read_state()
                    if st.count:
                        pos, length, kind, aux = ring.next_record(st)
                        break
                    observed = ring.announce(WORD_DATA)
                finally:
                    self.release(self.b_state)
                self._sleep(WORD_DATA, observed, deadline)
        except BaseException:
            self.release(self.b_cons)
            raise

        def done() -> None:
            try:
                self._consumed(pos, length)
            finally:
                self.release(self.b_cons)

        return kind, aux, ring.payload(pos, length), done

    def _consumed(self, pos: int, length: int) -> None:
        ring = self.ring
        self.acquire(self.b_state, None)
        try:
            st = ring.read_state()
            st.head, st.n_got = pos + record_size(length), st.n_got + 1
            if st.head > st.tail:
                raise corrupt(ring.what, "the ring changed under a held message")
            ring.commit(st)
            wake = ring.bump(WORD_SPACE)
        finally:
            self.release(self.b_state)
        if wake:
            self.wake(WORD_SPACE)

    def wait_readable(self, deadline: float | None) -> bool:
        """Waits until a record is there (True) or the deadline passes (False)."""
        while True:
            self.acquire(self.b_state, deadline)
            try:
                if self.ring.read_state().count:
                    return True
                observed = self.ring.announce(WORD_DATA)
            finally:
                self.release(self.b_state)
            try:
                self._sleep(WORD_DATA, observed, deadline)
            except Expired:
                return False

    # -- tasks (JoinableQueue) ----------------------------------------------------------------
    def task_done(self) -> None:
        ring = self.ring
        self.acquire(self.b_state, None)
        try:
            st = ring.read_state()
            if st.n_done >= st.n_put:
                raise ValueError("task_done() called too many times")
            st.n_done += 1
            ring.commit(st)
            wake = ring.bump(WORD_DONE)
        finally:
            self.release(self.b_state)
        if wake:
            self.wake(WORD_DONE)

    def join(self, deadline: float | None) -> bool:
        while True:
            self.acquire(self.b_state, None)
            try:
                st = self.ring.read_state()
                if st.n_done == st.n_put:
                    return True
                observed = self.ring.announce(WORD_DONE)
            finally:
                self.release(self.b_state)
            try:
                self._sleep(WORD_DONE, observed, deadline)
            except Expired:
                return False


def _copy(dest: memoryview, parts: Iterable[Any]) -> None:
    at = 0
    for part in parts:
        n = len(part)
        dest[at : at + n] = part
        at += n
