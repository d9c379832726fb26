"""The socket directory, socket files and their ``.lock`` files (Unix only)."""

from __future__ import annotations

import contextlib
import errno
import os
import random
import socket
import stat
import sys
import warnings

from .._errors import SharedSocketDirWarning
from . import _platform

if sys.platform != "win32":
    import fcntl

__all__ = ["UnixBinding", "bind_free_name", "bind_unix", "check_path_length", "prepare_dir"]

_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_O_DIRECTORY = getattr(os, "O_DIRECTORY", 0)

#: Remapped port-0 names are picked from the dynamic port range.
_FREE_LOW = 49152
_FREE_COUNT = 65536 - _FREE_LOW


def prepare_dir(path: str, explicit: bool, stacklevel: int) -> bool:
    """Create or check the socket directory; return whether it is private (sockets made 0600).

    ``stacklevel`` is the warning's, counted from this function's caller."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        try:
            os.mkdir(path, 0o700)
        except FileExistsError:
            pass
        except OSError as e:
            raise _platform.oserror(e.errno, path) from None
        else:
            # mkdir's mode is filtered by the umask: make it exactly 0700, without following links.
            fd = os.open(path, os.O_RDONLY | _O_DIRECTORY | _O_NOFOLLOW | _O_CLOEXEC)
            try:
                os.fchmod(fd, 0o700)
            finally:
                os.close(fd)
        st = os.lstat(path)
    if stat.S_ISLNK(st.st_mode):
        raise PermissionError(errno.EPERM, "the socket directory is a symbolic link", path)
    if not stat.S_ISDIR(st.st_mode):
        raise NotADirectoryError(errno.ENOTDIR, "the socket directory is not a directory", path)
    mode = stat.S_IMODE(st.st_mode)
    if explicit and mode & stat.S_ISVTX and mode & 0o002:
        warnings.warn(
            f"fastipc socket directory {path!r} is shared: its sockets are reachable by every "
            "local user",
            SharedSocketDirWarning,
            stacklevel=stacklevel + 1,
        )
        return False
    if st.st_uid != os.geteuid():
        raise PermissionError(
            errno.EPERM, "the socket directory is not owned by the effective user", path
        )
    if mode & 0o022:
        raise PermissionError(
            errno.EPERM, "the socket directory is writable by group or others", path
        )
    return True


def check_path_length(path: str) -> None:
    if len(os.fsencode(path)) + 1 > _platform.SUN_PATH_MAX:
        raise _platform.oserror(errno.ENAMETOOLONG, path)


class UnixBinding:
    """A bound socket path and the lock that makes it ours; :meth:`release` undoes both."""

    __slots__ = ("dev", "ino", "lock_fd", "lock_path", "path", "pid")

    def __init__(self, path: str, lock_path: str, lock_fd: int, dev: int, ino: int) -> None:
        self.path = path
        self.lock_path = lock_path
        self.lock_fd = lock_fd
        self.dev = dev
        self.ino = ino
        self.pid = os.getpid()

    def release(self) -> None:
        """Unlink the socket if it is still ours, then the lock file, then drop the lock.

        In a forked child (which shares the lock with its parent) only the descriptor is closed."""
        fd, self.lock_fd = self.lock_fd, -1
        if fd < 0:
            return
        try:
            if self.pid == os.getpid():
                try:
                    st = os.lstat(self.path)
                except OSError:
                    pass
                else:
                    if (st.st_dev, st.st_ino) == (self.dev, self.ino):
                        _unlink_quietly(self.path)
                _unlink_quietly(self.lock_path)
        finally:
            os.close(fd)


def _unlink_quietly(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


def _take_lock(lock_path: str, logical: str) -> int:
    """Open ``lock_path`` and take its exclusive flock, checking it is still the file named so."""
    for _ in range(100):
        try:
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | _O_NOFOLLOW | _O_CLOEXEC, 0o600)
        except OSError as e:
            raise _platform.oserror(e.errno, lock_path) from None
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise _platform.oserror(errno.EADDRINUSE, logical) from None
            mine = os.fstat(fd)
            try:
                named = os.stat(lock_path)
            except FileNotFoundError:
                pass
            else:
                if (named.st_dev, named.st_ino) == (mine.st_dev, mine.st_ino):
                    return fd
        except BaseException:
            os.close(fd)
            raise
        # The file was unlinked (or replaced) between open and flock: take the new one.
        os.close(fd)
    raise _platform.oserror(errno.EADDRINUSE, logical)


def _alive(path: str, sock_type: int) -> bool:
    """Probe a socket file whose lock is free: does anything still accept connections there?"""
    probe = socket.socket(socket.AF_UNIX, sock_type)
    try:
        probe.setblocking(False)
        err = probe.connect_ex(path)
    finally:
        probe.close()
    return err not in (errno.ECONNREFUSED, errno.ENOENT)


def bind_unix(
    sock: socket.socket, path: str, logical: str, private: bool, sock_type: int
) -> UnixBinding:
    """Bind ``sock`` to ``path`` under the ``.lock`` protocol; stale sockets are replaced."""
    check_path_length(path)
    lock_path = path + ".lock"
    fd = _take_lock(lock_path, logical)
    try:
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            pass
        else:
            if not stat.S_ISSOCK(st.st_mode) or _alive(path, sock_type):
                raise _platform.oserror(errno.EADDRINUSE, logical)
            _unlink_quietly(path)
        try:
            sock.bind(path)
        except OSError as e:
            raise _platform.oserror(e.errno, logical) from None
        try:
            if private:
                os.chmod(path, 0o600)
            st = os.lstat(path)
        except OSError as e:
            _unlink_quietly(path)
            raise _platform.oserror(e.errno, path) from None
    except BaseException:
        # The lock is ours, so the lock file is ours to remove.
        _unlink_quietly(lock_path)
        os.close(fd)
        raise
    return UnixBinding(path, lock_path, fd, st.st_dev, st.st_ino)


def bind_free_name(
    sock: socket.socket, sdir: str, name: str, private: bool, sock_type: int
) -> tuple[UnixBinding, int]:
    """Bind ``sock`` to a free ``<sdir>/<name>:<p>`` with ``p`` in 49152-65535."""
    start = random.randrange(_FREE_COUNT)
    check_path_length(os.path.join(sdir, f"{name}:{_FREE_LOW + _FREE_COUNT - 1}"))
    for i in range(_FREE_COUNT):
        port = _FREE_LOW + (start + i) % _FREE_COUNT
        logical = f"{name}:{port}"
        try:
            return bind_unix(sock, os.path.join(sdir, logical), logical, private, sock_type), port
        except OSError as e:
            if e.errno != errno.EADDRINUSE:
                raise
    raise _platform.oserror(errno.EADDRINUSE, f"{name}:0")
