"""Pipes and FIFOs on ``os.pipe``/``os.mkfifo`` (pipes work on Windows too, blocking only)."""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import select
import signal
import stat
import sys
import threading
import time
from types import TracebackType
from typing import Any, Self

from typing_extensions import Buffer

from .._errors import NotSupportedError, TruncatedMessage
from . import _libc
from ._closing import Closing, closed_error
from ._waits import SLICE, backoff, check_timeout, deadline_of, timed_out

__all__ = ["FIFO", "PipeReader", "PipeWriter", "pipe"]

WINDOWS = sys.platform == "win32"
PIPE_BUF = 4096
READ_CHUNK = 1 << 20
F_GETPIPE_SZ = 1032
F_SETPIPE_SZ = 1031


_SIGPIPE: int | None = None if WINDOWS else getattr(signal, "SIGPIPE", None)
#: ``struct sigaction`` storage (its handler is the first field on every Unix): large enough for
#: any platform's layout. Shared: whichever thread writes it, it holds the current disposition.
_ACTION = ctypes.create_string_buffer(256)
_HANDLER = ctypes.c_void_p.from_buffer(_ACTION)


def _sigaction() -> Any:
    lib = _libc.load("sigaction", "c")
    fn = lib.sigaction
    fn.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p]
    fn.restype = ctypes.c_int
    return fn


_SIGACTION: Any = None if _SIGPIPE is None else _sigaction()


def _sigpipe_kills() -> bool:
    """Whether SIGPIPE's disposition is SIG_DFL (asked of the C library: ``signal.getsignal``
    misses a change made from C, by a host embedding Python)."""
    if _SIGACTION(_SIGPIPE, None, _ACTION) != 0:
        return True
    return not _HANDLER.value  # SIG_DFL is 0


def _write(fd: int, data: Buffer) -> int:
    """``os.write`` to a pipe that reports a reader gone as BrokenPipeError only. Where SIGPIPE
    would kill the process, it is blocked in this thread around the write, and the one the write
    raised is consumed (unless one was pending before, which stays pending)."""
    if _SIGPIPE is None or not _sigpipe_kills():
        return os.write(fd, data)
    old = signal.pthread_sigmask(signal.SIG_BLOCK, (_SIGPIPE,))
    try:
        was_pending = _SIGPIPE in signal.sigpending()
        try:
            return os.write(fd, data)
        except BrokenPipeError:
            if not was_pending and _SIGPIPE in signal.sigpending():
                signal.sigwait((_SIGPIPE,))  # pending and blocked: returns at once
            raise
    finally:
        if _SIGPIPE not in old:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, (_SIGPIPE,))


_AGAIN = object()


def _ready(fd: int, events: int, timeout: float) -> bool:
    poller = select.poll()
    poller.register(fd, events)
    return bool(poller.poll(max(0.0, timeout) * 1000))


class _End(Closing):
    _label = "End"

    def __init__(self, fd: int, name: str) -> None:
        self._fd = fd
        self._name = name
        self._timeout: float | None = None
        self._blocking = True
        self._lock = threading.Lock()
        # Whether the descriptor is blocking because a child may share it (inheritable).
        self._shared = False
        if not WINDOWS:
            # O_NONBLOCK, as the Rust backend's ends: a ready pipe costs one call, and every wait
            # is a poll of at most one slice, after which a close() from another thread is seen.
            os.set_blocking(fd, False)
        os.set_inheritable(fd, False)

    # -- state
    @property
    def name(self) -> str:
        return self._name

    @property
    def closed(self) -> bool:
        return self._fd < 0

    def _check(self) -> int:
        if self._fd < 0:
            raise closed_error(self._name)
        return self._fd

    def fileno(self) -> int:
        return self._check()

    def settimeout(self, timeout: float | None) -> None:
        self._check()
        self._timeout = check_timeout(timeout)
        self._blocking = True

    def gettimeout(self) -> float | None:
        self._check()
        return 0.0 if not self._blocking else self._timeout

    def setblocking(self, flag: bool) -> None:
        self._check()
        if flag:
            self._timeout = None
            self._blocking = True
        else:
            self._blocking = False

    def getblocking(self) -> bool:
        self._check()
        return self._blocking

    def set_inheritable(self, inheritable: bool) -> None:
        fd = self._check()
        os.set_inheritable(fd, inheritable)
        if not WINDOWS:
            # O_NONBLOCK belongs to the open file description that a child would share: an
            # inheritable end is blocking, as C programs expect, and polls before each call.
            os.set_blocking(fd, inheritable)
            self._shared = inheritable

    def get_inheritable(self) -> bool:
        return os.get_inheritable(self._check())

    @property
    def capacity(self) -> int:
        fd = self._check()
        if not sys.platform.startswith("linux"):
            raise NotSupportedError("the pipe capacity is known on Linux only")
        import fcntl

        return fcntl.fcntl(fd, F_GETPIPE_SZ)

    def set_capacity(self, size: int) -> int:
        fd = self._check()
        if not sys.platform.startswith("linux"):
            raise NotSupportedError("the pipe capacity can be set on Linux only")
        import fcntl

        try:
            return fcntl.fcntl(fd, F_SETPIPE_SZ, size)
        except OSError as exc:
            raise OSError(exc.errno, exc.strerror, self._name) from None

    def detach(self) -> int:
        fd = self._check()
        self._fd = -1
        return fd

    def close(self) -> None:
        fd, self._fd = self._fd, -1
        if fd >= 0:
            os.close(fd)

    def __del__(self) -> None:
        if getattr(self, "_fd", -1) >= 0:
            self.close()

    def __repr__(self) -> str:
        if self._fd < 0:
            return f"<fastipc.{self._label} {self._name} closed>"
        return f"<fastipc.{self._label} {self._name} fd={self._fd}>"

    # -- the wait
    def _plain(self) -> bool:
        """Whether operations are plain blocking calls (blocking mode without a timeout)."""
        return self._blocking and self._timeout is None

    def _attempt(self, fd: int, events: int, op: Any) -> Any:
        """One try of ``op``: its result, or ``_AGAIN`` when it would block."""
        if self._shared and not _ready(fd, events, 0.0):
            return _AGAIN
        try:
            return op()
        except BlockingIOError:
            return _AGAIN
        except OSError:
            if self._fd < 0:
                raise closed_error(self._name) from None
            raise

    def _run(self, events: int, deadline: float | None, op: Any) -> Any:
        """Runs ``op`` (a read or write of the descriptor) within the deadline: tried first,
        then after waits for readiness of at most one slice, between which a close() from
        another thread ends it with the closed error."""
        fd = self._check()
        if WINDOWS:
            if self._plain():
                return op()
            raise NotSupportedError("pipes on Windows support blocking mode without timeout only")
        got = self._attempt(fd, events, op)
        if got is not _AGAIN:
            return got
        if not self._blocking:
            raise BlockingIOError(errno.EAGAIN, os.strerror(errno.EAGAIN), self._name)
        while True:
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                raise timed_out(self._name)
            _ready(fd, events, SLICE if left is None else min(left, SLICE))
            self._check()
            got = self._attempt(fd, events, op)
            if got is not _AGAIN:
                return got

    def _deadline(self) -> float | None:
        return deadline_of(self._timeout) if self._blocking else None


class PipeReader(_End):
    """The reading end of a pipe or FIFO."""

    _label = "PipeReader"

    def read(self, n: int = 65536) -> bytes:
        if n < 0:
            raise ValueError("negative byte count")
        n = min(n, READ_CHUNK)
        if n == 0:
            self._check()
            return b""
        return self._run(select.POLLIN, self._deadline(), lambda: os.read(self._fd, n))  # type: ignore[no-any-return]

    def readinto(self, buffer: Buffer, nbytes: int = 0) -> int:
        view = memoryview(buffer).cast("B")
        if nbytes < 0:
            raise ValueError("negative buffersize")
        if nbytes > len(view):
            raise ValueError("buffer too small for requested bytes")
        target = view[: nbytes or len(view)]
        if len(target) == 0:
            return 0
        return self._run(select.POLLIN, self._deadline(), lambda: os.readv(self._fd, [target]))  # type: ignore[no-any-return]

    def read_exact(self, n: int) -> bytes:
        if n < 0:
            raise ValueError("negative byte count")
        self._check()
        if n == 0:
            return b""
        deadline = self._deadline()
        with self._lock:
            # One read usually brings the whole message: no copy.
            first = self._run(select.POLLIN, deadline, lambda: os.read(self._fd, n))
            if len(first) == n:
                return first  # type: ignore[no-any-return]
            if not first:
                raise EOFError(f"end of file: every writer closed the pipe ({self._name})")
            out = bytearray(first)
            out.extend(bytes(n - len(first)))
            got = len(first)
            view = memoryview(out)
            while got < n:
                rest = view[got:]
                chunk = self._run(select.POLLIN, deadline, lambda r=rest: os.readv(self._fd, [r]))
                if chunk == 0:
                    if got == 0:
                        raise EOFError(f"end of file: every writer closed the pipe ({self._name})")
                    raise TruncatedMessage(
                        f"the pipe ended after {got} of {n} bytes ({self._name})", n, got
                    )
                got += chunk
            view.release()
        return bytes(out)

    def poll(self, timeout: float | None = 0.0) -> bool:
        """Waits in slices, between which a close() from another thread ends it."""
        fd = self._check()
        deadline = deadline_of(timeout)
        while True:
            left = None if deadline is None else deadline - time.monotonic()
            ready = _ready(fd, select.POLLIN, SLICE if left is None else min(left, SLICE))
            self._check()
            if ready:
                return True
            if left is not None and left <= SLICE:
                return False

    def available(self) -> int:
        fd = self._check()
        import array
        import fcntl
        import termios

        buf = array.array("i", [0])
        fcntl.ioctl(fd, termios.FIONREAD, buf, True)
        return int(buf[0])


class PipeWriter(_End):
    """The writing end of a pipe or FIFO."""

    _label = "PipeWriter"

    def _write_some(self, view: memoryview, deadline: float | None) -> int:
        if self._shared:
            # a blocking descriptor: after poll reports room, a write of at most PIPE_BUF
            # bytes does not block
            view = view[:PIPE_BUF]
        return self._run(select.POLLOUT, deadline, lambda: _write(self._fd, view))  # type: ignore[no-any-return]

    def write(self, data: Buffer) -> int:
        view = memoryview(data).cast("B")
        if len(view) == 0:
            self._check()
            return 0
        return self._write_some(view, self._deadline())

    def write_all(self, data: Buffer) -> None:
        self._check()
        view = memoryview(data).cast("B")
        deadline = self._deadline()
        with self._lock:
            sent = 0
            while sent < len(view):
                sent += self._write_some(view[sent:], deadline)


def pipe(*, capacity: int | None = None) -> tuple[PipeReader, PipeWriter]:
    """A new pipe ``(reader, writer)``, close-on-exec."""
    r, w = os.pipe()
    reader, writer = PipeReader(r, "pipe"), PipeWriter(w, "pipe")
    if capacity is not None:
        try:
            writer.set_capacity(capacity)
        except BaseException:
            reader.close()
            writer.close()
            raise
    return reader, writer


def _check_fifo(path: str) -> None:
    st = os.stat(path)
    if not stat.S_ISFIFO(st.st_mode):
        raise OSError(errno.EINVAL, "not a FIFO", path)


class FIFO:
    """A named pipe (FIFO) in the file system."""

    def __init__(
        self, path: str | os.PathLike[str], create: bool = False, *, mode: int = 0o600
    ) -> None:
        if WINDOWS or not hasattr(os, "mkfifo"):
            raise NotSupportedError("FIFOs do not exist on this platform")
        self._path = os.fspath(path)
        self._created = False
        if create:
            os.mkfifo(self._path, mode)
            try:
                os.chmod(self._path, mode)
            except BaseException:
                os.unlink(self._path)
                raise
            self._created = True

    @property
    def path(self) -> str:
        return self._path

    def open_reader(self, timeout: float | None = None) -> PipeReader:
        _check_fifo(self._path)
        deadline = deadline_of(timeout)
        result: list[int | BaseException] = []

        def opener() -> None:
            try:
                result.append(os.open(self._path, os.O_RDONLY | os.O_CLOEXEC))
            except BaseException as exc:
                result.append(exc)

        thread = threading.Thread(target=opener, name="fastipc-fifo-open", daemon=True)
        thread.start()
        try:
            while True:
                step = 0.05 if deadline is None else min(0.05, deadline - time.monotonic())
                if step <= 0:
                    raise timed_out(self._path)
                thread.join(step)
                if not thread.is_alive():
                    break
        except BaseException:
            self._cancel_reader(thread, result)
            raise
        got = result[0]
        if isinstance(got, BaseException):
            raise got
        return PipeReader(got, self._path)

    def _cancel_reader(self, thread: threading.Thread, result: list[int | BaseException]) -> None:
        for _ in range(2000):
            with contextlib.suppress(OSError):
                os.close(os.open(self._path, os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC))
            thread.join(0.001)
            if not thread.is_alive():
                break
        for got in result:
            if isinstance(got, int):
                os.close(got)

    def open_writer(self, timeout: float | None = None) -> PipeWriter:
        _check_fifo(self._path)

        def attempt() -> int | None:
            try:
                return os.open(self._path, os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
            except OSError as exc:
                if exc.errno == errno.ENXIO:
                    return None
                raise

        fd = backoff(deadline_of(timeout), self._path, attempt, first=1e-4, cap=0.005)
        return PipeWriter(fd, self._path)

    def unlink(self) -> None:
        self._created = False
        os.unlink(self._path)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._created:
            self._created = False
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self._path)

    def __repr__(self) -> str:
        return f"<fastipc.FIFO {self._path}>"
