"""Round trips through an echo side in another process, for regression tracking.

The same mechanisms and sizes as ``fastipc bench`` (every registered Python mechanism: sockets,
pipes, FIFOs, queues, shared memory, and the optional baselines when installed);
multiprocessing.Pipe and the stdlib mechanisms are the baselines in the same run. Compare runs
with ``--benchmark-save``/``--benchmark-compare``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from fastipc.bench.mechanisms import REGISTRY
from fastipc.bench.report import format_size
from pytest_benchmark.fixture import BenchmarkFixture

SIZES = [64, 65536, 1048576]

CASES = [
    pytest.param(name, backend, id=name if backend is None else f"{name}-{backend}")
    for name, mechanism in REGISTRY.items()
    if mechanism.topology in ("listener", "pair")  # not the C reference peer
    for backend in (("rust", "python") if mechanism.uses_fastipc else (None,))
]


def size_id(size: int) -> str:
    return format_size(size).replace(" ", "")


@pytest.mark.benchmark(warmup=True, warmup_iterations=200, disable_gc=True, min_rounds=50)
@pytest.mark.parametrize("size", SIZES, ids=size_id)
@pytest.mark.parametrize(("mechanism", "backend"), CASES)
def test_round_trip(
    benchmark: BenchmarkFixture,
    round_trip: Callable[[str, str | None, int], Any],
    mechanism: str,
    backend: str | None,
    size: int,
) -> None:
    rt = round_trip(mechanism, backend, size)
    benchmark.group = f"round trip {size_id(size)}, {rt.placement}"
    benchmark.extra_info.update(
        mechanism=mechanism,
        backend=backend,
        size=size,
        placement=rt.placement,
        summary=REGISTRY[mechanism].summary,
    )
    benchmark(rt.run)
