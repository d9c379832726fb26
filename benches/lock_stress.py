"""Stress fastipc.Lock with kill -9: worker processes take the lock, update shared data in two
steps (so that a kill between them leaves it half-updated), release, and are killed at random
moments; after each kill the parent must get the lock within a timeout (a deadlock otherwise),
repair the data when told the owner died, and start a replacement worker. The protected
counter must never fall: a lock that let two holders in, or lost an update's base, would show.

    python benches/lock_stress.py --kills 1000 --workers 3

Exit status 0 when every acquire succeeded, the data was consistent after every repair and the
counter only grew.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import struct
import sys
import time

import fastipc
from fastipc.bench.affinity import allowed_cpus, pin

# data layout: two u64 counters that must be equal outside the lock, and the number of repairs
# the workers made (any acquirer may be the one told that the owner died)
PAIR = struct.Struct("<QQ")
REPAIRS = struct.Struct("<QQ")  # acquires told the owner died, repairs of half-updated data


def store(buf: memoryview, at: int, layout: struct.Struct, *values: int) -> None:
    """Writes `values` with one copy of the packed bytes. Not `layout.pack_into`: it clears
    the target before it writes each field, so a holder killed in between leaves zeros that
    no repair can tell from a fresh start (every field of a half-updated pair must be either its
    old value or its new one)."""
    buf[at : at + layout.size] = layout.pack(*values)


REPAIRS_AT = PAIR.size


def worker(lock_name: str, data_name: str, ready_fd: int) -> None:  # pragma: no cover - child
    lock = fastipc.Lock(lock_name)
    data = fastipc.SharedMemory(data_name)
    buf = data.buf
    os.write(ready_fd, b"x")
    os.close(ready_fd)
    while True:
        with lock:
            a, b = PAIR.unpack_from(buf)
            if lock.recovered:
                told, fixed = REPAIRS.unpack_from(buf, REPAIRS_AT)
                store(buf, REPAIRS_AT, REPAIRS, told + 1, fixed + (a != b))
                b = a
            store(buf, 0, PAIR, a + 1, b)
            store(buf, 0, PAIR, a + 1, b + 1)


def spawn(lock_name: str, data_name: str, cpu: int | None) -> int:
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        try:
            os.close(r)
            pin(cpu)
            worker(lock_name, data_name, w)
        finally:
            os._exit(0)
    os.close(w)
    ok = os.read(r, 1) == b"x"
    os.close(r)
    if not ok:
        raise RuntimeError("a worker died before it started")
    return pid


def check(buf: memoryview, told: bool, seen: int, kill: int) -> tuple[int, bool] | None:
    """The parent's look at the data, lock held: the counter and whether it repaired a
    half-updated pair (`told`: the lock said its owner died); None, with the reason printed,
    when the counter fell below `seen` or the pair is half-updated without a recovery."""
    a, b = PAIR.unpack_from(buf)
    if a < seen:
        print(f"kill {kill}: the counter fell from {seen} to {a}", file=sys.stderr)
        return None
    if a == b:
        return a, False
    if not told:
        print(f"kill {kill}: inconsistent data without a recovery", file=sys.stderr)
        return None
    store(buf, 0, PAIR, a, a)
    return a, True


def arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kills", type=int, default=1000, help="workers to kill (default 1000)")
    parser.add_argument("--workers", type=int, default=3, help="workers at a time (default 3)")
    parser.add_argument("--timeout", type=float, default=5.0, help="deadlock threshold, seconds")
    parser.add_argument(
        "--max-delay-ms", type=float, default=3.0, help="random delay before a kill"
    )
    parser.add_argument("--seed", type=int, default=None)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = arguments(argv)
    rng = random.Random(args.seed)
    cpus = allowed_cpus()

    lock = fastipc.Lock(create=True)
    data = fastipc.SharedMemory(create=True, size=PAIR.size + REPAIRS.size)
    buf = data.buf
    workers: list[int] = []
    recovered = repaired = deadlocks = seen = 0
    worst = 0.0
    start = time.monotonic()
    try:
        for i in range(args.workers):
            workers.append(spawn(lock.name, data.name, cpus[i % len(cpus)]))
        for kill in range(args.kills):
            time.sleep(rng.random() * args.max_delay_ms / 1000)
            victim = workers.pop(rng.randrange(len(workers)))
            os.kill(victim, signal.SIGKILL)
            os.waitpid(victim, 0)
            began = time.monotonic()
            if not lock.acquire(timeout=args.timeout):
                deadlocks += 1
                print(f"kill {kill}: no acquire within {args.timeout} s: DEADLOCK", file=sys.stderr)
                break
            worst = max(worst, time.monotonic() - began)
            told = lock.recovered
            try:
                checked = check(buf, told, seen, kill)
            finally:
                lock.release()
            if checked is None:
                return 1
            seen, fixed = checked
            recovered += told
            repaired += fixed
            workers.append(spawn(lock.name, data.name, cpus[kill % len(cpus)]))
    finally:
        for pid in workers:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        total = PAIR.unpack_from(buf)[0]
        told, fixed = REPAIRS.unpack_from(buf, REPAIRS_AT)
        recovered += told
        repaired += fixed
        del buf
        data.close()
        data.unlink()
        lock.close()
        lock.unlink()
    elapsed = time.monotonic() - start
    print(
        f"{args.kills} kills of {args.workers} workers in {elapsed:.1f} s: {deadlocks} deadlocks, "
        f"{recovered} acquires told that the owner died, {repaired} half-updated states repaired, "
        f"{total} protected updates, slowest acquire after a kill {worst * 1000:.1f} ms"
    )
    return 1 if deadlocks else 0


if __name__ == "__main__":
    sys.exit(main())
