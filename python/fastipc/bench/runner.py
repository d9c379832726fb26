"""The round-trip matrix behind ``fastipc bench``.

The process running this module only orchestrates: every round trip is timed in a client process
against an echo side in another process (see :mod:`.peer` and :mod:`.processes`), one fresh pair
of processes per cell (mechanism x size x placement), pinned as the placement says
(:mod:`.affinity`).
"""

from __future__ import annotations

import contextlib
import datetime
import os
import platform
import sys
from collections.abc import Sequence
from typing import Any

from . import cpeer
from .affinity import PLACEMENTS, allowed_cpus, placement_cpus
from .base import LIMIT, REFERENCE, ListenerMechanism, ordered
from .mechanisms import REGISTRY
from .processes import (
    READY_TIMEOUT,
    BenchError,
    Peer,
    PeerGroup,
    child_environment,
    private_socket_dir,
    probe,
)
from .report import format_rate, format_size, format_us
from .results import Cell, Options, Progress, Report
from .timing import TimingPlan, summarize

__all__ = ["PLACEMENTS", "BenchError", "machine_info", "run"]


# -- the machine ---------------------------------------------------------------------------------


def _cpu_model() -> str:
    with contextlib.suppress(OSError), open("/proc/cpuinfo", encoding="utf-8") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key.strip() in ("model name", "Model", "cpu model"):
                return value.strip()
    return platform.processor() or platform.machine() or "unknown"


def machine_info(probe: dict[str, Any]) -> dict[str, Any]:
    """The machine, the Python and the fastipc (from a child's ``probe``) of a report."""
    info: dict[str, Any] = {
        "cpu_model": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "cpus_allowed": allowed_cpus(),
        "system": platform.system(),
        "kernel": platform.release(),
        "machine": platform.machine(),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "python_executable": sys.executable,
        "fastipc_version": probe.get("version"),
        "fastipc_backend": probe.get("backend"),
    }
    if hasattr(os, "getloadavg"):
        with contextlib.suppress(OSError):
            info["load_average"] = list(os.getloadavg())
    return info


# -- one cell --------------------------------------------------------------------------------------


def _limit_command(cell: Cell, plan: TimingPlan) -> list[str]:
    """The command line of the C program of ``cell`` (see ``cpeer.c`` and ``cshm.c``)."""
    mechanism = REGISTRY[cell.mechanism]
    assert isinstance(mechanism, cpeer.CProgram)

    def cpu(value: int | None) -> str:
        return str(-1 if value is None else value)

    return [
        *mechanism.command(),
        str(cell.size),
        cpu(cell.server_cpu),
        cpu(cell.client_cpu),
        str(plan.iterations or 0),
        str(int(plan.budget_s * 1e9)),
        str(plan.min_iterations),
        str(plan.max_iterations),
        str(int(plan.warmup_s * 1e9)),
        str(plan.min_warmup),
        str(plan.iterations or 0),
        str(int(plan.stream_budget_s * 1e9)),
        str(int(plan.stream_warmup_s * 1e9)),
        str(plan.stream_batches),
    ]


PROGRAM_START_S = 10.0
"""What a C program of a cell may take besides its timing: forks, pinning, first page touches, on
a busy machine."""
PROGRAM_STREAM_MIN = 20
"""The fewest messages of a stream batch of ``cpeer.c`` and ``cshm.c`` (their calibration's
floor)."""


def _program_budget(plan: TimingPlan, size: int) -> float:
    """How long the C program of a cell may take, in seconds: ten times its time budgets (a busy
    machine), and 1 ms plus 10 ns per byte (four copies at 0.4 GB/s) for each round trip and stream
    message it makes whatever the budgets (the warm-up's minimum, the fixed or minimum counts).
    Seconds for small messages: a C program that stops answering is given up in seconds."""
    each = 1e-3 + size * 10e-9
    round_trips = 1 + plan.min_warmup + (plan.iterations or plan.min_iterations)
    messages = plan.stream_batches * (plan.iterations or PROGRAM_STREAM_MIN)
    budgets = plan.budget_s + plan.warmup_s + plan.stream_budget_s + plan.stream_warmup_s
    return PROGRAM_START_S + 10 * budgets + (round_trips + messages) * each


def _cell_budget(plan: TimingPlan, cell: Cell) -> float:
    """How long the client of one cell may take before it is given up, in seconds."""
    if REGISTRY[cell.mechanism].topology == "external":
        return _program_budget(plan, cell.size)
    return (
        60.0
        + (plan.iterations or plan.max_iterations) * 0.01
        + plan.budget_s
        + plan.warmup_s
        + 2 * (plan.stream_budget_s + plan.stream_warmup_s)
    )


def _start_server(group: PeerGroup, cell: Cell, config: dict[str, Any]) -> Peer | None:
    """The echo side of a listener mechanism, its address put in ``config``; ``None`` (and the
    cell marked as failed) if it did not come up."""
    server = group.start("serve", {**config, "cpu": cell.server_cpu})
    ready = server.event(READY_TIMEOUT)
    if ready["event"] != "ready":
        cell.status, cell.error = "error", f"echo server: {ready.get('message')}"
        return None
    config["address"] = ready["address"]
    return server


def _record(cell: Cell, result: dict[str, Any]) -> None:
    """Fill ``cell`` from the client's last event."""
    if result["event"] != "result":
        cell.status = "unsupported" if result.get("unsupported") else "error"
        cell.error = f"{result.get('type', 'Error')}: {result.get('message')}"
        return
    cell.status = "ok"
    cell.iterations = int(result["iterations"])
    cell.warmup_iterations = int(result["warmup_iterations"])
    cell.warmup_ns = int(result["warmup_ns"])
    cell.stats = result["stats"] if "stats" in result else summarize(result["samples"])
    cell.set_stream(result.get("stream"), result.get("stream_error"))


def _run_cell(group: PeerGroup, cell: Cell, socket_dir: str, plan: TimingPlan) -> None:
    mechanism = REGISTRY[cell.mechanism]
    config: dict[str, Any] = {
        "mechanism": cell.mechanism,
        "socket_dir": socket_dir,
        "max_size": max(cell.size, 64),
        "size": cell.size,
        "plan": plan.to_json(),
        "cpu": cell.client_cpu,
        "peer_cpu": cell.server_cpu,
    }
    try:
        server: Peer | None = None
        if isinstance(mechanism, ListenerMechanism):
            server = _start_server(group, cell, config)
            if server is None:
                return
        if mechanism.topology == "external":
            client = group.start_command(_limit_command(cell, plan))
        else:
            client = group.start("client", config)
        _record(cell, client.event(_cell_budget(plan, cell)))
        if cell.status == "ok":
            client.finish()
            if server is not None:
                server.finish()
    finally:
        group.kill_all()


# -- the run -------------------------------------------------------------------------------------


def _compute_ratios(cells: list[Cell]) -> None:
    by_key = {(c.mechanism, c.size, c.placement): c for c in cells if c.status == "ok"}
    for cell in cells:
        if cell.status != "ok":
            continue
        ref = by_key.get((REFERENCE, cell.size, cell.placement))
        cell.ratios["reference"] = REFERENCE
        cell.ratios["speedup_vs_reference"] = ref.median_ns / cell.median_ns if ref else None
        counterpart = REGISTRY[cell.mechanism].counterpart
        other = by_key.get((counterpart, cell.size, cell.placement)) if counterpart else None
        cell.ratios["counterpart"] = counterpart
        cell.ratios["speedup_vs_counterpart"] = (
            other.median_ns / cell.median_ns if other is not None else None
        )
        limit = by_key.get((LIMIT, cell.size, cell.placement))
        cell.ratios["limit"] = LIMIT
        cell.ratios["fraction_of_limit"] = limit.median_ns / cell.median_ns if limit else None
        cell.ratios["stream_fraction_of_limit"] = (
            cell.stream["messages_per_s"] / limit.stream["messages_per_s"]
            if limit is not None and limit.stream_ok and cell.stream_ok
            else None
        )


def _plan_cells(options: Options, cpus: Sequence[int]) -> list[Cell]:
    """Every cell in table order (placement, then size, then mechanism); those that cannot run
    here are ``unavailable`` with the reason."""
    cells: list[Cell] = []
    reasons: dict[str, str | None] = {}
    for placement in options.placements:
        where = placement_cpus(placement, cpus)
        for size in options.sizes:
            for name in ordered(options.mechanisms):
                server_cpu, client_cpu = where or (None, None)
                cell = Cell(name, size, placement, server_cpu, client_cpu)
                if name not in reasons:
                    reasons[name] = REGISTRY[name].unavailable()
                reason = reasons[name]
                if where is None:
                    reason = f"{placement} needs two CPUs and sched_setaffinity"
                if reason is not None:
                    cell.status, cell.error = "unavailable", reason
                cells.append(cell)
    return cells


def _outcome(cell: Cell) -> str:
    """How a finished cell went, for the progress line."""
    if cell.status != "ok":
        return f"{cell.status}: {cell.error}"
    outcome = f"median {format_us(cell.median_ns)} µs"
    if cell.stream_ok:
        outcome += f", {format_rate(cell.stream['messages_per_s'])} msg/s"
    return outcome


def _run_cells(options: Options, group: PeerGroup, cells: list[Cell], socket_dir: str) -> None:
    todo = [cell for cell in cells if cell.status == "pending"]
    for i, cell in enumerate(todo, 1):
        label = f"{cell.mechanism} {format_size(cell.size)} {cell.placement}"
        if options.progress is not None:
            options.progress(Progress(i - 1, len(todo), f"{label} ...", False))
        _run_cell(group, cell, socket_dir, options.plan)
        if options.progress is not None:
            options.progress(Progress(i, len(todo), f"{label}: {_outcome(cell)}", True))


def run(options: Options) -> Report:
    """Run every cell; one failing cell is reported in its row and does not stop the others."""
    start = datetime.datetime.now(datetime.UTC)
    cells = _plan_cells(options, options.cpus or allowed_cpus())
    with private_socket_dir() as socket_dir:
        group = PeerGroup(child_environment(options.backend, socket_dir))
        try:
            machine = machine_info(probe(group.env))
            report = Report(machine, options, cells, start.isoformat(timespec="seconds"))
            if options.on_machine is not None:
                options.on_machine(machine)
            _run_cells(options, group, cells, socket_dir)
        finally:
            group.kill_all()
    _compute_ratios(cells)
    report.elapsed_s = (datetime.datetime.now(datetime.UTC) - start).total_seconds()
    return report
