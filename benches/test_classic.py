"""Round trips of a 64 B message over the classic mechanisms, with their baselines in the same
run: a fastipc pipe pair and FIFO pair against ``os.pipe``, a fastipc POSIX queue pair against
``posix_ipc``. The echo side is a forked process; ``--fastipc-placement`` pins both as for the
socket benchmarks (default: the same core).

    python -m pytest benches/test_classic.py --benchmark-columns=median,iqr,ops

``fastipc.bench.classic.measure`` runs the same round trips without pytest.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator

import pytest
from conftest import backend_module
from fastipc.bench.affinity import pinned
from fastipc.bench.base import Env, PairMechanism, fork_echo
from fastipc.bench.classic import CLASSIC
from pytest_benchmark.fixture import BenchmarkFixture

SIZE = 64

CASES = [
    pytest.param(name, backend, id=name if backend is None else f"{name}-{backend}")
    for name, mechanism in CLASSIC.items()
    for backend in (("rust", "python") if mechanism.uses_fastipc else (None,))
]


@pytest.fixture
def classic_round_trip(
    socket_dir: str,
    placement: tuple[str, int | None, int | None],
    backends: list[str],
) -> Iterator[Callable[[str, str | None], Callable[[], None]]]:
    stack = contextlib.ExitStack()
    _, echo_cpu, client_cpu = placement

    def make(name: str, backend: str | None) -> Callable[[], None]:
        if backend is not None and backend not in backends:
            pytest.skip(f"backend {backend} not selected (--fastipc-backends)")
        mechanism = CLASSIC[name]
        reason = mechanism.unavailable()
        if reason is not None:
            pytest.skip(reason)
        assert isinstance(mechanism, PairMechanism)
        impl = backend_module(backend) if backend is not None else None
        client, echo = mechanism.pair(Env(socket_dir=socket_dir, max_size=SIZE, impl=impl))
        pid = fork_echo(echo, client, echo_cpu)
        stack.callback(os.waitpid, pid, 0)
        stack.callback(client.close)
        stack.enter_context(pinned(client_cpu))
        payload = bytes(range(SIZE))
        send, recv = client.sender(), client.receiver()
        send(payload)
        assert client.received(recv()) == payload, "the echo returned different bytes"

        def run() -> None:
            send(payload)
            recv()

        return run

    with stack:
        yield make


@pytest.mark.benchmark(warmup=True, warmup_iterations=500, disable_gc=True, min_rounds=2000)
@pytest.mark.parametrize(("mechanism", "backend"), CASES)
def test_classic_round_trip_64b(
    benchmark: BenchmarkFixture,
    classic_round_trip: Callable[[str, str | None], Callable[[], None]],
    placement: tuple[str, int | None, int | None],
    mechanism: str,
    backend: str | None,
) -> None:
    run = classic_round_trip(mechanism, backend)
    benchmark.group = f"classic round trip 64 B, {placement[0]}"
    benchmark.extra_info.update(
        mechanism=mechanism, backend=backend, summary=CLASSIC[mechanism].summary
    )
    benchmark(run)
