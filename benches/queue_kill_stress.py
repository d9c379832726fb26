"""Kill -9 stress of fastipc.Queue: producers and consumers killed at random points.

Two producers (``put_bytes`` and ``reserve``; 16 B to 40 kB in a 32 KiB ring, so some messages
travel in segments of their own) and two consumers (``get_bytes`` and ``get_view``, each message
checked byte for byte) run on one named queue; every 0-20 ms one of the four is killed with
SIGKILL and replaced. At the end: no consumer saw a damaged message or an error, the queue
still works, and ``fastipc clean`` removes the segments of killed producers.

    FASTIPC_BACKEND=python python benches/queue_kill_stress.py --kills 1000

Exits non-zero on any failure. Uses a private registry directory.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import queue
import random
import signal
import sys
import tempfile
import time
from typing import Any

SIZES = (16, 100, 1000, 5000, 40_000)


def message(i: int, n: int) -> bytes:
    head = i.to_bytes(8, "little")
    return head + bytes((i * 31 + k) & 0xFF for k in range(n - 16)) + head


def intact(data: bytes) -> bool:
    return data == message(int.from_bytes(data[:8], "little"), len(data))


def backend() -> Any:
    """The backend module FASTIPC_BACKEND selects (as the facade does)."""
    from fastipc import _backend

    return _backend.load()


def producer(name: str, seed: int) -> None:
    q = backend().Queue.open(name)
    rng = random.Random(seed)
    i = seed * 10**7
    while True:
        n = rng.choice(SIZES)
        if rng.random() < 0.2:
            with q.reserve(n) as view:
                view[:] = message(i, n)
        else:
            q.put_bytes(message(i, n))
        i += 1


def consumer(name: str, problems: Any) -> None:
    q = backend().Queue.open(name)
    rng = random.Random()
    while True:
        try:
            if rng.random() < 0.3:
                with q.get_view(timeout=1) as view:
                    ok = intact(bytes(view))
            else:
                ok = intact(q.get_bytes(timeout=1))
        except queue.Empty:
            continue
        except Exception as exc:
            problems.put_bytes(repr(exc).encode())
            continue
        if not ok:
            problems.put_bytes(b"a damaged message")


def run(kills: int) -> int:
    from fastipc import _registry

    mod = backend()
    ctx = mp.get_context("fork")
    name = f"/fastipc-kill-stress-{os.getpid()}"
    q = mod.Queue(name=name, capacity=1 << 15)
    problems = mod.Queue()
    rng = random.Random(1)
    seeds = iter(range(1, 10**6))

    def start(kind: str) -> tuple[str, Any]:
        args = (name, next(seeds)) if kind == "p" else (name, problems)
        p = ctx.Process(target=producer if kind == "p" else consumer, args=args)
        p.start()
        return kind, p

    procs = [start("p"), start("p"), start("c"), start("c")]
    began = time.monotonic()
    for _ in range(kills):
        time.sleep(rng.random() * 0.02)
        j = rng.randrange(len(procs))
        kind, p = procs[j]
        os.kill(p.pid, signal.SIGKILL)
        p.join()
        p.close()
        procs[j] = start(kind)
    elapsed = time.monotonic() - began
    for _, p in procs:
        os.kill(p.pid, signal.SIGKILL)
        p.join()
        p.close()
    damaged = drained = 0
    while True:
        try:
            damaged += not intact(q.get_bytes(timeout=0))
        except queue.Empty:
            break
        drained += 1
    seen = []
    while True:
        try:
            seen.append(problems.get_bytes(timeout=0).decode(errors="replace"))
        except queue.Empty:
            break
    q.put_bytes(b"alive")
    works = q.get_bytes(timeout=5) == b"alive"
    q.close()
    q.unlink()
    problems.close()
    cleaned = len(_registry.clean())
    left = len(_registry.entries())
    print(
        f"{mod.BACKEND}: {kills} kills in {elapsed:.1f} s; consumers reported {len(seen)}"
        f" problems; {damaged} damaged of {drained} left in the ring; queue works: {works};"
        f" `fastipc clean` removed {cleaned} segments of killed producers, {left} entries left"
    )
    for text in seen[:10]:
        print("  consumer:", text)
    return 0 if not seen and not damaged and works and not left else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--kills", type=int, default=1000)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as registry:
        os.environ["FASTIPC_REGISTRY_DIR"] = registry
        return run(options.kills)


if __name__ == "__main__":
    sys.exit(main())
