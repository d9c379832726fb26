"""``Semaphore`` of the fallback: POSIX named semaphores through ctypes on Linux, macOS and BSD,
Win32 named semaphores on Windows.

Waits run in slices of at most 50 ms with the GIL released (ctypes releases it), and return to
the interpreter between slices, so Ctrl-C raises ``KeyboardInterrupt`` promptly. On Windows a
semaphore's name vanishes with its last handle: ``unlink()`` does nothing there, and ``value`` is
not available.
"""

from __future__ import annotations

import contextlib
import math
import os
import sys
import threading
import time
from types import TracebackType
from typing import Any

from .. import _registry
from . import _names
from ._closing import closed_error

__all__ = ["Semaphore"]

_WINDOWS = sys.platform == "win32"
_SLICE = 0.05

if sys.platform == "win32":  # pragma: no cover - exercised on Windows only
    from . import _winsem as _impl
else:
    from . import _posixsem as _impl


def _deadline(blocking: bool, timeout: float | None) -> float | None:
    """Absolute monotonic deadline; None waits forever."""
    if not blocking:
        if timeout is not None:
            raise ValueError("can't specify a timeout for a non-blocking call")
        return time.monotonic()
    if timeout is None or timeout == -1:
        return None
    if not isinstance(timeout, int | float) or math.isnan(timeout) or timeout < 0:
        raise ValueError(
            f"timeout must be None or a non-negative number of seconds, not {timeout!r}"
        )
    return time.monotonic() + timeout


class Semaphore:
    """A named semaphore shared with other processes, C programs (``sem_open``) and posix_ipc."""

    def __init__(
        self, name: str | None = None, create: bool = False, value: int = 0, *, mode: int = 0o600
    ) -> None:
        self._sem: Any = None
        self._users = 0
        self._closing = False
        self._guard = threading.Lock()
        if not isinstance(value, int) or not 0 <= value <= _impl.VALUE_MAX:
            raise ValueError(f"initial value must be from 0 to {_impl.VALUE_MAX}, not {value}")
        if mode & ~0o777:
            raise ValueError(f"mode must be permission bits (0 to 0o777), not {mode:#o}")
        if create:
            if name is None:
                while True:
                    try:
                        created = self._create(_names.generated(), mode, value)
                    except FileExistsError:
                        continue
                    break
            else:
                created = self._create(_names.posix_name(name, "sem"), mode, value)
            self._name: str = created
        else:
            if name is None:
                raise ValueError("'name' can only be None if create=True")
            self._sem = _impl.NamedSem(_names.posix_name(name, "sem"), False)
            self._name = self._sem.name

    def _create(self, name: str, mode: int, value: int) -> str:
        """Creates the semaphore ``name``, recorded before it exists (on Windows nothing is
        recorded: Win32 objects vanish with their last handle, nothing can leak); its name."""
        recording = contextlib.nullcontext() if _WINDOWS else _registry.creating("sem", name, 0)
        with recording:
            self._sem = _impl.NamedSem(name, True, mode, value)
            _fix_mode(name, mode)
        return str(self._sem.name)

    def _enter(self) -> Any:
        with self._guard:
            if self._sem is None or self._closing:
                raise closed_error(self._name)
            self._users += 1
            return self._sem

    def _leave(self) -> None:
        with self._guard:
            self._users -= 1
            if self._closing and self._users == 0 and self._sem is not None:
                self._sem.close()
                self._sem = None

    def acquire(self, blocking: bool = True, timeout: float | None = None) -> bool:
        """Decrement the value, waiting while it is zero. False if ``blocking`` is False or
        ``timeout`` seconds pass first."""
        deadline = _deadline(blocking, timeout)
        sem = self._enter()
        try:
            if sem.try_wait():
                return True
            while True:
                if self._closing:
                    raise closed_error(self._name)
                if deadline is None:
                    left = _SLICE
                else:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        return False
                if sem.wait_for(min(left, _SLICE)):
                    return True
        finally:
            self._leave()

    def release(self, n: int = 1) -> None:
        """Increment the value ``n`` times."""
        if not isinstance(n, int) or n < 1:
            raise ValueError("n must be one or more")
        sem = self._enter()
        try:
            if _WINDOWS:  # pragma: no cover
                sem.post(n)
            else:
                for _ in range(n):
                    sem.post()
        finally:
            self._leave()

    @property
    def value(self) -> int:
        """The current value (``NotSupportedError`` on macOS and Windows)."""
        sem = self._enter()
        try:
            return int(sem.value())
        finally:
            self._leave()

    @property
    def name(self) -> str:
        return self._name

    @property
    def closed(self) -> bool:
        return self._sem is None or self._closing

    def unlink(self) -> None:
        """Remove the name; handles already open keep working."""
        _impl.unlink(self._name)
        _registry.forget("sem", self._name)

    def close(self) -> None:
        """Close this handle (the semaphore lives on until unlinked). Idempotent."""
        with self._guard:
            self._closing = True
            if self._users == 0 and self._sem is not None:
                self._sem.close()
                self._sem = None

    def __enter__(self) -> Semaphore:
        self.acquire()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.close()

    def __repr__(self) -> str:
        return f"<fastipc.Semaphore {self._name}{' closed' if self.closed else ''}>"


def _fix_mode(name: str, mode: int) -> None:
    """sem_open applies the umask; give the semaphore exactly ``mode`` where it is a file."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError):
            os.chmod(f"/dev/shm/sem.{name[1:]}", mode)
