"""What a run of ``fastipc bench`` is asked (:class:`Options`) and what it finds: one
:class:`Cell` per mechanism, size and placement, gathered in a :class:`Report`, with the JSON
form that docs/bench.md describes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .base import LIMIT, REFERENCE, family
from .mechanisms import REGISTRY
from .timing import TimingPlan

__all__ = ["SCHEMA", "Cell", "Options", "Progress", "Report"]

SCHEMA = "fastipc-bench/2"


@dataclass(frozen=True)
class Progress:
    done: int
    """Cells finished so far."""
    total: int
    """Cells that run (unavailable ones excluded)."""
    line: str
    """What runs now, or how the cell that just finished went."""
    final: bool
    """Whether the cell of ``line`` has finished."""


@dataclass
class Options:
    sizes: list[int]
    mechanisms: list[str]
    placements: list[str]
    plan: TimingPlan
    backend: str | None = None
    cpus: list[int] | None = None
    quick: bool = False
    progress: Callable[[Progress], None] | None = None
    """Called before and after each cell that runs."""
    on_machine: Callable[[dict[str, Any]], None] | None = None
    """Called with the machine description before the first cell runs."""


@dataclass
class Cell:
    mechanism: str
    size: int
    placement: str
    server_cpu: int | None
    client_cpu: int | None
    status: str = "pending"
    """``ok``; ``error`` (a failure); ``unsupported`` (the mechanism refused this size, for
    example a packet larger than the kernel accepts); ``unavailable`` (not on this platform)."""
    error: str | None = None
    iterations: int = 0
    warmup_iterations: int = 0
    warmup_ns: int = 0
    stats: dict[str, float] = field(default_factory=dict)
    ratios: dict[str, float | str | None] = field(default_factory=dict)
    stream: dict[str, Any] = field(default_factory=dict)
    """The one-way stream: ``status`` (``ok`` or ``error``), ``error``, and when ok the batches
    and the statistics of :meth:`stream_stats`."""

    @property
    def median_ns(self) -> float:
        return self.stats["median_ns"]

    def throughput(self) -> dict[str, float]:
        """Derived from the median round trip (payload bytes), and sustained from the total."""
        seconds = self.median_ns / 1e9
        return {
            "round_trips_per_s": 1.0 / seconds,
            "messages_per_s": 2.0 / seconds,
            "gb_per_s_both_ways": 2.0 * self.size / seconds / 1e9,
            "gb_per_s_one_way": self.size / seconds / 1e9,
            "sustained_round_trips_per_s": self.stats["count"] * 1e9 / self.stats["total_ns"],
        }

    @property
    def stream_ok(self) -> bool:
        return self.stream.get("status") == "ok"

    def set_stream(self, raw: dict[str, Any] | None, error: str | None) -> None:
        if raw is None:
            self.stream = {"status": "error", "error": error or "not measured"}
            return
        count = int(raw["messages_per_batch"])
        rates = sorted(count * 1e9 / ns for ns in raw["batches_ns"])
        median = (
            rates[len(rates) // 2]
            if len(rates) % 2
            else sum(rates[len(rates) // 2 - 1 : len(rates) // 2 + 1]) / 2
        )
        self.stream = {
            "status": "ok",
            "error": None,
            "messages_per_batch": count,
            "batches": len(rates),
            "warmup_messages": raw["warmup_messages"],
            "warmup_ns": raw["warmup_ns"],
            "batches_ns": list(raw["batches_ns"]),
            "messages_per_s": median,
            "messages_per_s_min": rates[0],
            "messages_per_s_max": rates[-1],
            "gb_per_s": median * self.size / 1e9,
        }

    def to_json(self) -> dict[str, Any]:
        mechanism = REGISTRY[self.mechanism]
        data: dict[str, Any] = {
            "mechanism": self.mechanism,
            "summary": mechanism.summary,
            "family": family(mechanism),
            "size": self.size,
            "placement": self.placement,
            "cpus": {"server": self.server_cpu, "client": self.client_cpu},
            "status": self.status,
            "error": self.error,
        }
        if self.status == "ok":
            data.update(
                iterations=self.iterations,
                warmup_iterations=self.warmup_iterations,
                warmup_ns=self.warmup_ns,
                stats=self.stats,
                throughput=self.throughput(),
                stream=self.stream,
                ratios=self.ratios,
            )
        return data


@dataclass
class Report:
    machine: dict[str, Any]
    options: Options
    cells: list[Cell]
    started: str
    elapsed_s: float = 0.0
    command: list[str] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        return any(cell.status == "error" for cell in self.cells)

    def to_json(self) -> dict[str, Any]:
        plan = self.options.plan
        return {
            "schema": SCHEMA,
            "started": self.started,
            "elapsed_s": self.elapsed_s,
            "command": self.command,
            "machine": self.machine,
            "settings": {
                "sizes": self.options.sizes,
                "mechanisms": self.options.mechanisms,
                "placements": self.options.placements,
                "reference": REFERENCE,
                "limit": LIMIT,
                "quick": self.options.quick,
                "timing": plan.to_json(),
                "clock": "time.perf_counter_ns around each round trip, gc disabled "
                "(clock_gettime(CLOCK_MONOTONIC) in the reference peer)",
                "throughput_basis": "stream: messages sent back to back one way, timed from the "
                "first send until the receiver acknowledges the last; median of the batches. "
                "results[].throughput is derived from the median round trip instead",
            },
            "results": [cell.to_json() for cell in self.cells],
        }
