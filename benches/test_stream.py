"""One-way throughput: batches of messages sent back to back to a receiving side in another
process, for regression tracking (the ``msg/s`` and ``GB/s`` columns of ``fastipc bench``).

One benchmark round is one batch of ``BATCH`` messages and the receiver's acknowledgement of the
byte count (the protocol of ``Echo.drain``); messages per second = ``BATCH / round time``, which
``extra_info`` records with the size. The same mechanisms as ``test_sockets.py``.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator

import pytest
from conftest import backend_module, refusal_skips
from fastipc.bench.affinity import pinned
from fastipc.bench.base import Client, Env, ListenerMechanism, PairMechanism, fork_echo
from fastipc.bench.mechanisms import REGISTRY
from fastipc.bench.processes import echo_server
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
        if backend is not None and backend not in backends:
            pytest.skip(f"backend {backend} not selected (--fastipc-backends)")
        mechanism = REGISTRY[name]
        reason = mechanism.unavailable()
        if reason is not None:
            pytest.skip(reason)
        impl = backend_module(backend) if backend is not None else None
        env = Env(socket_dir=socket_dir, max_size=max(size, 64), impl=impl)
        client: Client
        with refusal_skips(name, size):
            if isinstance(mechanism, PairMechanism):
                client, sink = mechanism.pair(env)
                pid = fork_echo(sink, client, sink_cpu, drain=True)
                stack.callback(os.waitpid, pid, 0)
            else:
                assert isinstance(mechanism, ListenerMechanism)
                address, _ = stack.enter_context(
                    echo_server(
                        name,
                        max_size=size,
                        socket_dir=socket_dir,
                        backend=backend,
                        cpu=sink_cpu,
                        phases=("drain",),
                    )
                )
                client = mechanism.connect(env, address)
        stack.callback(client.close)
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
