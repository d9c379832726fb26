"""The one shape of fastipc.aio's closable objects: ``close()`` (idempotent), ``await aclose()``,
and ``with`` / ``async with`` blocks that close on exit."""

from __future__ import annotations

from types import TracebackType
from typing import Self

__all__ = ["AsyncClosing"]


class AsyncClosing:
    """``with`` and ``async with`` close the object; ``aclose()`` is ``close()`` unless the object
    has work to finish first (a connection's frame still going in the background)."""

    __slots__ = ()

    def close(self) -> None:
        raise NotImplementedError

    async def aclose(self) -> None:
        """Closes the object (for ``contextlib.aclosing`` and anyio's resources)."""
        self.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
