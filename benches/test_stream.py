"""One-way throughput: batches of messages sent back to back to a receiving side in another
process, for regression tracking (the ``msg/s`` and ``GB/s`` columns of ``fastipc bench``).

One benchmark round is one batch of ``BATCH`` messages and the receiver's acknowledgement of the
byte count (the protocol of ``Echo.drain``); messages per second = ``BATCH / round time``, which
``extra_info`` records with the size. The same mechanisms as ``test_sockets.py``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import pytest
from conftest import refusal_skips, start_client
from fastipc.bench.affinity import pinned
from fastipc.bench.mechanisms import REGISTRY
from fastipc.bench.report import format_size
from fastipc.bench.timing import payload_for
from pytest_benchmark.fixture import BenchmarkFixture

SIZES = [64, 65536]
BATCH = {64: 2000, 65536: 200}

CASES = [
    pytest.param(name, backend, id=name if backend is None else f"{name}-{backend}")
    for name, mechanism in REGISTRY.items()
    if mechanism.topology in ("listener", "pair")
    for backend in (("rust", "python") if mechanism.uses_fastipc else (None,))
]


@pytest.fixture
def stream_batch(
    socket_dir: str,
    placement: tuple[str, int | None, int | None],
    backends: list[str],
) -> Iterator[Callable[[str, str | None, int], Callable[[], None]]]:
    stack = contextlib.ExitStack()
    _, sink_cpu, client_cpu = placement

    def make(name: str, backend: str | None, size: int) -> Callable[[], None]:
        with refusal_skips(name, size):
            client = start_client(
                stack,
                socket_dir,
                backends,
                name,
                backend=backend,
                size=size,
                max_size=max(size, 64),
                cpu=sink_cpu,
                drain=True,
            )
        stack.enter_context(pinned(client_cpu))
        payload = payload_for(size)
        send, recv, received = client.sender(), client.receiver(), client.received
        count = BATCH[size]
        header = str(count).encode()
        expected = str(count * size).encode()

        def run() -> None:
            send(header)
            for _ in range(count):
                send(payload)
            assert received(recv()) == expected

        return run

    with stack:
        yield make


@pytest.mark.benchmark(warmup=True, warmup_iterations=3, disable_gc=True, min_rounds=10)
@pytest.mark.parametrize("size", SIZES, ids=lambda s: format_size(s).replace(" ", ""))
@pytest.mark.parametrize(("mechanism", "backend"), CASES)
def test_stream(  # noqa: PLR0917 (pytest passes fixtures and parameters by name)
    benchmark: BenchmarkFixture,
    stream_batch: Callable[[str, str | None, int], Callable[[], None]],
    placement: tuple[str, int | None, int | None],
    mechanism: str,
    backend: str | None,
    size: int,
) -> None:
    run = stream_batch(mechanism, backend, size)
    benchmark.group = f"one-way stream {format_size(size)}, {BATCH[size]} messages, {placement[0]}"
    benchmark.extra_info.update(
        mechanism=mechanism, backend=backend, size=size, messages_per_round=BATCH[size]
    )
    benchmark(run)
