"""``MessageView`` and ``Reservation`` of the fallback: a received message where it lies, and
room reserved for one, each holding its ring's consumers' or producers' lock until released."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from types import TracebackType
from typing import final

__all__ = ["MessageView", "Reservation"]


@final
class MessageView:
    """A received message in place (zero-copy): ``with q.get_view() as view`` gives a read-only
    ``memoryview``; leaving the block releases it and gives the space back. Other consumers of
    the ring wait while a view is held."""

    __slots__ = ("_done", "_length", "_view")

    def __init__(self, view: memoryview, done: Callable[[], None]) -> None:
        self._view: memoryview | None = view.toreadonly()
        view.release()
        self._done: Callable[[], None] | None = done
        self._length = len(self._view)

    def __enter__(self) -> memoryview:
        if self._view is None:
            raise ValueError("the message view was released")
        return self._view

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()

    def release(self) -> None:
        """Give the space back now; the memoryview is released. Idempotent."""
        if self._view is not None:
            self._view.release()  # BufferError while something still exports it
            self._view = None
        done, self._done = self._done, None
        if done is not None:
            done()

    def __len__(self) -> int:
        return self._length

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.release()

    def __repr__(self) -> str:
        state = "released" if self._done is None else "held"
        return f"<fastipc.MessageView {self._length} bytes {state}>"


@final
class Reservation:
    """``n`` writable bytes reserved in the ring (zero-copy send): leaving ``with`` normally
    publishes them (or the first ``size`` after :meth:`shrink`), leaving by an exception
    discards them. Other producers wait while a reservation is held."""

    __slots__ = ("_finish", "_n", "_size", "_view")

    def __init__(self, view: memoryview, n: int, finish: Callable[[int | None], None]) -> None:
        self._view: memoryview | None = view
        self._n = self._size = n
        self._finish: Callable[[int | None], None] | None = finish

    def __enter__(self) -> memoryview:
        if self._view is None:
            raise ValueError("the reservation was committed or discarded")
        return self._view

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.commit()
        else:
            self.discard()

    def shrink(self, size: int) -> None:
        """Publish only the first ``size`` bytes (``0 <= size <= n``)."""
        if isinstance(size, bool) or not isinstance(size, int):
            raise TypeError(f"size must be an int, not {type(size).__name__}")
        if not 0 <= size <= self._n:
            raise ValueError(f"size must be between 0 and {self._n}, not {size}")
        self._size = size

    def commit(self) -> None:
        """Publish now. Idempotent."""
        self._end(self._size)

    def discard(self) -> None:
        """Drop the reservation: nothing is delivered. Idempotent; after commit a no-op."""
        self._end(None)

    def _end(self, size: int | None) -> None:
        if self._view is not None:
            self._view.release()
            self._view = None
        finish, self._finish = self._finish, None
        if finish is not None:
            finish(size)

    def __len__(self) -> int:
        return self._n

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.discard()

    def __repr__(self) -> str:
        state = "open" if self._finish is not None else "done"
        return f"<fastipc.Reservation {self._n} bytes {state}>"
