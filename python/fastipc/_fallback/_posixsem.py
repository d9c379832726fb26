"""POSIX named semaphores through ctypes (Linux, macOS, BSD): the same objects as C ``sem_open``.

On macOS there is no ``sem_timedwait`` and no ``sem_getvalue``: timed waits poll ``sem_trywait``
with short sleeps, and the value cannot be read.
"""

from __future__ import annotations

import ctypes
import errno
import functools
import os
import platform
import sys
import time

from . import _libc
from ._closing import closed_error

__all__ = ["HAS_TIMEDWAIT", "VALUE_MAX", "NamedSem", "exists", "unlink"]

HAS_TIMEDWAIT = sys.platform != "darwin"
# Apple's arm64 ABI passes variadic arguments on the stack, which ctypes does not do.
_VARIADIC_BROKEN = sys.platform == "darwin" and platform.machine() == "arm64"
VALUE_MAX = 32767 if sys.platform == "darwin" else 2**31 - 1


@functools.cache
def _lib() -> ctypes.CDLL:
    lib = _libc.load("sem_open", "pthread")
    lib.sem_open.restype = ctypes.c_void_p
    lib.sem_open.argtypes = (ctypes.c_char_p, ctypes.c_int)
    for fn in ("sem_post", "sem_wait", "sem_trywait", "sem_close"):
        getattr(lib, fn).restype = ctypes.c_int
        getattr(lib, fn).argtypes = (ctypes.c_void_p,)
    lib.sem_unlink.restype = ctypes.c_int
    lib.sem_unlink.argtypes = (ctypes.c_char_p,)
    if HAS_TIMEDWAIT:
        lib.sem_timedwait.restype = ctypes.c_int
        lib.sem_timedwait.argtypes = (ctypes.c_void_p, ctypes.POINTER(_libc.Timespec))
        lib.sem_getvalue.restype = ctypes.c_int
        lib.sem_getvalue.argtypes = (ctypes.c_void_p, ctypes.POINTER(ctypes.c_int))
    return lib


_SEM_FAILED = ctypes.c_void_p(0).value  # NULL on Linux; macOS returns -1, checked below


class NamedSem:
    """An open semaphore handle; ``close()`` once."""

    def __init__(self, name: str, create: bool, mode: int = 0o600, value: int = 0) -> None:
        if create and _VARIADIC_BROKEN:
            from .._errors import NotSupportedError

            raise NotSupportedError(
                "creating a semaphore needs a variadic call (sem_open with a mode and a value), "
                "which ctypes cannot make on this platform (Apple arm64): use the Rust backend"
            )
        lib = _lib()
        raw = name.encode()
        while True:
            if create:
                handle = lib.sem_open(
                    raw, os.O_CREAT | os.O_EXCL, ctypes.c_uint(mode), ctypes.c_uint(value)
                )
            else:
                handle = lib.sem_open(raw, 0)
            if handle in (None, _SEM_FAILED, ctypes.c_void_p(-1).value):
                if ctypes.get_errno() == errno.EINTR:
                    continue
                raise _libc.errno_error(name)
            break
        self._handle: int | None = handle
        self.name = name

    def _h(self) -> int:
        if self._handle is None:
            raise closed_error(self.name)
        return self._handle

    def post(self) -> None:
        if _lib().sem_post(self._h()) != 0:
            raise _libc.errno_error(self.name)

    def try_wait(self) -> bool:
        """Decrement if positive; False if the value is zero."""
        while True:
            if _lib().sem_trywait(self._h()) == 0:
                return True
            code = ctypes.get_errno()
            if code == errno.EAGAIN:
                return False
            if code != errno.EINTR:
                raise _libc.errno_error(self.name)

    def wait_for(self, seconds: float) -> bool:
        """Wait at most ``seconds`` to decrement; False when the time passes (or on a signal,
        so that the caller's loop runs the signal handlers)."""
        if not HAS_TIMEDWAIT:
            end = time.monotonic() + seconds
            nap = 0.00005
            while True:
                if self.try_wait():
                    return True
                left = end - time.monotonic()
                if left <= 0:
                    return False
                time.sleep(min(nap, left))
                nap = min(nap * 2, 0.001)
        spec = _libc.realtime_after(seconds)
        if _lib().sem_timedwait(self._h(), ctypes.byref(spec)) == 0:
            return True
        code = ctypes.get_errno()
        if code in (errno.ETIMEDOUT, errno.EINTR, errno.EAGAIN):
            return False
        raise _libc.errno_error(self.name)

    def value(self) -> int:
        if not HAS_TIMEDWAIT:
            from .._errors import NotSupportedError

            raise NotSupportedError(
                f"the value of a semaphore cannot be read on this platform ({self.name})"
            )
        out = ctypes.c_int(0)
        if _lib().sem_getvalue(self._h(), ctypes.byref(out)) != 0:
            raise _libc.errno_error(self.name)
        return max(out.value, 0)

    def close(self) -> None:
        handle, self._handle = self._handle, None
        if handle is not None:
            _lib().sem_close(handle)


def unlink(name: str) -> None:
    if _lib().sem_unlink(name.encode()) != 0:
        raise _libc.errno_error(name)


def exists(name: str) -> bool:
    try:
        NamedSem(name, create=False).close()
    except FileNotFoundError:
        return False
    except OSError:
        return True
    return True
