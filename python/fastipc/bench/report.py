"""The report of ``fastipc bench``: the tables (grouped by placement and size, with the ratios to
the reference and the limit) and the JSON file."""

from __future__ import annotations

import json
import sys
from typing import Any

from .base import LIMIT, REFERENCE, family
from .mechanisms import REGISTRY
from .results import Cell, Report

__all__ = [
    "format_machine",
    "format_rate",
    "format_report",
    "format_size",
    "format_us",
    "write_json",
]


def format_size(size: int) -> str:
    for unit, scale in (("MiB", 1 << 20), ("KiB", 1 << 10)):
        if size >= scale and size % scale == 0:
            return f"{size // scale} {unit}"
    return f"{size} B"


def format_us(ns: float) -> str:
    us = ns / 1000.0
    if us >= 1000:
        return f"{us:,.0f}"
    return f"{us:.1f}" if us >= 10 else f"{us:.2f}"


def format_machine(machine: dict[str, Any]) -> str:
    allowed = machine["cpus_allowed"]
    lines = [
        f"machine : {machine['cpu_model']}, {machine['cpu_count']} CPUs "
        f"(usable: {','.join(map(str, allowed))}), {machine['system']} {machine['kernel']} "
        f"{machine['machine']}",
        f"python  : {machine['python']} ({machine['python_executable']})",
        f"fastipc : {machine['fastipc_version']}, backend {machine['fastipc_backend']}",
    ]
    if "load_average" in machine:
        load = " ".join(f"{x:.2f}" for x in machine["load_average"])
        lines.append(f"load    : {load} (1, 5, 15 min; other work on these CPUs adds noise)")
    return "\n".join(lines)


def _ratio(value: float | str | None) -> str:
    return f"{value:.2f}x" if isinstance(value, float) else "-"


def _percent(value: float | str | None) -> str:
    if not isinstance(value, float):
        return "-"
    return f"{value * 100:.0f}%" if value < 9.995 else f"{value:.0f}x"


def format_rate(value: float) -> str:
    """Messages per second, three significant digits: 1.23M, 456k, 789."""
    for unit, scale in (("M", 1e6), ("k", 1e3)):
        if value >= scale:
            number = value / scale
            return f"{number:.3g}{unit}" if number < 1000 else f"{number:.0f}{unit}"
    return f"{value:.3g}"


def _gbps(value: float) -> str:
    return f"{value:.3f}" if value < 10 else f"{value:.1f}"


HEADERS = (
    "mechanism",
    "median µs",
    "p99 µs",
    "of limit",
    "msg/s",
    "GB/s",
    "of limit",
    "vs mp-pipe",
    "vs stdlib",
)


def _preamble(report: Report, machine: bool) -> list[str]:
    """What the table shows and how it was measured."""
    plan = report.options.plan
    if plan.iterations is not None:
        amount = (
            f"{plan.iterations} timed round trips per row; "
            f"stream batches of {plan.iterations} messages"
        )
    else:
        amount = (
            f"~{plan.budget_s:g} s of round trips per row "
            f"({plan.min_iterations}-{plan.max_iterations}), "
            f"~{plan.stream_budget_s:g} s of stream in {plan.stream_batches} batches"
        )
    return [
        "fastipc bench: two processes; round trips through an echo side, then a one-way stream",
        *([format_machine(report.machine)] if machine else []),
        f"timing  : perf_counter_ns, gc off, warm-up excluded; {amount}",
        "round trip: median and p99 of one message there and back (latency);",
        f"          of limit = {LIMIT} median / this median (the C reference peer: 100%)",
        "one way : msg/s and GB/s of a stream of messages sent back to back one way, measured",
        "          (not derived from the round trip): median of the batches, payload bytes;",
        f"          of limit = this msg/s / {LIMIT} msg/s",
        f"vs mp-pipe = {REFERENCE} round-trip median / this one (>1 is faster);",
        "vs stdlib = the same against the alternative named after it",
    ]


def _title(placement: str, size: int, first: Cell) -> str:
    """The line above the table of one placement and size."""
    if placement == "same-core":
        where = f"both on CPU {first.server_cpu}" if first.server_cpu is not None else "not pinned"
    else:
        where = f"echo on CPU {first.server_cpu}, client on CPU {first.client_cpu}"
    return f"{format_size(size)} messages, {placement} ({where})"


def _row(cell: Cell, notes: list[str]) -> tuple[str, ...]:
    """The row of one cell; what does not fit in it (errors) goes to ``notes``."""
    name = cell.mechanism + {"limit": " (limit)"}.get(family(REGISTRY[cell.mechanism]), "")
    if cell.mechanism == REFERENCE:
        name += " (ref)"
    if cell.status != "ok":
        notes.append(f"  {cell.mechanism}: {cell.error}")
        return (name, cell.status, *[""] * (len(HEADERS) - 2))
    counterpart = cell.ratios.get("counterpart")
    vs_stdlib = _ratio(cell.ratios.get("speedup_vs_counterpart"))
    if counterpart and vs_stdlib != "-":
        vs_stdlib += f" {counterpart}"
    if cell.stream_ok:
        stream = (
            format_rate(cell.stream["messages_per_s"]),
            _gbps(cell.stream["gb_per_s"]),
            _percent(cell.ratios.get("stream_fraction_of_limit")),
        )
    else:
        stream = ("error", "", "")
        notes.append(f"  {cell.mechanism} (stream): {cell.stream.get('error')}")
    return (
        name,
        format_us(cell.median_ns),
        format_us(cell.stats["p99_ns"]),
        _percent(cell.ratios.get("fraction_of_limit")),
        *stream,
        _ratio(cell.ratios.get("speedup_vs_reference")),
        vs_stdlib,
    )


def _table(rows: list[tuple[str, ...]]) -> list[str]:
    """``rows`` (the headers first) in aligned columns, under the round trip and one way spans."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(HEADERS))]
    left = "  " + " " * widths[0] + "  "
    round_trip = "round trip".center(sum(widths[1:4]) + 4, "-")
    one_way = "one way".center(sum(widths[4:7]) + 4, "-")
    out = [f"{left}{round_trip}  {one_way}"]
    for row in rows:
        first = row[0].ljust(widths[0])
        rest = [row[i].rjust(widths[i]) for i in range(1, len(row) - 1)]
        out.append("  " + "  ".join([first, *rest, row[-1]]).rstrip())
    return out


def format_report(report: Report, *, machine: bool = True) -> str:
    """The table, grouped by placement and size; ``machine=False`` leaves out the machine."""
    out = _preamble(report, machine)
    groups: dict[tuple[str, int], list[Cell]] = {}
    for cell in report.cells:
        groups.setdefault((cell.placement, cell.size), []).append(cell)
    for (placement, size), cells in groups.items():
        notes: list[str] = []
        rows = [HEADERS, *(_row(cell, notes) for cell in cells)]
        out += ["", _title(placement, size, cells[0]), *_table(rows), *notes]
    out.append("")
    out.append(f"{len(report.cells)} rows in {report.elapsed_s:.1f} s")
    return "\n".join(out)


def write_json(report: Report, path: str) -> None:
    """The report as JSON into ``path`` (``-``: standard output)."""
    data = json.dumps(report.to_json(), indent=2) + "\n"
    if path == "-":
        sys.stdout.write(data)
        return
    with open(path, "w", encoding="utf-8") as f:
        f.write(data)
