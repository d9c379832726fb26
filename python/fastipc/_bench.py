"""The round-trip matrix behind ``fastipc bench``.

The process running this module only orchestrates: every round trip is timed in a client process
against an echo side in another process (see :mod:`fastipc._benchpeer`), one fresh pair of
processes per cell (mechanism x size x placement), pinned with ``os.sched_setaffinity``. All
children run in their own session (Ctrl-C reaches only the orchestrator, which then kills them),
exit when their stdin closes (so they die with the orchestrator, however it ends), and put their
socket files in one private temporary directory that is removed at the end.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import platform
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import IO, Any

from ._benchmech import REFERENCE, REGISTRY, ListenerMechanism, family, ordered
from ._benchpeer import TimingPlan, summarize
from ._refpeer import NAME as LIMIT

__all__ = [
    "PLACEMENTS",
    "BenchError",
    "Options",
    "Report",
    "echo_server",
    "format_report",
    "machine_info",
    "run",
]

SCHEMA = "fastipc-bench/2"
PLACEMENTS = ("same-core", "cross-core")
READY_TIMEOUT = 30.0
EXIT_TIMEOUT = 10.0


class BenchError(Exception):
    """The benchmark cannot run at all (as opposed to one cell failing)."""


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


# -- the machine ---------------------------------------------------------------------------------


def _cpu_model() -> str:
    with contextlib.suppress(OSError), open("/proc/cpuinfo", encoding="utf-8") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key.strip() in ("model name", "Model", "cpu model"):
                return value.strip()
    return platform.processor() or platform.machine() or "unknown"


def allowed_cpus() -> list[int]:
    if hasattr(os, "sched_getaffinity"):
        return sorted(os.sched_getaffinity(0))
    return list(range(os.cpu_count() or 1))


def machine_info(probe: dict[str, Any]) -> dict[str, Any]:
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


# -- child processes -----------------------------------------------------------------------------


def child_environment(backend: str | None, socket_dir: str) -> dict[str, str]:
    """The environment of a peer: this fastipc first on the path, the chosen backend."""
    env = dict(os.environ)
    package_parent = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    path = env.get("PYTHONPATH")
    env["PYTHONPATH"] = package_parent + (os.pathsep + path if path else "")
    env["FASTIPC_SOCKET_DIR"] = socket_dir
    if backend is not None:
        env["FASTIPC_BACKEND"] = backend
    return env


class Peer:
    """One ``python -m fastipc._benchpeer`` process in its own session."""

    def __init__(self, argv: list[str], env: dict[str, str]) -> None:
        self._stderr: IO[bytes] = tempfile.TemporaryFile()  # noqa: SIM115 (closed in _cleanup)
        self.events: queue.Queue[dict[str, Any] | None] = queue.Queue()
        try:
            self.proc = subprocess.Popen(
                argv,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=self._stderr,
                env=env,
                start_new_session=sys.platform != "win32",
            )
        except BaseException:
            self._stderr.close()
            raise
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with contextlib.suppress(ValueError):
                self.events.put(json.loads(line))
        self.events.put(None)

    def event(self, timeout: float) -> dict[str, Any]:
        """The next event; an error event if the process ended or the time ran out."""
        try:
            event = self.events.get(timeout=timeout)
        except queue.Empty:
            return {"event": "error", "message": f"no answer within {timeout:g} s"}
        if event is None:
            self.events.put(None)
            try:
                self.proc.wait(EXIT_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.kill()
            return {"event": "error", "message": self._died()}
        return event

    def _died(self) -> str:
        if self._stderr.closed:
            return f"peer exited with status {self.proc.returncode}"
        self._stderr.seek(0)
        tail = self._stderr.read().decode("utf-8", "replace").strip().splitlines()[-5:]
        detail = " | ".join(tail) if tail else "no output"
        return f"peer exited with status {self.proc.returncode}: {detail}"

    def finish(self, timeout: float = EXIT_TIMEOUT) -> None:
        """Let the process end by itself within ``timeout``, else kill its process group."""
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
        self._cleanup()

    def kill(self) -> None:
        """Kill the process and everything it forked (their group), and reap it."""
        if self.proc.returncode is None:
            # Not reaped yet, so its pid, and the group id it leads, cannot have been reused.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                if sys.platform != "win32":
                    os.killpg(self.proc.pid, signal.SIGKILL)
                else:
                    self.proc.kill()
            self.proc.wait()
        self._cleanup()

    def _cleanup(self) -> None:
        if self._stderr.closed:
            return
        if self.proc.stdin is not None:
            with contextlib.suppress(OSError):
                self.proc.stdin.close()
        # The reader sees end of file once the process (and its group) is gone.
        self._reader.join(timeout=2.0)
        if self.proc.stdout is not None and not self._reader.is_alive():
            self.proc.stdout.close()
        self._stderr.close()


class PeerGroup:
    """Every peer started in a run, so that all of them are killed on the way out."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.peers: list[Peer] = []

    def start(self, role: str, config: dict[str, Any]) -> Peer:
        """A ``python -m fastipc._benchpeer ROLE CONFIG`` process."""
        return self.start_command(
            [sys.executable, "-m", "fastipc._benchpeer", role, json.dumps(config)]
        )

    def start_command(self, argv: list[str]) -> Peer:
        peer = Peer(argv, self.env)
        self.peers.append(peer)
        return peer

    def kill_all(self) -> None:
        while self.peers:
            self.peers.pop().kill()


@contextlib.contextmanager
def private_socket_dir() -> Iterator[str]:
    path = tempfile.mkdtemp(prefix="fastipc-bench-")
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@contextlib.contextmanager
def echo_server(
    mechanism: str,
    *,
    max_size: int,
    socket_dir: str,
    backend: str | None = None,
    cpu: int | None = None,
    phases: Sequence[str] = ("echo",),
) -> Iterator[tuple[str, Peer]]:
    """Start the echo side of a listener mechanism in another process; yields its address.
    ``phases`` says what it does with each connection it accepts in turn: ``"echo"`` (round
    trips) or ``"drain"`` (the receiving side of the one-way stream)."""
    group = PeerGroup(child_environment(backend, socket_dir))
    try:
        peer = group.start(
            "serve",
            {
                "mechanism": mechanism,
                "socket_dir": socket_dir,
                "max_size": max(max_size, 64),
                "cpu": cpu,
                "phases": list(phases),
            },
        )
        ready = peer.event(READY_TIMEOUT)
        if ready["event"] != "ready":
            raise BenchError(f"{mechanism} echo server: {ready.get('message')}")
        yield str(ready["address"]), peer
        peer.finish()
    finally:
        group.kill_all()


# -- the run -------------------------------------------------------------------------------------


def placement_cpus(placement: str, cpus: Sequence[int]) -> tuple[int | None, int | None] | None:
    """(server CPU, client CPU) for a placement, or None if it is impossible here."""
    if not hasattr(os, "sched_setaffinity"):
        return (None, None) if placement == "same-core" else None
    if placement == "same-core":
        return cpus[0], cpus[0]
    if len(cpus) < 2:
        return None
    return cpus[0], cpus[1]


def probe(env: dict[str, str]) -> dict[str, Any]:
    group = PeerGroup(env)
    try:
        event = group.start("probe", {}).event(READY_TIMEOUT)
    finally:
        group.kill_all()
    if event["event"] != "probe":
        raise BenchError(f"fastipc cannot be imported by the benchmark's processes: {event}")
    return event


def _limit_command(cell: Cell, plan: TimingPlan) -> list[str]:
    from ._refpeer import build

    def cpu(value: int | None) -> str:
        return str(-1 if value is None else value)

    return [
        build(),
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
    server: Peer | None = None
    if isinstance(mechanism, ListenerMechanism):
        server = group.start("serve", {**config, "cpu": cell.server_cpu})
        ready = server.event(READY_TIMEOUT)
        if ready["event"] != "ready":
            cell.status, cell.error = "error", f"echo server: {ready.get('message')}"
            group.kill_all()
            return
        config["address"] = ready["address"]
    if mechanism.topology == "external":
        client = group.start_command(_limit_command(cell, plan))
    else:
        client = group.start("client", config)
    budget = (
        (plan.iterations or plan.max_iterations) * 0.01
        + plan.budget_s
        + plan.warmup_s
        + 2 * (plan.stream_budget_s + plan.stream_warmup_s)
    )
    result = client.event(60.0 + budget)
    if result["event"] == "result":
        cell.status = "ok"
        cell.iterations = int(result["iterations"])
        cell.warmup_iterations = int(result["warmup_iterations"])
        cell.warmup_ns = int(result["warmup_ns"])
        cell.stats = result["stats"] if "stats" in result else summarize(result["samples"])
        cell.set_stream(result.get("stream"), result.get("stream_error"))
        client.finish()
        if server is not None:
            server.finish()
    else:
        cell.status = "unsupported" if result.get("unsupported") else "error"
        cell.error = f"{result.get('type', 'Error')}: {result.get('message')}"
    group.kill_all()


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


def run(options: Options) -> Report:
    """Run every cell; one failing cell is reported in its row and does not stop the others."""
    start = datetime.datetime.now(datetime.UTC)
    cpus = options.cpus or allowed_cpus()
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
    with private_socket_dir() as socket_dir:
        group = PeerGroup(child_environment(options.backend, socket_dir))
        try:
            machine = machine_info(probe(group.env))
            report = Report(machine, options, cells, start.isoformat(timespec="seconds"))
            if options.on_machine is not None:
                options.on_machine(machine)
            todo = [cell for cell in cells if cell.status == "pending"]
            # Placement, then size, then mechanism: the rows of one table run back to back.
            for i, cell in enumerate(todo, 1):
                label = f"{cell.mechanism} {format_size(cell.size)} {cell.placement}"
                if options.progress is not None:
                    options.progress(Progress(i - 1, len(todo), f"{label} ...", False))
                _run_cell(group, cell, socket_dir, options.plan)
                if options.progress is not None:
                    if cell.status == "ok":
                        outcome = f"median {format_us(cell.median_ns)} µs"
                        if cell.stream_ok:
                            outcome += f", {format_rate(cell.stream['messages_per_s'])} msg/s"
                    else:
                        outcome = f"{cell.status}: {cell.error}"
                    options.progress(Progress(i, len(todo), f"{label}: {outcome}", True))
        finally:
            group.kill_all()
    _compute_ratios(cells)
    report.elapsed_s = (datetime.datetime.now(datetime.UTC) - start).total_seconds()
    return report


# -- presentation --------------------------------------------------------------------------------


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


def format_report(report: Report, *, machine: bool = True) -> str:
    """The table, grouped by placement and size; ``machine=False`` leaves out the machine."""
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
    out = [
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
    groups: dict[tuple[str, int], list[Cell]] = {}
    for cell in report.cells:
        groups.setdefault((cell.placement, cell.size), []).append(cell)
    for (placement, size), cells in groups.items():
        cpus = cells[0].server_cpu, cells[0].client_cpu
        if placement == "same-core":
            where = f"both on CPU {cpus[0]}" if cpus[0] is not None else "not pinned"
        else:
            where = f"echo on CPU {cpus[0]}, client on CPU {cpus[1]}"
        out.append("")
        out.append(f"{format_size(size)} messages, {placement} ({where})")
        rows: list[tuple[str, ...]] = [HEADERS]
        notes: list[str] = []
        for cell in cells:
            name = cell.mechanism + {"limit": " (limit)"}.get(family(REGISTRY[cell.mechanism]), "")
            if cell.mechanism == REFERENCE:
                name += " (ref)"
            if cell.status != "ok":
                rows.append((name, cell.status, *[""] * (len(HEADERS) - 2)))
                notes.append(f"  {cell.mechanism}: {cell.error}")
                continue
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
            rows.append(
                (
                    name,
                    format_us(cell.median_ns),
                    format_us(cell.stats["p99_ns"]),
                    _percent(cell.ratios.get("fraction_of_limit")),
                    *stream,
                    _ratio(cell.ratios.get("speedup_vs_reference")),
                    vs_stdlib,
                )
            )
        widths = [max(len(row[i]) for row in rows) for i in range(len(HEADERS))]
        left = "  " + " " * widths[0] + "  "
        round_trip = "round trip".center(sum(widths[1:4]) + 4, "-")
        one_way = "one way".center(sum(widths[4:7]) + 4, "-")
        out.append(f"{left}{round_trip}  {one_way}")
        for row in rows:
            first = row[0].ljust(widths[0])
            rest = [row[i].rjust(widths[i]) for i in range(1, len(row) - 1)]
            out.append("  " + "  ".join([first, *rest, row[-1]]).rstrip())
        out.extend(notes)
    out.append("")
    out.append(f"{len(report.cells)} rows in {report.elapsed_s:.1f} s")
    return "\n".join(out)


def write_json(report: Report, path: str) -> None:
    data = json.dumps(report.to_json(), indent=2) + "\n"
    if path == "-":
        sys.stdout.write(data)
        return
    with open(path, "w", encoding="utf-8") as f:
        f.write(data)
