"""Cross-process locks and waits of the fallback's shared-memory rings (``_ring.py``).

* Locks are Linux open-file-description locks (``F_OFD_SETLK``) on single bytes of the segment's
  file. The kernel drops them when the last descriptor of their open file description closes,
  so a process killed while holding one never wedges the others. Each process (and each handle)
  locks through an open file description of its own, opened again after a fork: locks of one
  description do not exclude each other.
* Waits sleep on a 32-bit word of the segment with ``FUTEX_WAIT`` (Linux, through ``syscall``
  and ctypes, which releases the GIL) in slices of at most :data:`SLICE`, so that a signal
  handler (Ctrl-C), a deadline, a ``close()`` from another thread or a dead peer is seen in
  time. Where there is no futex the wait is a sleep of the same slice, shortened by backoff.
"""

from __future__ import annotations

import ctypes
import errno
import functools
import os
import platform
import struct
import sys
import threading
import time

from . import _libc

__all__ = [
    "AVAILABLE",
    "SLICE",
    "UNAVAILABLE_REASON",
    "FileLocks",
    "fork_generation",
    "futex_wait",
    "futex_wake",
]

#: Longest uninterrupted sleep of a wait (Ctrl-C, close and peer death are noticed in time).
SLICE = 0.05

_LINUX = sys.platform.startswith("linux")

try:
    import fcntl

    _OFD: tuple[int, int] | None = (fcntl.F_OFD_SETLK, fcntl.F_OFD_GETLK)
except (ImportError, AttributeError):
    _OFD = None

AVAILABLE = _LINUX and _OFD is not None
UNAVAILABLE_REASON = (
    ""
    if AVAILABLE
    else "shared-memory queues and channels of the pure-Python backend need Linux "
    "(open-file-description locks, memfd); use the Rust extension"
)

# struct flock of Linux: short l_type, short l_whence, off_t l_start, off_t l_len, pid_t l_pid.
_FLOCK = "@hhqqi4x"


class _Fork:
    """How many forks made this process (0 in the original), and the mutex that serialises the
    first opening of a handle's lock descriptor by several threads."""

    generation = 0
    opening = threading.Lock()


def _forked() -> None:
    _Fork.generation += 1
    _Fork.opening = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forked)


def fork_generation() -> int:
    """Changes in a child after each fork: what a handle compares to know it was inherited."""
    return _Fork.generation


class FileLocks:
    """Byte locks on one segment file, through an open file description of this handle's own
    (reopened in a forked child), with the in-process mutex that goes with each byte: threads of
    one process share the description, so they exclude each other with ``threading`` locks."""

    def __init__(self, path_of_fd: str) -> None:
        self._path = path_of_fd
        self._fd = -1
        self._generation = -1
        self._mutexes: dict[int, threading.Lock] = {}

    def _own_fd(self) -> int:
        if self._generation != _Fork.generation:
            with _Fork.opening:
                if self._generation != _Fork.generation:
                    # First use, or inherited through fork: the parent's open file description
                    # would make our locks its locks.
                    self._fd = os.open(self._path, os.O_RDWR | os.O_CLOEXEC)
                    self._mutexes = {}
                    self._generation = _Fork.generation
        return self._fd

    def mutex(self, byte: int) -> threading.Lock:
        self._own_fd()
        found = self._mutexes.get(byte)
        if found is None:
            found = self._mutexes[byte] = threading.Lock()
        return found

    def try_lock(self, byte: int) -> bool:
        """The byte's file lock, without waiting (the caller holds its mutex)."""
        return try_lock_fd(self._own_fd(), byte)

    def unlock(self, byte: int) -> None:
        unlock_fd(self._own_fd(), byte)

    def held_elsewhere(self, byte: int) -> bool:
        """Whether another open file description holds a lock on ``byte``."""
        return held_elsewhere_fd(self._own_fd(), byte)

    def close(self) -> None:
        fd, self._fd = self._fd, -1
        if fd >= 0 and self._generation == _Fork.generation:
            os.close(fd)


@functools.cache
def _flock(ltype: int, byte: int) -> bytes:
    return struct.pack(_FLOCK, ltype, os.SEEK_SET, byte, 1, 0)


def try_lock_fd(fd: int, byte: int) -> bool:
    assert _OFD is not None
    try:
        fcntl.fcntl(fd, _OFD[0], _flock(fcntl.F_WRLCK, byte))
    except OSError as exc:
        if exc.errno in (errno.EAGAIN, errno.EACCES):
            return False
        raise
    return True


def unlock_fd(fd: int, byte: int) -> None:
    assert _OFD is not None
    fcntl.fcntl(fd, _OFD[0], _flock(fcntl.F_UNLCK, byte))


def held_elsewhere_fd(fd: int, byte: int) -> bool:
    assert _OFD is not None
    out = fcntl.fcntl(fd, _OFD[1], _flock(fcntl.F_WRLCK, byte))
    return bool(struct.unpack(_FLOCK, out)[0] != fcntl.F_UNLCK)


# ------------------------------------------------------------------------------------------
# futex

_SYS_FUTEX = {
    "x86_64": 202,
    "amd64": 202,
    "aarch64": 98,
    "arm64": 98,
    "riscv64": 98,
    "ppc64le": 221,
    "ppc64": 221,
    "s390x": 238,
    "i386": 240,
    "i686": 240,
    "armv7l": 240,
}
_FUTEX_WAIT, _FUTEX_WAKE = 0, 1  # shared (not FUTEX_PRIVATE_FLAG): the word is in a segment


def _syscall() -> tuple[ctypes._CFuncPtr, int] | None:  # type: ignore[name-defined]
    number = _SYS_FUTEX.get(platform.machine().lower()) if _LINUX else None
    if number is None:
        return None
    try:
        fn = _libc.load("syscall", "c").syscall
    except (OSError, AttributeError):  # pragma: no cover - no C library
        return None
    fn.restype = ctypes.c_long
    fn.argtypes = (
        ctypes.c_long,
        ctypes.c_void_p,
        ctypes.c_int,
        ctypes.c_uint,
        ctypes.c_void_p,
        ctypes.c_void_p,
        ctypes.c_uint,
    )
    return fn, number


_FUTEX = _syscall()


def futex_wait(address: int, expected: int, seconds: float) -> None:
    """Sleeps while the word at ``address`` holds ``expected``, at most ``seconds`` (and at most
    one slice). Returns on a wake-up, a timeout, a signal or a changed word alike: the caller
    looks again."""
    seconds = max(0.0, min(seconds, SLICE))
    if _FUTEX is None:
        time.sleep(min(seconds, 0.001))
        return
    fn, number = _FUTEX
    whole = int(seconds)
    spec = _libc.Timespec(whole, int((seconds - whole) * 1e9))
    fn(number, address, _FUTEX_WAIT, expected & 0xFFFFFFFF, ctypes.addressof(spec), None, 0)


def futex_wake(address: int) -> None:
    """Wakes every sleeper on the word at ``address``."""
    if _FUTEX is None:
        return
    fn, number = _FUTEX
    fn(number, address, _FUTEX_WAKE, 0x7FFFFFFF, None, None, 0)
