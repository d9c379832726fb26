"""``fastipc.aio.DatagramSocket``: a ``fastipc.DatagramSocket`` driven by the event loop."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from typing import TYPE_CHECKING, Literal, Self, overload

from .._types import Credentials
from ._closing import AsyncClosing
from ._ready import Readiness, attempt

if TYPE_CHECKING:
    from typing_extensions import Buffer

    from .. import DatagramSocket as BlockingDatagram
    from .._fastipc import Address

__all__ = ["DatagramSocket"]


class DatagramSocket(AsyncClosing):
    """A datagram socket whose sends and receives are awaited: each datagram goes or arrives
    whole in one non-blocking call once the socket is ready (a cancelled receive takes none).
    The arguments and errors are those of :class:`fastipc.DatagramSocket`. Wrapping sets the
    socket's timeout to 0; :meth:`detach` restores it."""

    __slots__ = ("_readable", "_saved", "_sock", "_writable")

    def __init__(self, sock: BlockingDatagram) -> None:
        self._sock = sock
        self._saved = sock.gettimeout()
        sock.settimeout(0)
        fd = sock.fileno()
        self._readable = Readiness(fd, write=False)
        self._writable = Readiness(fd, write=True)

    @classmethod
    def from_socket(cls, sock: BlockingDatagram) -> Self:
        """Wraps a socket made by the blocking API (do not use it meanwhile)."""
        return cls(sock)

    def detach(self) -> BlockingDatagram:
        """Gives the blocking socket back, with its timeout as it was."""
        self._readable.close()
        self._writable.close()
        self._sock.settimeout(self._saved)
        return self._sock

    @property
    def address(self) -> str | None:
        return self._sock.address

    @property
    def path(self) -> str | None:
        return self._sock.path

    @property
    def peer(self) -> str | None:
        return self._sock.peer

    @property
    def kind(self) -> str:
        return self._sock.kind

    @property
    def closed(self) -> bool:
        return self._sock.closed

    def fileno(self) -> int:
        return self._sock.fileno()

    def __repr__(self) -> str:
        return f"<fastipc.aio.DatagramSocket {self._sock!r}>"

    def connect(self, address: Address) -> None:
        """Sets the default destination (no waiting)."""
        self._sock.connect(address)

    async def sendto(
        self,
        data: Buffer,
        address: Address,
        *,
        fds: Iterable[object] | None = None,
        credentials: bool = False,
    ) -> int:
        """Sends one datagram to ``address``; waits while the socket's buffer is full."""
        sock = self._sock
        return await attempt(
            lambda: sock.sendto(data, address, fds=fds, credentials=credentials),  # type: ignore[arg-type]
            self._writable,
        )

    async def send(
        self, data: Buffer, *, fds: Iterable[object] | None = None, credentials: bool = False
    ) -> int:
        """Sends one datagram to the connected address."""
        sock = self._sock
        return await attempt(
            lambda: sock.send(data, fds=fds, credentials=credentials),  # type: ignore[arg-type]
            self._writable,
        )

    @overload
    async def recvfrom(
        self, bufsize: int, *, credentials: Literal[False] = False
    ) -> tuple[bytes, str | None]: ...
    @overload
    async def recvfrom(
        self, bufsize: int, *, credentials: Literal[True]
    ) -> tuple[bytes, str | None, Credentials | None]: ...
    async def recvfrom(
        self, bufsize: int, *, credentials: bool = False
    ) -> tuple[bytes, str | None] | tuple[bytes, str | None, Credentials | None]:
        """One datagram (at most ``bufsize`` bytes) and its sender's address."""
        sock = self._sock
        if credentials:
            return await attempt(lambda: sock.recvfrom(bufsize, credentials=True), self._readable)
        return await attempt(lambda: sock.recvfrom(bufsize), self._readable)

    async def recv(self, bufsize: int) -> bytes:
        """One datagram (at most ``bufsize`` bytes)."""
        sock = self._sock
        return await attempt(lambda: sock.recv(bufsize), self._readable)

    async def recv_fds(self, bufsize: int, maxfds: int) -> tuple[bytes, list[int], str | None]:
        """One datagram with the descriptors sent with it."""
        sock = self._sock
        return await attempt(lambda: sock.recv_fds(bufsize, maxfds), self._readable)

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self._readable.close()
            self._writable.close()

    def close(self) -> None:
        """Closes the socket. Idempotent."""
        self._readable.close()
        self._writable.close()
        self._sock.close()
