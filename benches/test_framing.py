"""What fastipc's framing costs, in one run: fastipc against the standard library, one core.

Two comparisons, each between one client (this process) and one echo process, both pinned to the
same CPU (the stable measurement), with rounds of the two sides interleaved so that the machine's
drift hits both alike; the figure is the median of the rounds' mean round trip:

- 64 B over a socketpair: fastipc ``send_bytes``/``recv_bytes`` (framed, descriptor-ready,
  interruptible) against a stdlib ``socket.socketpair()`` with plain ``send``/``recv`` (no framing
  at all). Target: a ratio of at most 1.00.
- 1 MiB over TCP loopback: a fastipc ``tcp:127.0.0.1:0`` listener against a stdlib TCP socket with
  ``TCP_NODELAY`` and the same 4-byte length prefix, written as a careful user would (one
  vectored ``sendmsg``, ``recv_into`` a preallocated buffer). Target: a ratio of at most 1.00.

Both figures are printed: elapsed time, and the CPU time of both processes (Linux's schedstat),
which leaves out the time other programs took the CPU for. Run with
``python -m pytest benches/test_framing.py -s`` or ``python benches/test_framing.py``. The tests
check that the echo comes back unchanged; ``FASTIPC_FRAMING_ASSERT=1`` also asserts the
targets on the CPU-time ratio. Not by default: on a shared 2-core machine the same measurement of
the standard library against itself varies by 5-20 % from run to run (see
``docs/architecture.md``), more than the margins measured.
"""

from __future__ import annotations

import os
import socket
import statistics
import struct
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from typing import NamedTuple

import fastipc
import pytest
from fastipc.bench.affinity import pinned

SMALL = 64
LARGE = 1 << 20
HEADER = struct.Struct("!I")

#: The echo side, run as ``python -c ECHO mode fd-or-address``.
ECHO = r"""
import socket, struct, sys
import fastipc

HEADER = struct.Struct("!I")
mode, where = sys.argv[1], sys.argv[2]


def recv_exact(sock, view):
    got = 0
    while got < len(view):
        n = sock.recv_into(view[got:])
        if n == 0:
            return got
        got += n
    return got


if mode == "fastipc-pair":
    conn = fastipc.fromfd(int(where))
    recv, send = conn.recv_bytes, conn.send_bytes
    try:
        while True:
            send(recv())
    except EOFError:
        pass
elif mode == "socket-pair":
    sock = socket.socket(fileno=int(where))
    recv, send = sock.recv, sock.send
    while data := recv(65536):
        send(data)
elif mode == "fastipc-tcp":
    conn = fastipc.connect(where, timeout=10)
    buf = bytearray(1 << 20)
    recv_into, send = conn.recv_bytes_into, conn.send_bytes
    try:
        while True:
            send(buf, 0, recv_into(buf))
    except EOFError:
        pass
elif mode == "socket-tcp":
    host, _, port = where.rpartition(":")
    sock = socket.create_connection((host, int(port)), timeout=10)
    sock.settimeout(None)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    buf = bytearray(HEADER.size + (1 << 20))
    view = memoryview(buf)
    while recv_exact(sock, view[: HEADER.size]) == HEADER.size:
        (n,) = HEADER.unpack_from(buf)
        recv_exact(sock, view[HEADER.size : HEADER.size + n])
        sock.sendall(view[: HEADER.size + n])
"""


def echo(stack: ExitStack, mode: str, where: str, pass_fds: tuple[int, ...] = ()) -> int:
    """Starts the echo process (it inherits this process's CPU affinity), reaped at exit; its
    pid."""
    child = subprocess.Popen([sys.executable, "-c", ECHO, mode, where], pass_fds=pass_fds)

    def reap() -> None:
        if child.wait(timeout=30) != 0:
            raise RuntimeError(f"echo {mode} exited with {child.returncode}")

    stack.callback(reap)
    return child.pid


class Side(NamedTuple):
    """One side of a comparison: a round trip, and the echo process that serves it."""

    round_trip: Callable[[bytes], object]
    echo_pid: int


def cpu_ns(pid: int | str) -> int:
    """Nanoseconds `pid` has run on a CPU (Linux's schedstat); 0 where there is none."""
    try:
        with open(f"/proc/{pid}/schedstat") as f:
            return int(f.read().split()[0])
    except OSError:
        return 0


def fastipc_pair(stack: ExitStack) -> Side:
    mine, theirs = fastipc.socketpair()
    with theirs:
        pid = echo(stack, "fastipc-pair", str(theirs.fileno()), (theirs.fileno(),))
    stack.callback(mine.close)  # before the echo is reaped: it ends at end of file
    send, recv = mine.send_bytes, mine.recv_bytes

    def round_trip(payload: bytes) -> object:
        send(payload)
        return recv()

    return Side(round_trip, pid)


def socket_pair(stack: ExitStack) -> Side:
    mine, theirs = socket.socketpair()
    with theirs:
        pid = echo(stack, "socket-pair", str(theirs.fileno()), (theirs.fileno(),))
    stack.callback(mine.close)
    send, recv = mine.send, mine.recv

    def round_trip(payload: bytes) -> object:
        send(payload)
        return recv(65536)

    return Side(round_trip, pid)


def fastipc_tcp(stack: ExitStack) -> Side:
    with fastipc.listen("tcp:127.0.0.1:0") as listener:
        pid = echo(stack, "fastipc-tcp", listener.address)
        conn = listener.accept(timeout=10)
    stack.callback(conn.close)
    send, recv = conn.send_bytes, conn.recv_bytes

    def round_trip(payload: bytes) -> object:
        send(payload)
        return recv()

    return Side(round_trip, pid)


def socket_tcp(stack: ExitStack) -> Side:
    with socket.create_server(("127.0.0.1", 0)) as server:
        host, port = server.getsockname()
        pid = echo(stack, "socket-tcp", f"{host}:{port}")
        server.settimeout(10)
        sock, _ = server.accept()
    stack.callback(sock.close)
    sock.settimeout(None)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    buf = bytearray(LARGE)
    view = memoryview(buf)

    def round_trip(payload: bytes) -> object:
        n = len(payload)
        sent = sock.sendmsg([HEADER.pack(n), payload])
        if sent < HEADER.size + n:
            sock.sendall((HEADER.pack(n) + payload)[sent:])
        header = sock.recv(HEADER.size, socket.MSG_WAITALL)
        (n,) = HEADER.unpack(header)
        got = 0
        while got < n:
            got += sock.recv_into(view[got:n])
        return n

    return Side(round_trip, pid)


class Medians(NamedTuple):
    """Per side, the mean round trip of each round in µs: elapsed time, and CPU time of both
    processes (what the round trip costs, without the time other programs took the CPU for:
    the steadier figure on a shared machine)."""

    wall: dict[str, list[float]]
    cpu: dict[str, list[float]]

    def median(self, which: str) -> dict[str, float]:
        figures: dict[str, list[float]] = getattr(self, which)
        return {name: statistics.median(values) for name, values in figures.items()}


def rounds(sides: dict[str, Side], size: int, count: int, per_round: int, out: Medians) -> None:
    """``count`` interleaved rounds of ``per_round`` round trips on each side, each round's mean
    round trip added to ``out``."""
    payload = bytes(range(256)) * (size // 256) if size >= 256 else b"x" * size
    for name, side in sides.items():  # warm up: caches, allocator, branch predictors
        echoed = side.round_trip(payload)
        assert echoed in (payload, len(payload)), f"{name}: the echo changed the message"
        for _ in range(per_round):
            side.round_trip(payload)
    for _ in range(count):
        for name, (round_trip, pid) in sides.items():
            cpu_start = cpu_ns("self") + cpu_ns(pid)
            start = time.perf_counter()
            for _ in range(per_round):
                round_trip(payload)
            out.wall.setdefault(name, []).append((time.perf_counter() - start) / per_round * 1e6)
            cpu = (cpu_ns("self") + cpu_ns(pid) - cpu_start) / per_round / 1e3
            out.cpu.setdefault(name, []).append(cpu)


@contextmanager
def one_core() -> Iterator[None]:
    cpu = min(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    with pinned(cpu):
        yield


class Comparison(NamedTuple):
    title: str
    medians: Medians

    def ratio(self, which: str = "cpu") -> float:
        """fastipc's figure over the standard library's: elapsed ("wall") or CPU time."""
        fastipc_us, stdlib_us = self.medians.median(which).values()
        return float(fastipc_us / stdlib_us) if stdlib_us else float("nan")

    def report(self) -> str:
        lines = [f"{self.title}, median of the rounds:"]
        for which in ("wall", "cpu"):
            figures = self.medians.median(which)
            if not any(figures.values()):
                continue
            cells = ", ".join(f"{name} {us:.2f} µs" for name, us in figures.items())
            label = "elapsed" if which == "wall" else "CPU (both processes)"
            lines.append(f"  {label:<21} {cells}: ratio {self.ratio(which):.3f}")
        return "\n".join(lines)


def compare(
    title: str,
    make: dict[str, Callable[[ExitStack], Side]],
    size: int,
    *,
    connections: int,
    count: int,
    per_round: int,
) -> Comparison:
    """Each side over ``connections`` fresh connections (an even number: where the kernel and
    the allocator put buffers changes from one connection to the next, at 1 MiB by up to 2x for
    either side), ``count`` interleaved rounds on each."""
    medians = Medians({name: [] for name in make}, {name: [] for name in make})
    with one_core():
        for connection in range(connections):
            # Whichever side is set up first is slower (a stdlib-against-stdlib run shows it,
            # by up to 1.2x at 1 MiB): the order alternates from one connection to the next.
            names = list(make) if connection % 2 == 0 else list(reversed(make))
            with ExitStack() as stack:
                sides = {name: make[name](stack) for name in names}
                rounds(sides, size, count, per_round, medians)
    return Comparison(title, medians)


def asserting() -> bool:
    return os.environ.get("FASTIPC_FRAMING_ASSERT", "0") == "1"


def socketpair_64() -> Comparison:
    return compare(
        "64 B round trip over a socketpair, one core",
        {"fastipc send_bytes/recv_bytes": fastipc_pair, "stdlib send/recv": socket_pair},
        SMALL,
        connections=4,
        count=5,
        per_round=4000,
    )


def tcp_1mib() -> Comparison:
    return compare(
        "1 MiB round trip over TCP loopback, one core",
        {"fastipc-tcp": fastipc_tcp, "stdlib tcp, same framing": socket_tcp},
        LARGE,
        connections=8,
        count=3,
        per_round=40,
    )


pytestmark = pytest.mark.skipif(
    not hasattr(socket, "AF_UNIX") or fastipc.BACKEND != "rust",
    reason="measures the Rust backend's Unix sockets",
)


def check(comparison: Comparison) -> None:
    print(comparison.report())
    ratio = comparison.ratio("cpu" if any(comparison.medians.median("cpu").values()) else "wall")
    if asserting():
        assert ratio <= 1.00, comparison.report()


def test_socketpair_64_bytes_framed_at_unframed_cost() -> None:
    check(socketpair_64())


def test_tcp_1_mib_level_with_stdlib() -> None:
    check(tcp_1mib())


def noise_floor() -> list[Comparison]:
    """The standard library against itself: what the ratios above can tell apart."""
    return [
        compare(
            "noise floor: 64 B, stdlib against itself",
            {"stdlib A": socket_pair, "stdlib B": socket_pair},
            SMALL,
            connections=4,
            count=5,
            per_round=4000,
        ),
        compare(
            "noise floor: 1 MiB TCP, stdlib against itself",
            {"stdlib A": socket_tcp, "stdlib B": socket_tcp},
            LARGE,
            connections=8,
            count=3,
            per_round=40,
        ),
    ]


if __name__ == "__main__":
    print(socketpair_64().report())
    print(tcp_1mib().report())
    if "--noise" in sys.argv:
        for comparison in noise_floor():
            print(comparison.report())
