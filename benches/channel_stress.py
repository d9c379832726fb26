"""Stress fastipc.Queue with kill -9: producer and consumer processes share a named queue and
are killed at random moments (mid-put, mid-get, holding a reservation or a view, waiting); after
each kill the parent checks that the queue still works (a put and a get within a timeout: never
wedged) and every message it takes is whole (never half a message); at the end it drains the
queue and checks every message left. Messages larger than half the ring travel in segments of
their own: a producer killed between making one and publishing it leaves it behind, so the run
records in a registry of its own and ends with `fastipc clean`'s work, which must leave nothing.

    python benches/channel_stress.py --kills 1000

Exit status 0 when every check passed.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import queue
import random
import signal
import sys
import tempfile
import time

import fastipc
from fastipc import _registry

HEAD = 8


def message(i: int, size: int) -> bytes:
    """A self-checking message: its number at both ends, a pattern of it in between."""
    tag = i.to_bytes(HEAD, "little")
    body = bytes((i * 31 + k) & 0xFF for k in range(size))
    return tag + body + tag


def whole(data: bytes) -> bool:
    if len(data) < 2 * HEAD:
        return False
    i = int.from_bytes(data[:HEAD], "little")
    return data == message(i, len(data) - 2 * HEAD)


def producer(name: str, seed: int) -> None:  # pragma: no cover - child
    q = fastipc.Queue.open(name)
    rng = random.Random(seed)
    i = seed * 1_000_000
    while True:
        size = rng.choice((0, 16, 100, 1000, 5000, 40_000))
        if rng.random() < 0.2:
            with q.reserve(size + 2 * HEAD) as view:
                view[:] = message(i, size)
        else:
            q.put_bytes(message(i, size))
        i += 1


def consumer(name: str, seed: int) -> None:  # pragma: no cover - child
    q = fastipc.Queue.open(name)
    rng = random.Random(seed)
    while True:
        if rng.random() < 0.2:
            with q.get_view() as view:
                ok = whole(bytes(view))
        else:
            ok = whole(q.get_bytes())
        if not ok:
            os._exit(3)


def start(role: str, name: str, seed: int) -> int:
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        code = 1
        try:
            (producer if role == "producer" else consumer)(name, seed)
        finally:
            os._exit(code)
    return pid


def check_alive(q: fastipc.Queue, rng: random.Random) -> None:
    """The queue is not wedged: a put and a get go through; what comes out is whole."""
    probe = message(rng.randrange(1 << 40), rng.randrange(0, 64))
    # full of the producers' messages, the put may time out: the get below must still work
    with contextlib.suppress(queue.Full):
        q.put_bytes(probe, timeout=5)
    for n in range(rng.randrange(1, 4)):
        try:
            # the first within 5 s (the probe, or older messages), the others if there
            got = q.get_bytes(timeout=5 if n == 0 else 0)
        except queue.Empty:
            if n == 0:
                raise SystemExit("the queue is wedged: nothing to get within 5 s") from None
            return
        if not whole(got):
            raise SystemExit(f"half a message delivered: {len(got)} bytes")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kills", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    name = f"/fastipc-stress-{os.getpid()}"
    q = fastipc.Queue(capacity=1 << 16, name=name)
    started = time.monotonic()
    try:
        for kill in range(args.kills):
            role = rng.choice(("producer", "consumer"))
            pid = start(role, name, kill + 1)
            time.sleep(rng.random() * 0.01)
            os.kill(pid, signal.SIGKILL)
            _, status = os.waitpid(pid, 0)
            if os.WIFEXITED(status) and os.WEXITSTATUS(status) == 3:
                raise SystemExit("a consumer received half a message")
            check_alive(q, rng)
        left = 0
        while True:
            try:
                data = q.get_bytes(timeout=0)
            except queue.Empty:
                break
            if not whole(data):
                raise SystemExit("half a message left in the queue")
            left += 1
    finally:
        q.close()
        q.unlink()
    took = time.monotonic() - started
    cleaned = len(_registry.clean())
    unclean = _registry.entries()
    print(
        f"{args.kills} kills in {took:.1f} s: never wedged, no half message ({left} left);"
        f" `fastipc clean` removed {cleaned} segments of killed producers"
    )
    if unclean:
        raise SystemExit(f"left behind after clean: {[e.name for e in unclean]}")
    return 0


def run_in_own_registry() -> int:
    """``main`` with ``FASTIPC_REGISTRY_DIR`` a fresh directory (the children inherit it): the
    segments of its killed producers are its own to clean, nobody else's."""
    with tempfile.TemporaryDirectory() as registry:
        os.environ["FASTIPC_REGISTRY_DIR"] = registry
        return main()


if __name__ == "__main__":
    sys.exit(run_in_own_registry())
