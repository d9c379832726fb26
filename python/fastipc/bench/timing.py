"""How ``fastipc bench`` times: the plan (warm-up, budgets, batches), the timed round trips, the
timed one-way stream, and the statistics of the samples. Used by the benchmark's client process
(:mod:`.peer`) and by the runner, which sends the plan and summarises what comes back.
"""

from __future__ import annotations

import gc
import math
import random
import time
from array import array
from collections.abc import Callable, Sequence
from typing import Any

__all__ = ["TimingPlan", "measure", "payload_for", "percentile", "stream", "summarize"]

PERCENTILES = (50.0, 90.0, 99.0, 99.9)


class TimingPlan:
    """How long to warm up and how many round trips to time."""

    def __init__(
        self,
        *,
        iterations: int | None = None,
        budget_s: float = 1.0,
        max_iterations: int = 20000,
        min_iterations: int = 200,
        warmup_s: float = 0.2,
        min_warmup: int = 10,
        stream_budget_s: float = 0.25,
        stream_warmup_s: float = 0.05,
        stream_batches: int = 5,
        stream_min_messages: int = 20,
        stream_max_messages: int = 200000,
    ) -> None:
        self.iterations = iterations
        """Round trips to time, and messages per stream batch; ``None``: from the budgets."""
        self.budget_s = budget_s
        self.max_iterations = max_iterations
        self.min_iterations = min_iterations
        self.warmup_s = warmup_s
        self.min_warmup = min_warmup
        self.stream_budget_s = stream_budget_s
        self.stream_warmup_s = stream_warmup_s
        self.stream_batches = stream_batches
        self.stream_min_messages = stream_min_messages
        self.stream_max_messages = stream_max_messages

    def to_json(self) -> dict[str, Any]:
        return dict(vars(self))

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TimingPlan:
        return cls(**data)


def measure(
    send: Callable[[bytes], object],
    recv: Callable[[], object],
    payload: bytes,
    plan: TimingPlan,
) -> tuple[array[int], int, int]:
    """Warm up, then time each round trip; returns (samples in ns, warm-up count, warm-up ns).

    Without a fixed number of iterations the warm-up also calibrates: as many round trips are
    timed as fit in the budget at the warm-up's pace, within the plan's bounds.
    """
    clock = time.perf_counter_ns
    warmup = 0
    start = clock()
    deadline = start + int(plan.warmup_s * 1e9)
    while warmup < plan.min_warmup or clock() < deadline:
        send(payload)
        recv()
        warmup += 1
    warmup_ns = clock() - start
    if plan.iterations is not None:
        n = plan.iterations
    else:
        per_round_trip = warmup_ns / warmup
        n = int(plan.budget_s * 1e9 / per_round_trip)
        n = max(plan.min_iterations, min(plan.max_iterations, n))
    samples = array("q", bytes(8 * n))
    gc.collect()
    gc.disable()
    try:
        for i in range(n):
            t0 = clock()
            send(payload)
            recv()
            samples[i] = clock() - t0
    finally:
        gc.enable()
    return samples, warmup, warmup_ns


def stream(
    send: Callable[[bytes], object],
    recv: Callable[[], object],
    received: Callable[[object], bytes],
    payload: bytes,
    plan: TimingPlan,
) -> dict[str, Any]:
    """Time the one-way stream: batches of a count message, that many messages sent back to
    back, and the receiver's acknowledgement (the byte count it received). A batch is timed from
    its first message until the acknowledgement arrives. Warm-up batches (doubling from 8
    messages) calibrate how many messages a batch holds, unless the plan fixes it."""
    clock = time.perf_counter_ns
    size = len(payload)

    def batch(count: int) -> int:
        send(str(count).encode())
        t0 = clock()
        for _ in range(count):
            send(payload)
        ack = received(recv())
        elapsed = clock() - t0
        if int(ack) != count * size:
            raise AssertionError(f"the receiver counted {int(ack)} bytes, not {count * size}")
        return elapsed

    warm, per = 0, 8
    start = clock()
    while True:
        batch(per)
        warm += per
        per *= 2
        if clock() - start >= plan.stream_warmup_s * 1e9:
            break
    warm_ns = clock() - start
    if plan.iterations is not None:
        count = plan.iterations
    else:
        rate = warm / warm_ns
        count = int(rate * plan.stream_budget_s * 1e9 / plan.stream_batches)
        count = max(plan.stream_min_messages, min(plan.stream_max_messages, count))
    gc.collect()
    gc.disable()
    try:
        times = [batch(count) for _ in range(plan.stream_batches)]
    finally:
        gc.enable()
    return {
        "messages_per_batch": count,
        "warmup_messages": warm,
        "warmup_ns": warm_ns,
        "batches_ns": times,
    }


def percentile(ordered: Sequence[int], p: float) -> float:
    """The ``p``-th percentile of sorted data, interpolating linearly between ranks."""
    if not ordered:
        raise ValueError("no samples")
    rank = (len(ordered) - 1) * p / 100.0
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def summarize(samples: Sequence[int]) -> dict[str, float]:
    """Statistics of round-trip times in nanoseconds."""
    ordered = sorted(samples)
    n = len(ordered)
    mean = sum(ordered) / n
    var = sum((x - mean) ** 2 for x in ordered) / (n - 1) if n > 1 else 0.0
    stats: dict[str, float] = {
        "count": n,
        "min_ns": ordered[0],
        "max_ns": ordered[-1],
        "mean_ns": mean,
        "stdev_ns": math.sqrt(var),
        "total_ns": sum(ordered),
    }
    for p in PERCENTILES:
        stats[f"p{p:g}_ns".replace(".", "_")] = percentile(ordered, p)
    stats["median_ns"] = stats["p50_ns"]
    return stats


def payload_for(size: int) -> bytes:
    """A reproducible, incompressible payload (never all zeros)."""
    return random.Random(size).randbytes(size)
