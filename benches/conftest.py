"""Fixtures of the round-trip benchmarks (pytest-benchmark).

Run with ``python -m pytest benches`` (they are outside ``testpaths``, so the test suite never
collects them). The echo side runs in another process: a ``python -m fastipc.bench.peer serve``
child for listening mechanisms, a forked child for connected pairs. The pytest process is the
client, and the mechanisms are those of ``fastipc bench`` (``fastipc.bench``).

Options: ``--fastipc-placement same-core|cross-core|none`` (default same-core: the client and the
echo side pinned to one CPU, the stable measurement) and ``--fastipc-backends rust,python``
(default: each backend that can be imported; stdlib mechanisms run once).
"""

from __future__ import annotations

import contextlib
import importlib
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from types import ModuleType

import pytest
from fastipc.bench.affinity import can_pin, pinned, placement_cpus
from fastipc.bench.base import Client, Env, ListenerMechanism, PairMechanism, fork_echo, refuses
from fastipc.bench.mechanisms import REGISTRY
from fastipc.bench.processes import echo_server
from fastipc.bench.report import format_size
from fastipc.bench.timing import payload_for

BACKEND_MODULES = {"rust": "fastipc._fastipc", "python": "fastipc._fallback"}


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("fastipc benchmarks")
    group.addoption(
        "--fastipc-placement",
        choices=("same-core", "cross-core", "none"),
        default="same-core",
        help="pin the client and the echo side to one CPU, to two, or not at all",
    )
    group.addoption(
        "--fastipc-backends",
        default="rust,python",
        help="fastipc backends to measure, comma separated (those that cannot load are skipped)",
    )


def backend_module(name: str) -> ModuleType:
    try:
        return importlib.import_module(BACKEND_MODULES[name])
    except ImportError as exc:
        pytest.skip(f"fastipc backend {name!r} cannot be loaded: {exc}")


@contextlib.contextmanager
def refusal_skips(mechanism: str, size: int) -> Iterator[None]:
    """Skip the test if the block fails because ``mechanism`` refuses ``size``-byte messages (a
    POSIX queue's message size limit, a packet larger than the kernel takes: the ``unsupported``
    rows of ``fastipc bench``); any other error fails it."""
    try:
        yield
    except Exception as exc:
        if not refuses(exc):
            raise
        pytest.skip(f"{mechanism} refuses {format_size(size)} messages: {exc}")


@pytest.fixture(scope="session")
def placement(pytestconfig: pytest.Config) -> tuple[str, int | None, int | None]:
    """(placement, echo CPU, client CPU)."""
    name: str = pytestconfig.getoption("--fastipc-placement")
    if name == "none" or not can_pin():
        return "none", None, None
    cpus = placement_cpus(name)
    if cpus is None:
        pytest.skip("cross-core placement needs two CPUs")
    return name, *cpus


@pytest.fixture(scope="session")
def backends(pytestconfig: pytest.Config) -> list[str]:
    names = [n.strip() for n in pytestconfig.getoption("--fastipc-backends").split(",")]
    unknown = set(names) - set(BACKEND_MODULES)
    if unknown:
        raise pytest.UsageError(f"--fastipc-backends: unknown {', '.join(sorted(unknown))}")
    return names


@pytest.fixture(scope="session")
def socket_dir() -> Iterator[str]:
    path = tempfile.mkdtemp(prefix="fastipc-bench-")
    yield path
    shutil.rmtree(path, ignore_errors=True)


@dataclass
class RoundTrip:
    """One connected client, its payload and a call that does one round trip."""

    mechanism: str
    backend: str | None
    size: int
    placement: str
    payload: bytes
    run: Callable[[], None]


def start_client(
    stack: contextlib.ExitStack,
    socket_dir: str,
    backends: list[str],
    name: str,
    *,
    backend: str | None,
    size: int,
    max_size: int,
    cpu: int | None,
    drain: bool = False,
) -> Client:
    """A client of mechanism ``name`` connected to a fresh echo side (a sink with ``drain``) on
    ``cpu``, closed by ``stack``; skips when the backend is not selected or the mechanism is
    unavailable here."""
    if backend is not None and backend not in backends:
        pytest.skip(f"backend {backend} not selected (--fastipc-backends)")
    mechanism = REGISTRY[name]
    reason = mechanism.unavailable()
    if reason is not None:
        pytest.skip(reason)
    impl = backend_module(backend) if backend is not None else None
    env = Env(socket_dir=socket_dir, max_size=max_size, impl=impl)
    client: Client
    if isinstance(mechanism, PairMechanism):
        client, echo = mechanism.pair(env)
        pid = fork_echo(echo, client, cpu, drain=drain)
        stack.callback(os.waitpid, pid, 0)
    else:
        assert isinstance(mechanism, ListenerMechanism)
        address, _ = stack.enter_context(
            echo_server(
                name,
                max_size=size,
                socket_dir=socket_dir,
                backend=backend,
                cpu=cpu,
                phases=("drain",) if drain else ("echo",),
            )
        )
        client = mechanism.connect(env, address)
    stack.callback(client.close)
    return client


@pytest.fixture
def round_trip(
    socket_dir: str,
    placement: tuple[str, int | None, int | None],
    backends: list[str],
) -> Iterator[Callable[[str, str | None, int], RoundTrip]]:
    """A factory: ``round_trip(mechanism, backend, size)`` connects to a fresh echo side."""
    stack = contextlib.ExitStack()
    where, echo_cpu, client_cpu = placement

    def make(mechanism_name: str, backend: str | None, size: int) -> RoundTrip:
        with refusal_skips(mechanism_name, size):
            client = start_client(
                stack,
                socket_dir,
                backends,
                mechanism_name,
                backend=backend,
                size=size,
                max_size=size,
                cpu=echo_cpu,
            )
            stack.enter_context(pinned(client_cpu))
            payload = payload_for(size)
            send, recv = client.sender(), client.receiver()
            send(payload)
            assert client.received(recv()) == payload, "the echo returned different bytes"

        def run() -> None:
            send(payload)
            recv()

        return RoundTrip(mechanism_name, backend, size, where, payload, run)

    with stack:
        yield make
