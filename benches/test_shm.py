"""Semaphores and shared memory between two processes, with the baselines in the same run.

* ``test_semaphore_round_trip``: a ping-pong through two named semaphores (post A, the peer waits
  A and posts B, wait B) for fastipc (both backends), posix_ipc and multiprocessing.Semaphore.
* ``test_segment_handoff``: 1 MiB through a segment plus semaphore handoff (the memwriter/
  memreader pattern), fastipc against multiprocessing.shared_memory + multiprocessing.Semaphore.
* ``test_ratios``: the same measurements through ``fastipc.bench.shm`` (what ``fastipc bench``
  can reuse), printed as one table with the ratios to the baselines.

The peer is forked and pinned as ``--fastipc-placement`` says (default: same core). Run with
``python -m pytest benches/test_shm.py -s`` to see the ratio table.
"""

from __future__ import annotations

import contextlib
import os
import signal
import statistics
from collections.abc import Callable, Iterator
from types import ModuleType
from typing import Any

import pytest
from conftest import backend_module
from fastipc.bench import shm
from pytest_benchmark.fixture import BenchmarkFixture

HANDOFF_SIZE = 1 << 20

SEM_CASES = [
    pytest.param("fastipc", "rust", id="fastipc-rust"),
    pytest.param("fastipc", "python", id="fastipc-python"),
    pytest.param("posix_ipc", None, id="posix_ipc"),
    pytest.param("multiprocessing", None, id="multiprocessing"),
]
HANDOFF_CASES = [
    pytest.param("fastipc", "rust", id="fastipc-rust"),
    pytest.param("fastipc", "python", id="fastipc-python"),
    pytest.param("multiprocessing", None, id="multiprocessing"),
]


def _module(backend: str | None, backends: list[str]) -> ModuleType | None:
    if backend is None:
        return None
    if backend not in backends:
        pytest.skip(f"backend {backend} not selected (--fastipc-backends)")
    return backend_module(backend)


@contextlib.contextmanager
def _pinned(cpu: int | None) -> Iterator[None]:
    if cpu is None:
        yield
        return
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {cpu})
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


@contextlib.contextmanager
def _peer(loop: Callable[[], None], cpu: int | None) -> Iterator[int]:
    """A forked process running ``loop`` until it is killed at the end."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the peer
        try:
            if cpu is not None:
                os.sched_setaffinity(0, {cpu})
            loop()
        finally:
            os._exit(0)
    try:
        yield pid
    finally:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)


@pytest.mark.benchmark(warmup=True, warmup_iterations=2000, disable_gc=True, min_rounds=20000)
@pytest.mark.parametrize(("impl", "backend"), SEM_CASES)
def test_semaphore_round_trip(
    benchmark: BenchmarkFixture,
    placement: tuple[str, int | None, int | None],
    backends: list[str],
    impl: str,
    backend: str | None,
) -> None:
    reason = shm.unavailable(impl)
    if reason:
        pytest.skip(reason)
    module = _module(backend, backends)
    where, peer_cpu, own_cpu = placement
    ping, pong = shm.semaphores(impl, module, 2)

    def echo() -> None:
        wait, post = ping.acquire, pong.release
        while True:
            wait()
            post()

    post, wait = ping.release, pong.acquire

    def round_trip() -> None:
        post()
        wait()

    benchmark.group = f"semaphore round trip, {where}"
    benchmark.extra_info.update(impl=impl, backend=backend, placement=where)
    try:
        with _peer(echo, peer_cpu), _pinned(own_cpu):
            benchmark(round_trip)
    finally:
        ping.close()
        pong.close()


@pytest.mark.benchmark(warmup=True, warmup_iterations=50, disable_gc=True, min_rounds=500)
@pytest.mark.parametrize(("impl", "backend"), HANDOFF_CASES)
def test_segment_handoff(
    benchmark: BenchmarkFixture,
    placement: tuple[str, int | None, int | None],
    backends: list[str],
    impl: str,
    backend: str | None,
) -> None:
    module = _module(backend, backends)
    where, peer_cpu, own_cpu = placement
    if impl == "fastipc":
        assert module is not None
        seg: Any = module.SharedMemory(None, create=True, size=HANDOFF_SIZE)
    else:
        from multiprocessing import shared_memory

        seg = shared_memory.SharedMemory(create=True, size=HANDOFF_SIZE)
    full, empty = shm.semaphores(impl, module, 2)
    buf = seg.buf
    payload = bytes(range(256)) * (HANDOFF_SIZE // 256)

    def reader() -> None:
        sink = memoryview(bytearray(HANDOFF_SIZE))
        wait, post = full.acquire, empty.release
        while True:
            wait()
            sink[:] = buf
            post()

    post, wait = full.release, empty.acquire

    def handoff() -> None:
        buf[:] = payload
        post()
        wait()

    benchmark.group = f"1 MiB segment handoff, {where}"
    benchmark.extra_info.update(impl=impl, backend=backend, placement=where, size=HANDOFF_SIZE)
    try:
        with _peer(reader, peer_cpu), _pinned(own_cpu):
            benchmark(handoff)
    finally:
        full.close()
        empty.close()
        seg.close()
        seg.unlink()


def _median_p99(samples: list[int]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered), ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


def test_ratios(placement: tuple[str, int | None, int | None], backends: list[str]) -> None:
    """fastipc against the baselines in one run: the semaphore round trip (target: at most 0.8x
    posix_ipc and multiprocessing) and the 1 MiB handoff (target: at least 1.2x the throughput
    of multiprocessing.shared_memory + multiprocessing.Semaphore)."""
    if "rust" not in backends:
        pytest.skip("the ratios are those of the Rust backend")
    module = backend_module("rust")
    where, peer_cpu, own_cpu = placement
    cpus = (own_cpu, peer_cpu)
    lines = [f"placement: {where}"]
    rt: dict[str, float] = {}
    for impl in shm.IMPLS:
        if shm.unavailable(impl):
            continue
        samples = shm.semaphore_pingpong(impl, 20_000, cpus=cpus, module=module)
        med, p99 = _median_p99(samples)
        rt[impl] = med
        lines.append(
            f"  semaphore round trip {impl:<16} median {med / 1e3:7.2f} us  p99 {p99 / 1e3:7.2f} us"
        )
    for base in ("posix_ipc", "multiprocessing"):
        if base in rt:
            lines.append(f"  fastipc / {base}: {rt['fastipc'] / rt[base]:.2f}x the round trip time")
    tp: dict[str, float] = {}
    for impl in ("fastipc", "multiprocessing"):
        samples = shm.segment_handoff(impl, HANDOFF_SIZE, 500, cpus=cpus, module=module)
        med, _ = _median_p99(samples)
        tp[impl] = HANDOFF_SIZE / med  # bytes per ns = GB/s
        lines.append(
            f"  1 MiB handoff        {impl:<16} median {med / 1e3:7.2f} us  {tp[impl]:.2f} GB/s"
        )
    lines.append(
        f"  fastipc / multiprocessing: {tp['fastipc'] / tp['multiprocessing']:.2f}x the throughput"
    )
    print("\n" + "\n".join(lines))
