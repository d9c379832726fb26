"""One program written for multiprocessing.connection, timed with either module behind ``mpc``:
64-byte ``send_bytes``/``recv_bytes`` round trips with a child started by fork, over ``Pipe()``
and over ``Listener(("127.0.0.1", 0))``/``Client``.

    python benches/connection_module.py multiprocessing.connection
    python benches/connection_module.py fastipc.connection
    taskset -c 0 python benches/connection_module.py fastipc.connection   # both on one core

Prints the best of ``--runs`` runs of ``--count`` round trips, in microseconds per round trip.
"""

from __future__ import annotations

import argparse
import importlib
import multiprocessing
import time
from typing import Any

MESSAGE = b"x" * 64


def echo(conn: Any) -> None:
    """Sends every message back; an empty one ends it."""
    while True:
        message = conn.recv_bytes()
        if not message:
            return
        conn.send_bytes(message)


def serve(listener: Any) -> None:
    with listener.accept() as conn:
        echo(conn)


def round_trips(conn: Any, count: int, runs: int) -> float:
    best = float("inf")
    for _ in range(runs):
        start = time.perf_counter()
        for _ in range(count):
            conn.send_bytes(MESSAGE)
            conn.recv_bytes()
        best = min(best, (time.perf_counter() - start) / count * 1e6)
    conn.send_bytes(b"")
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("module", choices=["multiprocessing.connection", "fastipc.connection"])
    parser.add_argument("--count", type=int, default=20000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    mpc: Any = importlib.import_module(args.module)
    ctx = multiprocessing.get_context("fork")

    a, b = mpc.Pipe()
    child = ctx.Process(target=echo, args=(b,))
    child.start()
    b.close()
    print(f"{args.module} Pipe: {round_trips(a, args.count, args.runs):.2f} us")
    a.close()
    child.join()

    with mpc.Listener(("127.0.0.1", 0)) as listener:
        child = ctx.Process(target=serve, args=(listener,))
        child.start()
        with mpc.Client(listener.address) as conn:
            us = round_trips(conn, args.count, args.runs)
        print(f"{args.module} Listener/Client: {us:.2f} us")
        child.join()


if __name__ == "__main__":
    main()
