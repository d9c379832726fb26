"""Win32 named semaphores through ctypes (the fallback's semaphores on Windows).

A POSIX-style name ``/name`` becomes the kernel object ``Local\\fastipc-sem-name`` (``Local\\``:
the session's namespace). The object vanishes with its last handle, so there is nothing to
unlink, and Win32 has no call to read a semaphore's value.
"""

from __future__ import annotations

import ctypes
import errno
from typing import Any

from .._errors import NotSupportedError
from ._closing import closed_error

__all__ = ["VALUE_MAX", "NamedSem", "unlink"]

VALUE_MAX = 2**31 - 1
_ERROR_ALREADY_EXISTS = 183
_ERROR_FILE_NOT_FOUND = 2
_SEMAPHORE_ALL_ACCESS = 0x1F0003
_WAIT_OBJECT_0 = 0
_WAIT_TIMEOUT = 0x102


def _k32() -> Any:
    k32 = ctypes.WinDLL("kernel32", use_last_error=True)  # type: ignore[attr-defined]
    k32.CreateSemaphoreW.restype = ctypes.c_void_p
    k32.CreateSemaphoreW.argtypes = (
        ctypes.c_void_p,
        ctypes.c_long,
        ctypes.c_long,
        ctypes.c_wchar_p,
    )
    k32.OpenSemaphoreW.restype = ctypes.c_void_p
    k32.OpenSemaphoreW.argtypes = (ctypes.c_uint32, ctypes.c_int, ctypes.c_wchar_p)
    k32.ReleaseSemaphore.restype = ctypes.c_int
    k32.ReleaseSemaphore.argtypes = (ctypes.c_void_p, ctypes.c_long, ctypes.c_void_p)
    k32.WaitForSingleObject.restype = ctypes.c_uint32
    k32.WaitForSingleObject.argtypes = (ctypes.c_void_p, ctypes.c_uint32)
    k32.CloseHandle.restype = ctypes.c_int
    k32.CloseHandle.argtypes = (ctypes.c_void_p,)
    return k32


def _win_error(name: str) -> OSError:
    code = ctypes.get_last_error()  # type: ignore[attr-defined]
    if code == _ERROR_FILE_NOT_FOUND:
        return FileNotFoundError(errno.ENOENT, "no such semaphore", name)
    if code == _ERROR_ALREADY_EXISTS:
        return FileExistsError(errno.EEXIST, "the semaphore exists", name)
    return OSError(errno.EINVAL, f"Win32 error {code}", name, code)


class NamedSem:
    def __init__(self, name: str, create: bool, mode: int = 0o600, value: int = 0) -> None:
        self._k32 = _k32()
        self.name = name
        kernel_name = "Local\\fastipc-sem-" + name[1:]
        if create:
            handle = self._k32.CreateSemaphoreW(None, value, VALUE_MAX, kernel_name)
            if not handle:
                raise _win_error(name)
            if ctypes.get_last_error() == _ERROR_ALREADY_EXISTS:  # type: ignore[attr-defined]
                self._k32.CloseHandle(handle)
                raise FileExistsError(errno.EEXIST, "the semaphore exists", name)
        else:
            handle = self._k32.OpenSemaphoreW(_SEMAPHORE_ALL_ACCESS, 0, kernel_name)
            if not handle:
                raise _win_error(name)
        self._handle: int | None = handle

    def _h(self) -> int:
        if self._handle is None:
            raise closed_error(self.name)
        return self._handle

    def post(self, n: int = 1) -> None:
        if not self._k32.ReleaseSemaphore(self._h(), n, None):
            raise OSError(
                errno.EOVERFLOW, "the semaphore's value would pass its maximum", self.name
            )

    def try_wait(self) -> bool:
        return self.wait_for(0.0)

    def wait_for(self, seconds: float) -> bool:
        rc = self._k32.WaitForSingleObject(self._h(), max(0, int(seconds * 1000)))
        if rc == _WAIT_OBJECT_0:
            return True
        if rc == _WAIT_TIMEOUT:
            return False
        raise _win_error(self.name)

    def value(self) -> int:
        raise NotSupportedError(f"Win32 cannot read the value of a semaphore ({self.name})")

    def close(self) -> None:
        handle, self._handle = self._handle, None
        if handle is not None:
            self._k32.CloseHandle(handle)


def unlink(name: str) -> None:
    """Nothing to do: a Win32 semaphore vanishes with its last handle."""
