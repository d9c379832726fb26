"""Plain data types shared by both backends (the extension builds them from here too)."""

from __future__ import annotations

from typing import NamedTuple

__all__ = ["Credentials"]


class Credentials(NamedTuple):
    """Who is at the other end of a Unix socket, as the kernel saw it.

    ``pid`` is ``None`` where the platform cannot tell (BSDs other than macOS)."""

    pid: int | None
    uid: int
    gid: int
