"""``fastipc.aio.Connection``: a ``fastipc.Connection`` driven by the event loop."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Protocol, Self, cast

from .. import _handles
from .._errors import BufferTooShort
from .._types import Credentials
from ._closing import AsyncClosing
from ._ready import Readiness, Turns

if TYPE_CHECKING:
    from typing_extensions import Buffer

    from .. import Connection as BlockingConnection

__all__ = ["SCM_MAX_FD", "Connection"]

#: The most descriptors one message may carry (Linux's ``SCM_MAX_FD``).
SCM_MAX_FD = 253
_SENT_NOTHING, _SENT_PART, _SENT_ALL = 0, 1, 2


class _Raw(Protocol):
    """The non-blocking entry points both backends' ``Connection`` has for this module."""

    address: str
    kind: str
    closed: bool
    max_message: int

    def _aio_wrap(self, on: bool) -> None: ...
    def _aio_try_send(
        self,
        buf: Buffer,
        offset: int = 0,
        size: int | None = None,
        fds: Iterable[object] | None = None,
    ) -> int: ...
    def _aio_send_more(self) -> bool: ...
    def _aio_try_recv(
        self,
        maxlength: int | None = None,
        maxfds: int | None = None,
        readable: Readiness | None = None,
    ) -> Any: ...
    def fileno(self) -> int: ...
    def peer_credentials(self) -> Credentials: ...
    def peer_pidfd(self) -> int: ...
    def close(self) -> None: ...


class Connection(AsyncClosing):
    """A connected stream or seqpacket socket whose sends and receives are awaited.

    Made by :func:`fastipc.aio.connect`, :meth:`Listener.accept`, :func:`fastipc.aio.socketpair`
    or :meth:`from_connection`. The arguments, errors and limits are those of
    :class:`fastipc.Connection`; a message is received whole or not at all (a cancelled
    ``recv_bytes`` consumes nothing), and a cancelled ``send_bytes`` whose frame had started
    finishes it in the background (the next send waits for it) while one that had not started
    sends nothing. Concurrent senders and receivers take turns, whole messages at a time.
    """

    __slots__ = (
        "_background",
        "_conn",
        "_fd",
        "_raw",
        "_readable",
        "_receivers",
        "_send_lock",
        "_senders",
        "_writable",
    )

    def __init__(self, conn: BlockingConnection) -> None:
        raw = cast(_Raw, conn)
        fd = raw.fileno()
        raw._aio_wrap(True)
        self._conn: BlockingConnection | None = conn
        self._raw = raw
        self._fd = fd
        self._readable = Readiness(fd, write=False)
        self._writable = Readiness(fd, write=True)
        self._receivers = Turns()
        self._send_lock = asyncio.Lock()
        # Sends in progress past their first attempt (holding or waiting for the send lock).
        self._senders = 0
        self._background: asyncio.Task[None] | None = None

    @classmethod
    def from_connection(cls, conn: BlockingConnection) -> Self:
        """Wraps a connection made by the blocking API. Its blocking calls raise
        ``RuntimeError`` from now until :meth:`detach` gives it back."""
        return cls(conn)

    def detach(self) -> BlockingConnection:
        """Gives the blocking connection back (its blocking calls work again; a message part way
        in is continued by its next receive); this object is closed. ``RuntimeError`` while a
        frame is still being sent."""
        conn = self._conn
        if conn is None:
            raise _closed(self._raw.address)
        self._raw._aio_wrap(False)  # RuntimeError while a frame is still being sent
        self._stop_watching()
        self._conn = None
        return conn

    # -- properties ---------------------------------------------------------------------------

    @property
    def address(self) -> str:
        return self._raw.address

    @property
    def kind(self) -> str:
        return self._raw.kind

    @property
    def closed(self) -> bool:
        return self._conn is None or self._raw.closed

    @property
    def max_message(self) -> int:
        return self._raw.max_message

    def fileno(self) -> int:
        return self._raw.fileno()

    def peer_credentials(self) -> Credentials:
        """The credentials of the peer process (no waiting: taken when it connected)."""
        return self._raw.peer_credentials()

    def peer_pidfd(self) -> int:
        return self._raw.peer_pidfd()

    def __repr__(self) -> str:
        state = "closed" if self.closed else f"fd={self._fd}"
        return f"<fastipc.aio.Connection {self._raw.address} {state}>"

    # -- sending ------------------------------------------------------------------------------

    async def send_bytes(
        self,
        buf: Buffer,
        offset: int = 0,
        size: int | None = None,
        *,
        fds: Iterable[object] | None = None,
    ) -> None:
        """Sends one message (``buf[offset:offset+size]``) with ``fds`` attached, waiting
        without blocking the loop while the socket's buffer is full."""
        if self._senders == 0 and self._background is None:
            # Nobody else sending: one attempt first, which is all a message usually needs.
            state = self._raw._aio_try_send(buf, offset, size, fds)
            if state != _SENT_ALL:
                await self._send_locked(state, buf, offset, size, fds)
            return
        await self._send_locked(None, buf, offset, size, fds)

    async def _send_locked(
        self,
        state: int | None,
        buf: Buffer,
        offset: int,
        size: int | None,
        fds: Iterable[object] | None,
    ) -> None:
        """The rest of a send, under the send lock: after a first attempt that did ``state``
        (made with nobody else sending, so nobody holds the lock or waits for it: it is taken at
        once, before anyone else can start), or from the start (``state`` None) behind other
        senders or a cancelled send's frame finishing in the background."""
        self._senders += 1
        try:
            async with self._send_lock:
                if state is None:
                    if self._background is not None:
                        await self._after_background()
                    state = self._raw._aio_try_send(buf, offset, size, fds)
                await self._send_rest(state, buf, offset, size, fds)
        finally:
            self._senders -= 1

    async def _send_rest(
        self,
        state: int,
        buf: Buffer,
        offset: int,
        size: int | None,
        fds: Iterable[object] | None,
    ) -> None:
        """Finishes a send whose first attempt did ``state`` (the send lock held)."""
        raw = self._raw
        while state == _SENT_NOTHING:
            # Cancelled here, nothing of this message went.
            await self._writable.wait()
            state = raw._aio_try_send(buf, offset, size, fds)
        if state == _SENT_PART:
            await self._finish_frame()

    async def _finish_frame(self) -> None:
        raw = self._raw
        while not raw._aio_send_more():
            try:
                await self._writable.wait()
            except asyncio.CancelledError:
                # The frame has started: it is finished in the background, and the next send
                # waits for that.
                self._background = asyncio.get_running_loop().create_task(self._finish_rest())
                raise

    async def _finish_rest(self) -> None:
        raw = self._raw
        with contextlib.suppress(OSError, RuntimeError):
            # A broken connection fails the next send or receive with its own error.
            while not raw._aio_send_more():
                await self._writable.wait()

    async def _after_background(self) -> None:
        task = self._background
        if task is not None:
            # Shielded: a sender cancelled while it waits does not stop the frame.
            await asyncio.shield(task)
            if self._background is task:
                self._background = None

    async def send(self, obj: object) -> None:
        """Sends a picklable object; sockets, files and connections in it travel as
        descriptors (as :meth:`fastipc.Connection.send`)."""
        data, fds = _handles.dumps(obj)
        await self.send_bytes(data, fds=fds or None)

    # -- receiving ----------------------------------------------------------------------------

    async def _receive(self, maxlength: int | None, maxfds: int | None, tried: bool = False) -> Any:
        """A receive; ``tried``: its first attempt was just made (by :meth:`recv_bytes`, with no
        other task receiving), so it starts by waiting."""
        turns = self._receivers
        if not turns.take():
            await turns.wait()
            tried = False
        try:
            # A message already there needs no wait; on an idle loop, it is waited for in the
            # loop's stead (Readiness.idle). Cancelled while waiting, nothing was consumed: what
            # arrived of a message stays in the connection for the next receive.
            raw = self._raw
            readable = self._readable
            woken = tried
            if tried:
                await readable.wait()
            while True:
                # Woken by the loop, the message is most likely there: one attempt without the
                # idle check (which would cost its reads of the loop, and take the descriptor
                # off the loop's watch for the next wait to put back), then with it.
                got = raw._aio_try_recv(maxlength, maxfds, None if woken else readable)
                if got is not None:
                    return got
                if woken:
                    woken = False
                    continue
                await readable.wait()
                woken = True
        finally:
            turns.done()

    async def recv_bytes(self, maxlength: int | None = None) -> bytes:
        """Receives one whole message. ``EOFError`` at the end of the stream,
        ``MessageTooLarge`` over ``maxlength`` or the connection's ``max_message``."""
        if self._receivers.busy:
            data: bytes = await self._receive(maxlength, None)
            return data
        # No other task receiving: the first attempt here (see _receive).
        got: bytes | None = self._raw._aio_try_recv(maxlength, None, self._readable)
        if got is None:
            got = await self._receive(maxlength, None, True)
        return got

    async def recv_bytes_and_fds(
        self, maxlength: int | None = None, *, maxfds: int = SCM_MAX_FD
    ) -> tuple[bytes, list[int]]:
        """One message and the descriptors sent with it (the caller's to close)."""
        if maxfds < 0:
            raise OverflowError("can't convert negative int to unsigned")
        got: tuple[bytes, list[int]] = await self._receive(maxlength, maxfds)
        return got

    async def recv_bytes_into(self, buf: Buffer, offset: int = 0) -> int:
        """One message into ``buf`` at ``offset``; its length. ``BufferTooShort`` (the message
        in ``args[0]``, consumed) if it does not fit."""
        view = memoryview(buf)
        if view.readonly:
            raise TypeError("recv_bytes_into needs a writable buffer")
        if view.ndim != 1 or view.format not in ("B", "b", "c"):
            view = view.cast("B")
        if offset < 0:
            raise ValueError("negative offset")
        if offset > len(view):
            raise ValueError("offset too large")
        data = await self.recv_bytes()
        size = len(data)
        if size > len(view) - offset:
            raise BufferTooShort(data)
        view[offset : offset + size] = data
        return size

    async def recv(self) -> Any:
        """Receives a pickled object (trusted peers only, as :meth:`fastipc.Connection.recv`)."""
        data, fds = await self.recv_bytes_and_fds()
        return _handles.loads(data, fds)

    # -- closing ------------------------------------------------------------------------------

    def _stop_watching(self) -> None:
        self._readable.close()
        self._writable.close()

    def __del__(self) -> None:
        # Dropped without close(): the loop must stop watching a descriptor that is about to
        # be closed (and whose number may be reused).
        with contextlib.suppress(Exception):
            self._stop_watching()

    def close(self) -> None:
        """Closes the connection now (a frame still going in the background is cut short).
        Idempotent."""
        conn, self._conn = self._conn, None
        task, self._background = self._background, None
        if task is not None:
            task.cancel()
        self._stop_watching()
        if conn is not None:
            self._raw.close()

    async def aclose(self) -> None:
        """Finishes a frame still going in the background, then closes."""
        if self._background is not None and self._conn is not None:
            with contextlib.suppress(Exception):
                await self._after_background()
        self.close()


def _closed(what: str) -> OSError:
    import errno

    return OSError(errno.EBADF, "the object is closed", what)
