"""Awaited pipe ends and FIFOs of ``fastipc.aio``.

The ends hold a non-blocking descriptor and call ``read``/``write`` once it is ready (one
system call each). A ``FIFO``'s read end is opened without waiting for a writer
(``O_NONBLOCK``): its reads wait until a writer has written, and it reads as ended (``b""``)
only once a writer has come and gone. Its write end is opened as soon as a reader has the FIFO
open, retried on the loop's timer meanwhile (there is nothing to watch before a reader comes).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import select
import stat
import time
from types import TracebackType
from typing import TYPE_CHECKING, Self

import fastipc

from .._errors import TruncatedMessage
from ._closing import AsyncClosing
from ._ready import Readiness, wait_idle

if TYPE_CHECKING:
    from typing_extensions import Buffer

__all__ = ["FIFO", "PipeReader", "PipeWriter", "pipe"]

#: The most one read returns (as ``fastipc.PipeReader.read``).
_MAX_READ = 1 << 20
_WOULD_WAIT = (BlockingIOError, InterruptedError)


class _End(AsyncClosing):
    __slots__ = ("_fd", "_name", "_ready")

    def __init__(self, fd: int, name: str, *, write: bool) -> None:
        os.set_blocking(fd, False)
        self._fd = fd
        self._name = name
        self._ready = Readiness(fd, write=write)

    @property
    def name(self) -> str:
        """``"pipe"``, or the FIFO's path."""
        return self._name

    @property
    def closed(self) -> bool:
        return self._fd < 0

    def fileno(self) -> int:
        self._check()
        return self._fd

    def _check(self) -> None:
        if self._fd < 0:
            raise OSError(errno.EBADF, "the object is closed", self._name)

    def detach(self) -> int:
        """Gives up the descriptor (non-blocking) without closing it, and returns it."""
        self._check()
        self._ready.close()
        fd, self._fd = self._fd, -1
        return fd

    def close(self) -> None:
        """Closes the end. Idempotent."""
        if self._fd < 0:
            return
        self._ready.close()
        fd, self._fd = self._fd, -1
        os.close(fd)

    def __repr__(self) -> str:
        state = "closed" if self._fd < 0 else f"fd={self._fd}"
        return f"<fastipc.aio.{type(self).__name__} {self._name} {state}>"

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.close()


class PipeReader(_End):
    """The reading end of a pipe or FIFO, awaited. A cancelled read takes nothing; the bytes a
    cancelled :meth:`read_exact` had gathered are the next read's."""

    __slots__ = ("_held", "_unconnected")

    def __init__(self, fd: int, name: str = "pipe", *, unconnected: bool = False) -> None:
        super().__init__(fd, name, write=False)
        self._held = bytearray()
        # A FIFO opened before any writer: "no writer" is not yet the end of file.
        self._unconnected = unconnected

    @classmethod
    def from_reader(cls, reader: fastipc.PipeReader) -> Self:
        """Takes the descriptor of a blocking reader (which is then detached)."""
        name = reader.name
        return cls(reader.detach(), name)

    def _read(self, n: int) -> bytes | None:
        """One read; None when it would wait."""
        self._check()
        if self._held:
            data = bytes(self._held[:n])
            del self._held[:n]
            return data
        try:
            data = os.read(self._fd, min(n, _MAX_READ))
        except _WOULD_WAIT:
            return None
        if data:
            self._unconnected = False
        elif self._unconnected and not _hung_up(self._fd):
            return None
        return data

    async def read(self, n: int = 65536) -> bytes:
        """At most ``n`` bytes (1 MiB per call) once some are there; ``b""`` at end of file."""
        if n < 0:
            raise ValueError("negative size")
        if n == 0:
            self._check()
            return b""
        idled = False
        while (data := self._read(n)) is None:
            idled = await self._wait(idled)
        return data

    async def _wait(self, idled: bool) -> bool:
        """Waits for the pipe to be readable: in an idle loop's stead once per step of the task
        (unless the last wait, ``idled``, was that), then in the loop. Whether it waited idle."""
        if not idled and wait_idle(self._ready):
            return True
        await self._ready.wait()
        return False

    async def readinto(self, buffer: Buffer, nbytes: int = 0) -> int:
        """Reads into ``buffer`` (at most ``nbytes``, default its length); 0 at end of file."""
        view = memoryview(buffer).cast("B")
        if view.readonly:
            raise TypeError("readinto needs a writable buffer")
        if nbytes < 0:
            raise ValueError("negative buffersize in readinto")
        n = nbytes or len(view)
        if n > len(view):
            raise ValueError("buffer too small for requested bytes")
        data = await self.read(n)
        view[: len(data)] = data
        return len(data)

    async def read_exact(self, n: int) -> bytes:
        """Exactly ``n`` bytes; ``EOFError`` if the pipe ends before any, ``TruncatedMessage``
        part way."""
        if n < 0:
            raise ValueError("negative size")
        self._check()
        idled = False
        while len(self._held) < n:
            try:
                data = os.read(self._fd, min(n - len(self._held), _MAX_READ))
            except _WOULD_WAIT:
                data = None
            if data is None or (not data and self._unconnected and not _hung_up(self._fd)):
                idled = await self._wait(idled)
                continue
            if not data:
                got, self._held = len(self._held), bytearray()
                if got == 0:
                    raise EOFError(f"end of file ({self._name})")
                raise TruncatedMessage(
                    f"end of file after {got} of {n} bytes ({self._name})", n, got
                )
            self._unconnected = False
            self._held += data
        out = bytes(self._held[:n])
        del self._held[:n]
        return out


class PipeWriter(_End):
    """The writing end of a pipe or FIFO, awaited. ``BrokenPipeError`` once every reader is
    gone. A cancelled :meth:`write_all` that had written some bytes writes the rest in the
    background (the next write waits for it); one that had written none writes nothing."""

    __slots__ = ("_background",)

    def __init__(self, fd: int, name: str = "pipe") -> None:
        super().__init__(fd, name, write=True)
        self._background: asyncio.Task[None] | None = None

    @classmethod
    def from_writer(cls, writer: fastipc.PipeWriter) -> Self:
        """Takes the descriptor of a blocking writer (which is then detached)."""
        name = writer.name
        return cls(writer.detach(), name)

    async def _after_background(self) -> None:
        task = self._background
        if task is not None:
            await asyncio.shield(task)
            if self._background is task:
                self._background = None

    def _write(self, view: memoryview) -> int | None:
        self._check()
        try:
            return os.write(self._fd, view)
        except _WOULD_WAIT:
            return None

    async def write(self, data: Buffer) -> int:
        """Writes some of ``data`` once the pipe has room; how many bytes."""
        await self._after_background()
        view = memoryview(data).cast("B")
        while (n := self._write(view)) is None:
            await self._ready.wait()
        return n

    async def write_all(self, data: Buffer) -> None:
        """Writes all of ``data``."""
        await self._after_background()
        view = memoryview(data).cast("B")
        while view:
            n = self._write(view)
            if n:
                view = view[n:]
                continue
            try:
                await self._ready.wait()
            except asyncio.CancelledError:
                if len(view) < len(memoryview(data).cast("B")):
                    rest = bytes(view)
                    self._background = asyncio.get_running_loop().create_task(
                        self._write_rest(rest)
                    )
                raise

    async def _write_rest(self, rest: bytes) -> None:
        view = memoryview(rest)
        with contextlib.suppress(OSError):
            while view:
                n = self._write(view)
                if n:
                    view = view[n:]
                else:
                    await self._ready.wait()

    def close(self) -> None:
        task, self._background = self._background, None
        if task is not None:
            task.cancel()
        super().close()


def _hung_up(fd: int) -> bool:
    """Whether a writer came and went (POLLHUP), for a FIFO opened before any writer."""
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    return any(ev & select.POLLHUP for _, ev in poller.poll(0))


def pipe(*, capacity: int | None = None) -> tuple[PipeReader, PipeWriter]:
    """A new pipe ``(reader, writer)`` (as :func:`fastipc.pipe`), both ends awaited."""
    reader, writer = fastipc.pipe(capacity=capacity)
    return PipeReader.from_reader(reader), PipeWriter.from_writer(writer)


class FIFO:
    """A named pipe whose ends open without blocking the loop. ``create=True`` makes it
    (exclusively, with exactly ``mode``), as :class:`fastipc.FIFO`."""

    __slots__ = ("_fifo",)

    def __init__(self, path: str | os.PathLike[str], create: bool = False, *, mode: int = 0o600):
        self._fifo = fastipc.FIFO(path, create, mode=mode)

    @property
    def path(self) -> str:
        return self._fifo.path

    def _open(self, flags: int) -> int:
        fd = os.open(self.path, flags | os.O_NONBLOCK | os.O_CLOEXEC)
        if not stat.S_ISFIFO(os.fstat(fd).st_mode):
            os.close(fd)
            raise OSError(errno.EINVAL, "not a FIFO", self.path)
        return fd

    async def open_reader(self) -> PipeReader:
        """The read end, opened at once (the non-blocking open): its reads wait until a writer
        has written, and it reads as ended only once a writer has come and gone."""
        return PipeReader(self._open(os.O_RDONLY), self.path, unconnected=True)

    async def open_writer(self, timeout: float | None = None) -> PipeWriter:
        """The write end, once a reader has the FIFO open (``TimeoutError`` after ``timeout``
        seconds). Retried on the loop's timer every 1-5 ms meanwhile."""
        deadline = None if timeout is None else time.monotonic() + timeout
        delay = 0.001
        while True:
            try:
                return PipeWriter(self._open(os.O_WRONLY), self.path)
            except OSError as e:
                if e.errno != errno.ENXIO:
                    raise
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(errno.ETIMEDOUT, "timed out", self.path)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.005)

    def unlink(self) -> None:
        self._fifo.unlink()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._fifo.__exit__(exc_type, exc, tb)
