"""``Lock`` of the fallback: not available.

A crash-robust lock needs a robust process-shared mutex placed in shared memory, which Python's
standard library cannot make; it is a feature of the Rust extension (Linux, FreeBSD, Android).
The class still has the whole API of the extension's ``Lock`` (no instance can exist), so that
both backends show the same names.
"""

from __future__ import annotations

from types import TracebackType
from typing import NoReturn, Self

from .._errors import NotSupportedError

__all__ = ["Lock"]


class Lock:
    """Raises ``NotSupportedError``: crash-robust locks need the Rust extension."""

    SIZE = 128

    def __init__(self, name: str | None = None, create: bool = False, *, mode: int = 0o600) -> None:
        _unsupported()

    @classmethod
    def in_buffer(cls, shm: object, offset: int = 0, *, init: bool = False) -> Lock:
        _unsupported()

    def acquire(self, blocking: bool = True, timeout: float | None = None) -> bool:
        _unsupported()

    def release(self) -> None:
        _unsupported()

    def locked(self) -> bool:
        _unsupported()

    @property
    def recovered(self) -> bool:
        _unsupported()

    @property
    def name(self) -> str:
        _unsupported()

    @property
    def closed(self) -> bool:
        _unsupported()

    def unlink(self) -> None:
        _unsupported()

    def close(self) -> None:
        _unsupported()

    def __enter__(self) -> Self:
        _unsupported()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        _unsupported()


def _unsupported() -> NoReturn:
    raise NotSupportedError(
        "fastipc.Lock needs robust process-shared mutexes, which only the Rust extension provides "
        "(on Linux, FreeBSD and Android)"
    )
