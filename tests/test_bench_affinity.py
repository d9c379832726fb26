"""``fastipc.bench.affinity``: pinning restores what it found, placements pick their CPUs."""

from __future__ import annotations

import os

import pytest
from fastipc.bench import affinity

needs_pinning = pytest.mark.skipif(not affinity.can_pin(), reason="no sched_setaffinity here")


@needs_pinning
def test_pinned_runs_on_one_cpu_and_restores() -> None:
    before = os.sched_getaffinity(0)
    cpu = max(before)
    with affinity.pinned(cpu):
        assert os.sched_getaffinity(0) == {cpu}
    assert os.sched_getaffinity(0) == before


@needs_pinning
def test_pinned_restores_after_an_exception() -> None:
    before = os.sched_getaffinity(0)
    with pytest.raises(RuntimeError, match="inside"), affinity.pinned(min(before)):
        raise RuntimeError("inside")
    assert os.sched_getaffinity(0) == before


def test_pinned_none_changes_nothing() -> None:
    before = affinity.allowed_cpus()
    with affinity.pinned(None):
        assert affinity.allowed_cpus() == before
    assert affinity.allowed_cpus() == before


@needs_pinning
def test_placement_cpus() -> None:
    assert affinity.placement_cpus("same-core", [3, 5]) == (3, 3)
    assert affinity.placement_cpus("cross-core", [3, 5]) == (3, 5)
    assert affinity.placement_cpus("cross-core", [3]) is None
    first = affinity.allowed_cpus()[0]
    assert affinity.placement_cpus("same-core") == (first, first)
    with pytest.raises(ValueError, match="unknown placement 'sideways'"):
        affinity.placement_cpus("sideways")
