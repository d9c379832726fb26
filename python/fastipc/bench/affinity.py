"""CPU pinning for measurements: one helper instead of ``sched_setaffinity`` calls everywhere."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

__all__ = ["pinned"]


@contextlib.contextmanager
def pinned(cpu: int | None) -> Iterator[None]:
    """Pins the calling process to ``cpu`` for the duration of the block, then restores its
    affinity. ``None``, or a platform without ``sched_setaffinity``, pins nothing."""
    if cpu is None or not hasattr(os, "sched_setaffinity"):
        yield
        return
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {cpu})
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)
