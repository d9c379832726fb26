"""``SharedMemory`` of the fallback: POSIX segments through ``_posixshmem`` and ``mmap`` (the
primitives ``multiprocessing.shared_memory`` is made of), Windows through
``multiprocessing.shared_memory`` itself.

Python 3.11's ``multiprocessing.shared_memory.SharedMemory`` registers every segment it creates or
opens with the resource tracker, which unlinks it when the registering process exits (and leaks
it when that process is killed). fastipc segments live until ``unlink()``, as POSIX says, so on
POSIX this module never goes through that class and nothing is tracked; on Windows there is no
tracker, and a segment lives while a handle to it is open.
"""

from __future__ import annotations

import contextlib
import gc
import mmap
import os
import sys
from typing import Any

from .. import _registry
from .._errors import NotSupportedError
from . import _names
from ._closing import Closing, closed_error

__all__ = ["SharedMemory"]

_WINDOWS = sys.platform == "win32"
_LINUX = sys.platform.startswith("linux")

if sys.platform != "win32":
    import _posixshmem  # type: ignore[import-not-found]


class SharedMemory(Closing):
    """A shared memory segment: ``multiprocessing.shared_memory.SharedMemory`` with POSIX names,
    a mode, reserved pages and nothing tracked behind the user's back."""

    _mmap: mmap.mmap | None
    _buf: memoryview | None
    _name: str | None
    _size: int

    def __init__(
        self, name: str | None = None, create: bool = False, size: int = 0, *, mode: int = 0o600
    ) -> None:
        self._fd = -1
        self._mmap = None
        self._buf = None
        self._win: Any = None
        if not isinstance(size, int) or size < 0:
            raise ValueError("'size' must be a positive integer")
        if create and size == 0:
            raise ValueError("'size' must be a positive number different from zero")
        if not create and name is None:
            raise ValueError("'name' can only be None if create=True")
        if mode & ~0o777:
            raise ValueError(f"mode must be permission bits (0 to 0o777), not {mode:#o}")
        if _WINDOWS:
            self._open_windows(name, create, size)
            return
        if create:
            self._create_named(name, size, mode)
        else:
            assert name is not None
            self._open(_names.posix_name(name, "shm"))
        assert self._mmap is not None
        self._buf = memoryview(self._mmap)

    def _create_named(self, name: str | None, size: int, mode: int) -> None:
        """Creates the segment ``name`` (a generated name when None), recorded first."""
        if name is None:
            while True:
                candidate = _names.generated()
                try:
                    with _registry.creating("shm", candidate, size):
                        self._create(candidate, size, mode)
                except FileExistsError:
                    continue
                break
        else:
            posix = _names.posix_name(name, "shm")
            with _registry.creating("shm", posix, size):
                self._create(posix, size, mode)

    def _open(self, name: str) -> None:
        """Opens and maps the existing segment ``name``."""
        self._name = name
        self._fd = _posixshmem.shm_open(name, os.O_RDWR, mode=0)
        try:
            self._size = os.fstat(self._fd).st_size
            if self._size == 0:
                raise ValueError(
                    f"the shared memory segment {name} is empty (size 0): nothing to map"
                )
            self._mmap = mmap.mmap(self._fd, self._size)
        except BaseException:
            os.close(self._fd)
            self._fd = -1
            raise

    def _create(self, name: str, size: int, mode: int) -> None:
        fd = _posixshmem.shm_open(name, os.O_CREAT | os.O_EXCL | os.O_RDWR, mode=mode)
        try:
            os.fchmod(fd, mode)  # the umask must not narrow the mode asked for
            os.ftruncate(fd, size)
            if _LINUX:
                os.posix_fallocate(fd, 0, size)
            self._mmap = mmap.mmap(fd, size)
        except BaseException:
            os.close(fd)
            _posixshmem.shm_unlink(name)
            raise
        self._fd, self._name, self._size = fd, name, size

    def _open_windows(self, name: str | None, create: bool, size: int) -> None:  # pragma: no cover
        from multiprocessing import shared_memory

        bare = None if name is None else _names.posix_name(name, "shm")[1:]
        if create and bare is None:
            bare = _names.generated()[1:]
        self._win = shared_memory.SharedMemory(bare, create, size)
        self._name = "/" + self._win.name
        self._size = self._win.size
        self._buf = self._win.buf

    @classmethod
    def anonymous(cls, size: int) -> SharedMemory:
        """An anonymous segment (a memfd sealed against shrinking and growing) to hand to another
        process by descriptor passing. Linux only in the fallback."""
        if not _LINUX or not hasattr(os, "memfd_create"):
            raise NotSupportedError(
                "anonymous segments need memfd_create (Linux) in the pure-Python backend"
            )
        import fcntl

        if not isinstance(size, int) or size <= 0:
            raise ValueError("size must be a positive number of bytes")
        fd = os.memfd_create("fastipc-anonymous", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
        try:
            os.ftruncate(fd, size)
            os.posix_fallocate(fd, 0, size)
            fcntl.fcntl(
                fd, fcntl.F_ADD_SEALS, fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW | fcntl.F_SEAL_SEAL
            )
            return cls._adopt(fd)
        except BaseException:
            os.close(fd)
            raise

    @classmethod
    def from_fd(cls, fd: int, *, require_sealed: bool = True) -> SharedMemory:
        """Map the segment behind ``fd`` (duplicated: the caller keeps and closes its own)."""
        if _WINDOWS:
            raise NotSupportedError("segments from descriptors do not exist on Windows")
        if fd < 0:
            raise ValueError(f"invalid file descriptor {fd}")
        new = os.dup(fd)
        try:
            if require_sealed and not _sealed(new):
                raise ValueError(
                    "the descriptor is not sealed against shrinking (F_SEAL_SHRINK): a peer could "
                    "truncate it under the mapping; pass require_sealed=False to accept it anyway"
                )
            return cls._adopt(new)
        except BaseException:
            os.close(new)
            raise

    @classmethod
    def _adopt(cls, fd: int) -> SharedMemory:
        self = cls.__new__(cls)
        self._win = None
        self._name = None
        self._size = os.fstat(fd).st_size
        if self._size == 0:
            raise ValueError("the received segment is empty (size 0): nothing to map")
        self._mmap = mmap.mmap(fd, self._size)
        self._fd = fd
        self._buf = memoryview(self._mmap)
        return self

    @property
    def name(self) -> str | None:
        """The name in POSIX form (``"/name"``), or None for an anonymous segment."""
        return self._name

    @property
    def size(self) -> int:
        return self._size

    @property
    def buf(self) -> memoryview:
        """The segment's bytes as a writable memoryview (zero-copy)."""
        if self._buf is None:
            raise closed_error(self._label)
        return self._buf

    @property
    def fd(self) -> int:
        return self._fd

    def fileno(self) -> int:
        if self._fd < 0:
            raise closed_error(self._label)
        return self._fd

    @property
    def closed(self) -> bool:
        return self._buf is None

    @property
    def _label(self) -> str:
        return self._name or "anonymous segment"

    def close(self) -> None:
        """Unmap and close the descriptor; the segment lives on until ``unlink()``.
        ``BufferError`` while views of ``buf`` are exported. Idempotent."""
        if self._win is not None:  # pragma: no cover - Windows
            self._win.close()
            self._buf = None
            return
        if self._buf is not None:
            try:
                self._buf.release()
            except BufferError as exc:
                raise BufferError(
                    f"cannot close {self._label}: views of its buf are still exported ({exc})"
                ) from None
            self._buf = None
        if self._mmap is not None:
            try:
                self._close_mmap()
            except BufferError:
                self._buf = memoryview(self._mmap)
                raise
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def _close_mmap(self) -> None:
        assert self._mmap is not None
        # Two references are ours (the attribute and getrefcount's argument). Any other is a
        # view of buf (a memoryview slice: its managed buffer holds an export) or a consumer that
        # keeps the mmap without an export (numpy's ndarray(buffer=...)).
        if sys.getrefcount(self._mmap) > 2:
            holders = gc.get_referrers(self._mmap)
            if any(type(h).__name__ == "managedbuffer" for h in holders):
                raise BufferError(
                    f"cannot close {self._label}: views of its buf are still exported"
                )
            # Not mmap.close(): the memory must outlive the consumer's reference; the mapping
            # goes with the last one.
            self._mmap = None
            return
        self._mmap.close()
        self._mmap = None

    def unlink(self) -> None:
        """Remove the segment's name (the memory lives while anyone maps it)."""
        if self._name is None:
            raise ValueError("an anonymous segment has no name to unlink")
        if _WINDOWS:  # pragma: no cover - names vanish with the last handle
            return
        _posixshmem.shm_unlink(self._name)
        _registry.forget("shm", self._name)

    def __reduce__(self) -> tuple[Any, ...]:
        if self._name is None:
            raise ValueError("an anonymous segment cannot be pickled: pass its descriptor instead")
        return (type(self), (self._name, False, self._size))

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.close()

    def __repr__(self) -> str:
        state = f"fd={self._fd}" if self._buf is not None else "closed"
        return f"<fastipc.SharedMemory {self._label} size={self._size} {state}>"


def _sealed(fd: int) -> bool:
    try:
        import fcntl

        seals = fcntl.fcntl(fd, fcntl.F_GET_SEALS)
    except (ImportError, AttributeError, OSError):
        return False
    return bool(seals & fcntl.F_SEAL_SHRINK)
