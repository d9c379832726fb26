"""File locks on byte ranges with ``fcntl`` (POSIX record locks and Linux OFD locks)."""

from __future__ import annotations

import errno
import os
import struct
import sys
import threading
from types import TracebackType
from typing import Self

from .._errors import NotSupportedError
from .._records import LockHolder
from ._closing import closed_error
from ._waits import backoff, deadline_of

__all__ = ["FileLock"]

LINUX = sys.platform.startswith("linux")
WINDOWS = sys.platform == "win32"
# msvcrt.locking takes a C long count of bytes from the current position.
_MSVCRT_MAX = 2**31 - 1
_EXCLUSIVE, _UNLOCK = 1, 0
# struct flock of Linux: short l_type, short l_whence, off_t l_start, off_t l_len, pid_t l_pid.
_FLOCK = "@hhqqi4x"


class FileLock:
    """A lock on a byte range of a file, shared with other processes and with C programs that
    use ``fcntl`` locks on the same file."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        shared: bool = False,
        start: int = 0,
        length: int = 0,
        kind: str | None = None,
    ) -> None:
        self._fd = -1
        self._path = os.fspath(path)
        if start < 0 or length < 0:
            raise OverflowError("start and length must be non-negative")
        if WINDOWS:
            self._init_windows(shared, start, length, kind)
            return
        import fcntl

        self._fcntl = fcntl
        if kind is None:
            kind = "ofd" if LINUX else "posix"
        if kind not in ("ofd", "posix"):
            raise ValueError(f"kind must be 'posix' or 'ofd', not {kind!r}")
        if kind == "ofd" and not hasattr(fcntl, "F_OFD_SETLK"):
            raise NotSupportedError(
                "open-file-description locks are not available here: use kind='posix' "
                f"({self._path})"
            )
        self._kind = kind
        self._shared = shared
        self._start = start
        self._length = length
        self._held = False
        self._mutex = threading.Lock()
        base = os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NOCTTY

        def open_(access: int) -> int:
            try:
                return os.open(self._path, base | os.O_CREAT | access, 0o600)
            except PermissionError:
                return os.open(self._path, base | access)

        if shared:
            try:
                self._fd = open_(os.O_RDWR)
            except PermissionError:
                self._fd = open_(os.O_RDONLY)
        else:
            self._fd = open_(os.O_RDWR)

    def _init_windows(self, shared: bool, start: int, length: int, kind: str | None) -> None:
        """msvcrt byte-range locks: exclusive only, no query of the holder."""
        if shared:
            raise NotSupportedError("shared file locks do not exist on Windows (msvcrt)")
        if kind not in (None, "msvcrt"):
            raise NotSupportedError(f"kind={kind!r}: Windows has msvcrt locks only")
        if start + (length or 1) > _MSVCRT_MAX:
            raise NotSupportedError("msvcrt locks cover the first 2 GiB of a file only")
        self._kind, self._shared, self._start, self._length = "msvcrt", False, start, length
        self._held = False
        self._mutex = threading.Lock()
        flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_BINARY", 0) | getattr(os, "O_NOINHERIT", 0)
        self._fd = os.open(self._path, flags, 0o600)

    def _check(self) -> int:
        if self._fd < 0:
            raise closed_error(self._path)
        return self._fd

    def _cmds(self) -> tuple[int, int]:
        f = self._fcntl
        if self._kind == "ofd":
            return f.F_OFD_SETLK, f.F_OFD_GETLK
        return f.F_SETLK, f.F_GETLK

    def _set(self, ltype: int) -> None:
        if self._kind == "msvcrt":
            self._set_msvcrt(ltype)
            return
        setlk, _ = self._cmds()
        arg = struct.pack(_FLOCK, ltype, os.SEEK_SET, self._start, self._length, 0)
        self._fcntl.fcntl(self._check(), setlk, arg)

    def _set_msvcrt(self, ltype: int) -> None:
        import msvcrt

        fd = self._check()
        size = self._length or (_MSVCRT_MAX - self._start)
        os.lseek(fd, self._start, os.SEEK_SET)
        mode = msvcrt.LK_UNLCK if ltype == _UNLOCK else msvcrt.LK_NBLCK  # type: ignore[attr-defined, unused-ignore]
        try:
            msvcrt.locking(fd, mode, size)  # type: ignore[attr-defined, unused-ignore]
        except OSError as exc:
            if ltype != _UNLOCK:
                raise BlockingIOError(errno.EAGAIN, "locked", self._path) from exc
            raise

    def _ltype(self) -> int:
        if self._kind == "msvcrt":
            return _EXCLUSIVE
        return self._fcntl.F_RDLCK if self._shared else self._fcntl.F_WRLCK

    def _unlock_type(self) -> int:
        return _UNLOCK if self._kind == "msvcrt" else self._fcntl.F_UNLCK

    def acquire(self, blocking: bool = True, timeout: float | None = None) -> bool:
        self._check()
        with self._mutex:
            if self._held:
                return True

            def attempt() -> bool | None:
                try:
                    self._set(self._ltype())
                except OSError as exc:
                    if exc.errno in (errno.EAGAIN, errno.EACCES, errno.EINTR):
                        return None
                    raise OSError(exc.errno, exc.strerror, self._path) from None
                return True

            deadline = deadline_of(timeout if blocking else 0.0)
            try:
                backoff(deadline, self._path, attempt, first=50e-6, cap=0.01)
            except TimeoutError:
                return False
            self._held = True
            return True

    def release(self) -> None:
        self._check()
        with self._mutex:
            if not self._held:
                raise RuntimeError(f"release unlocked lock ({self._path})")
            self._set(self._unlock_type())
            self._held = False

    @property
    def held(self) -> bool:
        return self._held and self._fd >= 0

    def _get(self, cmd: int) -> LockHolder | None:
        arg = struct.pack(_FLOCK, self._ltype(), os.SEEK_SET, self._start, self._length, 0)
        out = self._fcntl.fcntl(self._check(), cmd, arg)
        ltype, _whence, start, length, pid = struct.unpack(_FLOCK, out)
        if ltype == self._fcntl.F_UNLCK:
            return None
        return LockHolder(pid, start, length, ltype == self._fcntl.F_RDLCK)

    def holder(self) -> LockHolder | None:
        if self._kind == "msvcrt":
            raise NotSupportedError("Windows cannot tell who holds a lock")
        posix = self._get(self._fcntl.F_GETLK)
        if self._kind == "posix":
            return posix
        ofd = self._get(self._fcntl.F_OFD_GETLK)
        if ofd is None:
            return None
        if (
            posix is not None
            and posix.pid > 0
            and (posix.start, posix.length) == (ofd.start, ofd.length)
        ):
            return posix
        return ofd

    @property
    def path(self) -> str:
        return self._path

    @property
    def shared(self) -> bool:
        return self._shared

    @property
    def start(self) -> int:
        return self._start

    @property
    def length(self) -> int:
        return self._length

    @property
    def kind(self) -> str:
        return self._kind

    @property
    def closed(self) -> bool:
        return self._fd < 0

    def fileno(self) -> int:
        return self._check()

    def close(self) -> None:
        fd, self._fd = self._fd, -1
        self._held = False
        if fd >= 0:
            os.close(fd)

    def __del__(self) -> None:
        if getattr(self, "_fd", -1) >= 0:
            self.close()

    def __enter__(self) -> Self:
        self.acquire()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.held:
            self.release()

    def __repr__(self) -> str:
        rng = (
            f"{self._start}-"
            if self._length == 0
            else f"{self._start}-{self._start + self._length - 1}"
        )
        state = "closed" if self._fd < 0 else ("held" if self._held else "free")
        mode = "shared" if self._shared else "exclusive"
        return f"<fastipc.FileLock {self._path} {self._kind} bytes {rng} {mode} {state}>"
