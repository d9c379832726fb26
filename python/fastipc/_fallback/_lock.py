"""``Lock`` of the fallback: not available.

A crash-robust lock needs a robust process-shared mutex placed in shared memory, which Python's
standard library cannot make; it is a feature of the Rust extension (Linux, FreeBSD, Android).
"""

from __future__ import annotations

from typing import NoReturn

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


def _unsupported() -> NoReturn:
    raise NotSupportedError(
        "fastipc.Lock needs robust process-shared mutexes, which only the Rust extension provides "
        "(on Linux, FreeBSD and Android)"
    )
