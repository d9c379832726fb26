"""One-core 64 B round trips of ``fastipc.aio`` objects other than ``Connection``, both ends on
asyncio's own loop, in two processes pinned to CPU 0: a pair of shared-memory queues (``Queue``:
one each way), a ``channel()`` pair, or a pair of pipes. Prints the median of ``--runs`` runs of
``--count`` round trips each, in microseconds per round trip.

    python benches/aio_idle_roundtrip.py queue --runs 5
    python benches/aio_idle_roundtrip.py pipe --runs 5

The idle wait (``docs/aio.md``) is what it measures; ``--no-idle`` turns it off in both
processes (``fastipc.aio._ready.wait_idle`` answers False), for the figure without it.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import time
from typing import Any

from fastipc import aio
from fastipc.aio import _pipes, _ready

SIZE = 64


def _no_idle() -> None:
    def never(readiness: _ready.Readiness, limit: float | None = None) -> bool:
        return False

    _ready.wait_idle = never
    _pipes.wait_idle = never


def _pin() -> None:
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {0})


class _Ends:
    """The two directions of one side: ``send(data)`` and ``recv()`` awaited."""

    def __init__(self, kind: str, tx: Any, rx: Any) -> None:
        self.kind, self.tx, self.rx = kind, tx, rx

    async def send(self, data: bytes) -> None:
        if self.kind == "pipe":
            await self.tx.write_all(data)
        elif self.kind == "queue":
            await self.tx.put_bytes(data)
        else:
            await self.tx.send_bytes(data)

    async def recv(self) -> bytes:
        if self.kind == "pipe":
            data: bytes = await self.rx.read_exact(SIZE)
        elif self.kind == "queue":
            data = await self.rx.get_bytes()
        else:
            data = await self.rx.recv_bytes()
        return data


async def _echo(ends: _Ends, count: int) -> None:
    for _ in range(count):
        await ends.send(await ends.recv())


async def _client(ends: _Ends, count: int, runs: int) -> list[float]:
    payload = b"x" * SIZE
    for _ in range(count // 10):  # warm up
        await ends.send(payload)
        await ends.recv()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        for _ in range(count):
            await ends.send(payload)
            await ends.recv()
        times.append((time.perf_counter() - start) / count * 1e6)
    return times


def _child(args: argparse.Namespace) -> None:
    _pin()
    if args.no_idle:
        _no_idle()
    names = args.names.split(",")
    if args.kind == "queue":  # the parent's first queue is this side's receive
        ends = _Ends("queue", aio.Queue.open(names[1]), aio.Queue.open(names[0]))
    elif args.kind == "channel":
        end = aio.Channel.open(names[0])
        ends = _Ends("channel", end, end)
    else:
        rfd, wfd = (int(f) for f in args.fds.split(","))
        ends = _Ends("pipe", aio.PipeWriter(wfd), aio.PipeReader(rfd))
    total = args.count // 10 + args.count * args.runs
    asyncio.run(_echo(ends, total))


def _parent(args: argparse.Namespace) -> list[float]:
    _pin()
    if args.no_idle:
        _no_idle()
    names: list[str] = []
    keep: list[Any] = []
    pass_fds: tuple[int, ...] = ()
    child_fds = ""
    if args.kind == "queue":
        names = [f"/fastipc-bench-{os.getpid()}-{d}" for d in ("a", "b")]
        keep = [aio.Queue(name=n, capacity=1 << 16) for n in names]
    elif args.kind == "channel":
        names = [f"/fastipc-bench-{os.getpid()}-c"]
        keep = [aio.Channel.create(names[0], capacity=1 << 16)]
    else:
        down_r, down_w = os.pipe()  # parent to child
        up_r, up_w = os.pipe()  # child to parent
        pass_fds = (down_r, up_w)
        child_fds = f"{down_r},{up_w}"
    cmd = [sys.executable, __file__, args.kind, "--child", "--count", str(args.count)]
    cmd += ["--runs", str(args.runs), "--names", ",".join(names), "--fds", child_fds]
    if args.no_idle:
        cmd.append("--no-idle")
    proc = subprocess.Popen(cmd, pass_fds=pass_fds)
    try:
        if args.kind == "queue":
            ends = _Ends("queue", keep[0], keep[1])
        elif args.kind == "channel":
            ends = _Ends("channel", keep[0], keep[0])
        else:
            os.close(down_r)
            os.close(up_w)
            ends = _Ends("pipe", aio.PipeWriter(down_w), aio.PipeReader(up_r))
        times = asyncio.run(_client(ends, args.count, args.runs))
        proc.wait(60)
        return times
    finally:
        proc.kill()
        for obj in keep:
            obj.unlink()
            obj.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("kind", choices=("queue", "channel", "pipe"))
    parser.add_argument("--count", type=int, default=20_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--no-idle", action="store_true")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--names", default="", help=argparse.SUPPRESS)
    parser.add_argument("--fds", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args)
        return
    times = _parent(args)
    how = ", idle wait off" if args.no_idle else ""
    print(
        f"{args.kind} 64 B round trip{how}: median {statistics.median(times):.2f} us"
        f" ({', '.join(f'{t:.2f}' for t in times)})"
    )


if __name__ == "__main__":
    main()
