"""Round trips of a 64-byte message carrying one descriptor, to an echo side in another process.

fastipc (``send_bytes(..., fds=)`` and ``recv_bytes_and_fds``) against the standard library's
``socket.send_fds`` and ``socket.recv_fds`` in the same run, both over a Unix stream socket with
a 4-byte length prefix. By default both processes run on one core (``--fastipc-placement``).
The medians and the ratio fastipc/stdlib are printed at the end of the module.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastipc.bench.mechanisms import REGISTRY
from pytest_benchmark.fixture import BenchmarkFixture

SIZE = 64
BASELINE = "socket-unix-fds"
FASTIPC = "fastipc-unix-fds"

CASES = [
    pytest.param(BASELINE, None, id=BASELINE),
    pytest.param(FASTIPC, "rust", id=f"{FASTIPC}-rust"),
    pytest.param(FASTIPC, "python", id=f"{FASTIPC}-python"),
]


@pytest.fixture(scope="module")
def medians(request: pytest.FixtureRequest) -> Iterator[dict[str, float]]:
    """Median round-trip time per case (seconds); the ratios are written when the module ends."""
    found: dict[str, float] = {}
    yield found
    base = found.get(BASELINE)
    if base is None:
        return
    lines = ["", f"descriptor round trip, {SIZE} B, one descriptor (median):"]
    lines += [
        f"  {case:<24} {median * 1e6:8.2f} µs   {median / base:.2f}x {BASELINE}"
        for case, median in found.items()
    ]
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    with capture.global_and_fixture_disabled() if capture else contextlib.nullcontext():
        print("\n".join(lines))


@pytest.mark.benchmark(warmup=True, warmup_iterations=200, disable_gc=True, min_rounds=50)
@pytest.mark.parametrize(("mechanism", "backend"), CASES)
def test_fd_round_trip(
    benchmark: BenchmarkFixture,
    round_trip: Callable[[str, str | None, int], Any],
    medians: dict[str, float],
    mechanism: str,
    backend: str | None,
) -> None:
    rt = round_trip(mechanism, backend, SIZE)
    benchmark.group = f"descriptor round trip {SIZE}B, {rt.placement}"
    benchmark.extra_info.update(
        mechanism=mechanism,
        backend=backend,
        size=SIZE,
        placement=rt.placement,
        summary=REGISTRY[mechanism].summary,
    )
    benchmark(rt.run)
    if benchmark.stats is not None:
        medians[mechanism if backend is None else f"{mechanism}-{backend}"] = (
            benchmark.stats.stats.median
        )
