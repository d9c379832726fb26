"""``listen``, ``connect`` and ``socketpair`` of ``fastipc.aio``, and the awaited Listener."""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Literal, Self, overload

import fastipc

from .. import _auth
from ._auth import client_handshake, server_handshake
from ._closing import AsyncClosing
from ._conn import Connection
from ._dgram import DatagramSocket
from ._ready import Readiness

if TYPE_CHECKING:
    from .._fastipc import Address

__all__ = ["Listener", "connect", "listen", "socketpair"]

StreamKind = Literal["stream", "seqpacket"]


class Listener(AsyncClosing):
    """A listening socket whose ``accept`` is awaited: ``await listener.accept()``,
    ``async for conn in listener``, ``async with``. With ``authkey``, each peer's handshake
    runs on the loop, bounded by ``handshake_timeout``; a peer that fails it is closed and
    counted in :attr:`refused`, and ``accept`` waits for the next one."""

    __slots__ = ("_auth", "_listener", "_readable", "_refused")

    def __init__(self, listener: fastipc.Listener, auth: tuple[bytes, float] | None = None) -> None:
        self._listener = listener
        self._auth = auth
        self._refused = 0
        self._readable = Readiness(listener.fileno(), write=False)

    @property
    def address(self) -> str:
        """The address to give to :func:`connect`."""
        return self._listener.address

    @property
    def path(self) -> str | None:
        return self._listener.path

    @property
    def kind(self) -> str:
        return self._listener.kind

    @property
    def closed(self) -> bool:
        return self._listener.closed

    @property
    def max_message(self) -> int:
        return self._listener.max_message

    @property
    def refused(self) -> int:
        """Connections refused by ``allow_uids``/``allow_gids`` or the handshake."""
        return self._listener.refused + self._refused

    def fileno(self) -> int:
        return self._listener.fileno()

    def __repr__(self) -> str:
        return f"<fastipc.aio.Listener {self._listener!r}>"

    async def accept(self, timeout: float | None = None) -> Connection:
        """The next connection (authenticated when the listener has an ``authkey``).
        ``TimeoutError`` after ``timeout`` seconds; ``OSError(EBADF)`` once closed."""
        fastipc_timeout = _check_timeout(timeout)
        deadline = None if fastipc_timeout is None else time.monotonic() + fastipc_timeout
        while True:
            conn = await self._next(deadline)
            if self._auth is None:
                return conn
            key, handshake_timeout = self._auth
            left = handshake_timeout
            if deadline is not None:
                left = min(left, max(deadline - time.monotonic(), 0.0))
            if await server_handshake(conn, key, left):
                return conn
            self._refused += 1

    async def _next(self, deadline: float | None) -> Connection:
        import asyncio

        while True:
            try:
                return Connection(self._listener.accept(timeout=0))
            except TimeoutError:
                if deadline is not None and time.monotonic() >= deadline:
                    raise
            left = None if deadline is None else max(deadline - time.monotonic(), 0.0)
            try:
                async with asyncio.timeout(left):
                    await self._readable.wait()
            except TimeoutError:
                # The deadline: one last attempt decides.
                return Connection(self._listener.accept(timeout=0))

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> Connection:
        """The next connection; the iteration ends when the listener is closed."""
        if self._listener.closed:
            raise StopAsyncIteration
        try:
            return await self.accept()
        except OSError:
            if self._listener.closed:
                raise StopAsyncIteration from None
            raise

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self._readable.close()

    def close(self) -> None:
        """Closes the listener (and unlinks its socket file, as :meth:`fastipc.Listener.close`).
        Idempotent."""
        self._readable.close()
        self._listener.close()


def _check_timeout(timeout: float | None) -> float | None:
    if timeout is None:
        return None
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
        raise TypeError("timeout must be None or a number of seconds")
    if math.isnan(timeout) or timeout < 0:
        raise ValueError(f"timeout must be None or a non-negative number of seconds, not {timeout}")
    return float(timeout)


@overload
async def listen(
    address: Address,
    *,
    kind: StreamKind = "stream",
    backlog: int = 128,
    socket_dir: str | None = None,
    max_message: int = fastipc.DEFAULT_MAX_MESSAGE,
    allow_uids: Iterable[int] | None = None,
    allow_gids: Iterable[int] | None = None,
    authkey: bytes | None = None,
    handshake_timeout: float = 1.0,
    allow_unauthenticated: bool = False,
) -> Listener: ...
@overload
async def listen(
    address: Address,
    *,
    kind: Literal["datagram"],
    backlog: int = 128,
    socket_dir: str | None = None,
    max_message: int = fastipc.DEFAULT_MAX_MESSAGE,
    allow_uids: Iterable[int] | None = None,
    allow_gids: Iterable[int] | None = None,
    authkey: bytes | None = None,
    handshake_timeout: float = 1.0,
    allow_unauthenticated: bool = False,
) -> DatagramSocket: ...
async def listen(
    address: Address,
    *,
    kind: str = "stream",
    backlog: int = 128,
    socket_dir: str | None = None,
    max_message: int = fastipc.DEFAULT_MAX_MESSAGE,
    allow_uids: Iterable[int] | None = None,
    allow_gids: Iterable[int] | None = None,
    authkey: bytes | None = None,
    handshake_timeout: float = 1.0,
    allow_unauthenticated: bool = False,
) -> Listener | DatagramSocket:
    """:func:`fastipc.listen`, awaited: the same arguments and errors. A stream or seqpacket
    kind gives a :class:`Listener`, ``"datagram"`` a :class:`DatagramSocket`."""
    auth = _auth.options(kind, authkey, handshake_timeout)
    made = fastipc.listen(  # type: ignore[call-overload]
        address,
        kind=kind,
        backlog=backlog,
        socket_dir=socket_dir,
        max_message=max_message,
        allow_uids=allow_uids,
        allow_gids=allow_gids,
        # The handshake runs here, on the loop: the blocking listener accepts plain sockets.
        authkey=None,
        allow_unauthenticated=allow_unauthenticated or auth is not None,
    )
    if isinstance(made, fastipc.DatagramSocket):
        return DatagramSocket(made)
    return Listener(made, auth)


@overload
async def connect(
    address: Address,
    *,
    kind: StreamKind = "stream",
    timeout: float | None = None,
    socket_dir: str | None = None,
    max_message: int = fastipc.DEFAULT_MAX_MESSAGE,
    authkey: bytes | None = None,
) -> Connection: ...
@overload
async def connect(
    address: Address,
    *,
    kind: Literal["datagram"],
    timeout: float | None = None,
    socket_dir: str | None = None,
    max_message: int = fastipc.DEFAULT_MAX_MESSAGE,
    authkey: bytes | None = None,
) -> DatagramSocket: ...
async def connect(
    address: Address,
    *,
    kind: str = "stream",
    timeout: float | None = None,
    socket_dir: str | None = None,
    max_message: int = fastipc.DEFAULT_MAX_MESSAGE,
    authkey: bytes | None = None,
) -> Connection | DatagramSocket:
    """:func:`fastipc.connect`, awaited: the same arguments and errors. The connection is
    made by the blocking ``connect`` (immediate on Unix sockets; one round trip on TCP); the
    ``authkey`` handshake runs on the loop, within ``timeout``."""
    key = None if authkey is None else _auth.options(kind, authkey, 1.0)
    made = fastipc.connect(  # type: ignore[call-overload]
        address,
        kind=kind,
        timeout=timeout,
        socket_dir=socket_dir,
        max_message=max_message,
    )
    if isinstance(made, fastipc.DatagramSocket):
        return DatagramSocket(made)
    conn = Connection(made)
    if key is not None:
        await client_handshake(conn, key[0], timeout)
    return conn


@overload
def socketpair(kind: StreamKind = "stream") -> tuple[Connection, Connection]: ...
@overload
def socketpair(kind: Literal["datagram"]) -> tuple[DatagramSocket, DatagramSocket]: ...
def socketpair(
    kind: str = "stream",
) -> tuple[Connection, Connection] | tuple[DatagramSocket, DatagramSocket]:
    """:func:`fastipc.socketpair`, both ends awaited."""
    a, b = fastipc.socketpair(kind)  # type: ignore[call-overload]
    if isinstance(a, fastipc.DatagramSocket):
        return DatagramSocket(a), DatagramSocket(b)
    return Connection(a), Connection(b)
