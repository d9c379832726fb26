"""The shape shared by the fallback's closable objects: the context-manager protocol, and the one
error every operation on a closed object raises."""

from __future__ import annotations

import contextlib
import errno
import socket
from types import TracebackType
from typing import TYPE_CHECKING, Self

if TYPE_CHECKING:
    from ._sockdir import UnixBinding

__all__ = ["BoundSocket", "Closing", "closed_error"]


def closed_error(what: str | None) -> OSError:
    """``OSError(EBADF)`` for an operation on a closed object, naming its address or name ``what``
    (the Rust backend raises the same error)."""
    return OSError(errno.EBADF, "the object is closed", what)


class Closing:
    """``with obj:`` closes ``obj`` on the way out (``close`` is idempotent in every subclass)."""

    __slots__ = ()

    def close(self) -> None:  # pragma: no cover - every subclass defines it
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class BoundSocket(Closing):
    """A socket that may own a path in the socket directory (listeners, bound datagram sockets):
    closing closes the socket, then gives the path back; collection closes quietly."""

    __slots__ = ("_binding", "_closed", "_sock")

    _sock: socket.socket
    _binding: UnixBinding | None
    _closed: bool

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self._sock.close()
        finally:
            binding, self._binding = self._binding, None
            if binding is not None:
                binding.release()

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.close()
