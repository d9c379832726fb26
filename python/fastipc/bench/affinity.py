"""CPU pinning for the benchmarks: the one place that calls ``os.sched_setaffinity``.

Where the platform has no ``sched_setaffinity`` (macOS, Windows) pinning does nothing, and a
placement that needs two CPUs is impossible (:func:`placement_cpus` says so with ``None``).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence

__all__ = ["PLACEMENTS", "allowed_cpus", "can_pin", "pin", "pinned", "placement_cpus"]

PLACEMENTS = ("same-core", "cross-core")
"""Both processes on one CPU (the stable figure), or each on its own CPU."""


def can_pin() -> bool:
    """Whether this platform can pin a process to a CPU."""
    return hasattr(os, "sched_setaffinity")


def allowed_cpus() -> list[int]:
    """The CPUs this process may run on, in order (all of them where that cannot be asked)."""
    if hasattr(os, "sched_getaffinity"):
        return sorted(os.sched_getaffinity(0))
    return list(range(os.cpu_count() or 1))


def pin(cpu: int | None) -> None:
    """Run the calling process on ``cpu`` only, for good (a forked child that keeps it); nothing
    for ``None`` or where the platform cannot pin."""
    if cpu is not None and can_pin():
        os.sched_setaffinity(0, {cpu})


@contextlib.contextmanager
def pinned(cpu: int | None) -> Iterator[None]:
    """Run the calling process on ``cpu`` only inside the block, then restore the CPUs it had;
    nothing for ``None`` or where the platform cannot pin."""
    if cpu is None or not can_pin():
        yield
        return
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {cpu})
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


def placement_cpus(
    placement: str, cpus: Sequence[int] | None = None
) -> tuple[int | None, int | None] | None:
    """(echo CPU, client CPU) of a placement among ``cpus`` (default: :func:`allowed_cpus`), or
    ``None`` if it is impossible here. ``same-core`` is unpinned, ``(None, None)``, where the
    platform cannot pin; ``cross-core`` needs two CPUs and pinning."""
    if placement not in PLACEMENTS:
        raise ValueError(f"unknown placement {placement!r}; choose from {', '.join(PLACEMENTS)}")
    if not can_pin():
        return (None, None) if placement == "same-core" else None
    cpus = allowed_cpus() if cpus is None else cpus
    if placement == "same-core":
        return cpus[0], cpus[0]
    if len(cpus) < 2:
        return None
    return cpus[0], cpus[1]
