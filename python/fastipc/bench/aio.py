"""``fastipc bench --async``: fastipc on asyncio against the asyncio alternatives.

Rows, each between two processes pinned to one CPU (the client here, the echo side a child from
:mod:`.aio_peer`), both ends on an event loop:

- 64 B round trip: ``fastipc.aio`` against asyncio streams (``open_unix_connection`` with the
  same 4-byte length framing) and pyzmq's ``zmq.asyncio`` PAIR over ``ipc://`` (skipped, with a
  note, without pyzmq), on the default loop and on uvloop (skipped without it);
- 1 MiB round trip: ``fastipc.aio`` against the blocking fastipc connection;
- many connections: one asyncio listener, the clients in other processes, the file limit raised
  within the hard limit; all served, descriptors counted before and after, memory per idle
  connection.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from typing import IO, Any

from .affinity import allowed_cpus, pinned
from .aio_peer import new_loop

__all__ = ["Options", "Row", "format_report", "run"]

_HDR = struct.Struct("!i")
SMALL, LARGE = 64, 1 << 20
FASTIPC, STREAMS, ZMQ, BLOCKING = "fastipc-aio", "asyncio-streams", "zmq-asyncio", "fastipc"
LOOPS = ("asyncio", "uvloop")


@dataclass
class Options:
    quick: bool = False
    cpu: int | None = None
    backend: str | None = None
    connections: int = 10_000
    client_processes: int = 4


@dataclass
class Row:
    mechanism: str
    loop: str
    size: int
    rounds: int = 0
    median_us: float | None = None
    p99_us: float | None = None
    note: str = ""


@dataclass
class Many:
    requested: int = 0
    connections: int = 0
    served: int = 0
    fds_before: int = 0
    fds_idle: int = 0
    fds_after: int = 0
    rss_before: int = 0
    rss_idle: int = 0
    seconds: float = 0.0
    note: str = ""

    @property
    def per_connection(self) -> float:
        return (self.rss_idle - self.rss_before) / max(self.connections, 1)


@dataclass
class Report:
    rows: list[Row] = field(default_factory=list)
    ratios: dict[str, float] = field(default_factory=dict)
    many: Many | None = None
    notes: list[str] = field(default_factory=list)


class _Peer:
    """A child of :mod:`.aio_peer`, talking JSON lines."""

    def __init__(self, role: str, config: dict[str, Any], backend: str | None) -> None:
        env = dict(os.environ)
        if backend:
            env["FASTIPC_BACKEND"] = backend
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "fastipc.bench.aio_peer", role, json.dumps(config)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
            text=True,
        )

    def line(self) -> dict[str, Any]:
        stdout: IO[str] | None = self.proc.stdout
        text = stdout.readline() if stdout is not None else ""
        if not text:
            code = self.proc.wait(10)
            raise RuntimeError(f"benchmark process ended (exit status {code})")
        got: dict[str, Any] = json.loads(text)
        return got

    def say(self, text: str) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.write(text + "\n")
            self.proc.stdin.flush()

    def finish(self, timeout: float = 30.0) -> None:
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        for stream in (self.proc.stdin, self.proc.stdout):
            if stream is not None:
                stream.close()


# -- round trips --------------------------------------------------------------------------------

Send = Callable[[bytes], Awaitable[object]]
Receive = Callable[[], Awaitable[object]]


async def _timed(send: Send, receive: Receive, payload: bytes, rounds: int) -> list[int]:
    """Times ``rounds`` round trips, each awaiting ``send(payload)`` then ``receive()``
    directly, as the blocking row calls its send and receive."""
    for _ in range(max(rounds // 10, 10)):
        await send(payload)
        await receive()
    clock = time.perf_counter_ns
    times = []
    for _ in range(rounds):
        t0 = clock()
        await send(payload)
        await receive()
        times.append(clock() - t0)
    return times


async def _client_fastipc(path: str, payload: bytes, rounds: int) -> list[int]:
    from fastipc import aio

    conn = await aio.connect(f"unix:{path}", max_message=len(payload) + 16)
    try:
        return await _timed(conn.send_bytes, conn.recv_bytes, payload, rounds)
    finally:
        conn.close()


async def _client_streams(path: str, payload: bytes, rounds: int) -> list[int]:
    reader, writer = await asyncio.open_unix_connection(path, limit=len(payload) + 8)
    head = _HDR.pack(len(payload))

    async def send(data: bytes) -> None:
        writer.write(head + data)
        await writer.drain()

    async def receive() -> bytes:
        size = _HDR.unpack(await reader.readexactly(4))[0]
        return await reader.readexactly(size)

    try:
        return await _timed(send, receive, payload, rounds)
    finally:
        writer.close()
        await writer.wait_closed()


async def _client_zmq(path: str, payload: bytes, rounds: int) -> list[int]:
    import zmq  # type: ignore[import-not-found, unused-ignore]
    import zmq.asyncio  # type: ignore[import-not-found, unused-ignore]

    ctx = zmq.asyncio.Context()
    sock = ctx.socket(zmq.PAIR)
    sock.connect(f"ipc://{path}")

    def receive() -> Awaitable[object]:
        result: Awaitable[object] = sock.recv(copy=False)
        return result

    try:
        return await _timed(sock.send, receive, payload, rounds)
    finally:
        await sock.send(b"")
        sock.close(linger=1000)
        ctx.term()


CLIENTS = {FASTIPC: _client_fastipc, STREAMS: _client_streams, ZMQ: _client_zmq}


def _blocking_client(path: str, payload: bytes, rounds: int) -> list[int]:
    import fastipc

    conn = fastipc.connect(f"unix:{path}", max_message=len(payload) + 16)
    with conn:
        for _ in range(max(rounds // 10, 10)):
            conn.send_bytes(payload)
            conn.recv_bytes()
        clock = time.perf_counter_ns
        times = []
        for _ in range(rounds):
            t0 = clock()
            conn.send_bytes(payload)
            conn.recv_bytes()
            times.append(clock() - t0)
    return times


def _missing(mechanism: str, loop: str) -> str:
    """Why the row cannot run here ("" if it can)."""
    if loop == "uvloop" and not _importable("uvloop"):
        return "uvloop is not installed (pip install uvloop)"
    if mechanism == ZMQ and not _importable("zmq"):
        return "pyzmq is not installed (pip install pyzmq)"
    return ""


def _importable(name: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(name) is not None


def _round_trip(options: Options, row: Row, workdir: str) -> None:
    row.note = _missing(row.mechanism, row.loop)
    if row.note:
        return
    path = os.path.join(workdir, f"{row.mechanism}-{row.loop}-{row.size}")
    payload = os.urandom(row.size)
    config = {
        "cpu": options.cpu,
        "loop": row.loop,
        "path": path,
        "mechanism": row.mechanism,
        "max_message": row.size + 16,
    }
    blocking = row.mechanism == BLOCKING
    peer = _Peer("echo-blocking" if blocking else "echo", config, options.backend)
    try:
        peer.line()
        with pinned(options.cpu):
            if blocking:
                times = _blocking_client(path, payload, row.rounds)
            else:
                client = CLIENTS[row.mechanism]
                with asyncio.Runner(loop_factory=lambda: new_loop(row.loop)) as runner:
                    times = runner.run(client(path, payload, row.rounds))
    finally:
        peer.finish()
    times.sort()
    row.median_us = statistics.median(times) / 1000
    row.p99_us = times[min(len(times) - 1, int(len(times) * 0.99))] / 1000


# -- many connections ----------------------------------------------------------------------------


def _many(options: Options, workdir: str) -> Many:
    import resource

    many = Many(requested=options.connections)
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    count = options.connections
    if hard != resource.RLIM_INFINITY and hard < count + 256:
        count = max(hard - 256, 0)
        many.note = f"the hard file limit ({hard}) allows {count} connections"
    many.connections = count
    path = os.path.join(workdir, "many")
    server = _Peer("many-server", {"path": path, "count": count}, options.backend)
    clients: list[_Peer] = []
    try:
        ready = server.line()
        many.rss_before, many.fds_before = ready["rss"], ready["fds"]
        start = time.perf_counter()
        share = [count // options.client_processes] * options.client_processes
        share[0] += count - sum(share)
        clients = [
            _Peer("many-client", {"path": path, "count": n}, options.backend) for n in share if n
        ]
        answered = sum(client.line()["answered"] for client in clients)
        many.seconds = time.perf_counter() - start
        server.say("stats")
        idle = server.line()
        many.served, many.rss_idle, many.fds_idle = idle["served"], idle["rss"], idle["fds"]
        if answered != count:
            many.note += f"; {count - answered} connections got no answer"
        for client in clients:
            client.say("close")
            client.line()
        after = server.line()
        many.fds_after = after["fds"]
    finally:
        for client in clients:
            client.finish()
        server.finish()
    return many


# -- the run and its report ----------------------------------------------------------------------


def _plan(quick: bool) -> list[Row]:
    small, large = (3000, 200) if quick else (20000, 1000)
    mechanisms = (FASTIPC, STREAMS, ZMQ)
    rows = [Row(mechanism, loop, SMALL, small) for loop in LOOPS for mechanism in mechanisms]
    rows += [Row(FASTIPC, loop, LARGE, large) for loop in LOOPS]
    rows.append(Row(BLOCKING, "-", LARGE, large))
    return rows


def _ratios(rows: list[Row]) -> dict[str, float]:
    by = {(r.mechanism, r.loop, r.size): r.median_us for r in rows if r.median_us}
    out = {}
    for loop in LOOPS:
        mine = by.get((FASTIPC, loop, SMALL))
        for other in (STREAMS, ZMQ):
            theirs = by.get((other, loop, SMALL))
            if mine and theirs:
                out[f"64 B {FASTIPC}/{other} ({loop})"] = mine / theirs
        large = by.get((FASTIPC, loop, LARGE))
        blocking = by.get((BLOCKING, "-", LARGE))
        if large and blocking:
            out[f"1 MiB {FASTIPC} ({loop})/{BLOCKING} blocking"] = large / blocking
    return out


def run(options: Options) -> Report:
    if options.cpu is None:
        options.cpu = allowed_cpus()[0]
    report = Report()
    workdir = tempfile.mkdtemp(prefix="fastipc-aio-bench-")
    try:
        for row in _plan(options.quick):
            _round_trip(options, row, workdir)
            report.rows.append(row)
        report.many = _many(options, workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    report.ratios = _ratios(report.rows)
    return report


def _size(n: int) -> str:
    return "1 MiB" if n == LARGE else f"{n} B"


def format_report(report: Report, cpu: int | None) -> str:
    lines = [
        f"fastipc bench --async: round trips, both processes on CPU {cpu}, both ends asyncio",
        f"{'mechanism':<17} {'loop':<8} {'size':>6} {'rounds':>7} {'median us':>10} {'p99 us':>9}",
    ]
    for r in report.rows:
        if r.median_us is None:
            lines.append(f"{r.mechanism:<17} {r.loop:<8} {_size(r.size):>6}  skipped: {r.note}")
            continue
        lines.append(
            f"{r.mechanism:<17} {r.loop:<8} {_size(r.size):>6} {r.rounds:>7} "
            f"{r.median_us:>10.1f} {r.p99_us or 0:>9.1f}"
        )
    lines.append("")
    lines.append("ratios (median against median; lower is faster):")
    lines.extend(f"  {name}: {value:.2f}x" for name, value in report.ratios.items())
    many = report.many
    if many is not None:
        leaked = many.fds_after - many.fds_before
        lines += [
            "",
            f"{many.connections:,} concurrent connections to one asyncio listener "
            f"({many.seconds:.1f} s to connect and answer all): {many.served:,} served; "
            f"descriptors {many.fds_before} before, {many.fds_idle} idle, {many.fds_after} "
            f"after ({leaked:+d}); memory per idle connection "
            f"{many.per_connection / 1024:.1f} KiB (server RSS "
            f"{many.rss_before / 2**20:.1f} -> {many.rss_idle / 2**20:.1f} MiB)",
        ]
        if many.note:
            lines.append(f"  note: {many.note.strip('; ')}")
    return "\n".join(lines)


def to_json(report: Report) -> dict[str, Any]:
    return {
        "rows": [asdict(r) for r in report.rows],
        "ratios": report.ratios,
        "many": None if report.many is None else asdict(report.many),
    }
