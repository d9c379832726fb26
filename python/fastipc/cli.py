"""The ``fastipc`` command: ``fastipc bench``, ``info``, ``ls`` and ``clean``."""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import socket
import sys
import time
from collections.abc import Callable, Sequence
from types import FrameType
from typing import TYPE_CHECKING, Any

from . import BACKEND, SharedMemory, __version__, default_socket_dir, listen, socketpair
from . import _registry as registry
from ._version import BENCH_EXTRA, DISTRIBUTION

if TYPE_CHECKING:
    from .bench.results import Progress, Report
    from .bench.timing import TimingPlan

# The benchmark (fastipc.bench) is imported only by the bench command, when it runs or its
# options are parsed: ls, info and clean never load it.

__all__ = ["main"]

DEFAULT_SIZES = (64, 65536, 1048576)


def _sizes(text: str) -> list[int]:
    sizes: list[int] = []
    for item in text.split(","):
        number = item.strip().lower()
        scale = 1
        for suffix, factor in (("kib", 1 << 10), ("k", 1 << 10), ("mib", 1 << 20), ("m", 1 << 20)):
            if number.endswith(suffix):
                number, scale = number[: -len(suffix)], factor
                break
        try:
            size = int(number) * scale
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a size in bytes: {text!r}") from None
        if not 1 <= size <= 1 << 30:
            raise argparse.ArgumentTypeError(f"sizes must be 1 B to 1 GiB, not {size}")
        sizes.append(size)
    return sizes


def _mechanisms(text: str) -> list[str]:
    from .bench.mechanisms import REGISTRY

    names = [part.strip() for part in text.split(",") if part.strip()]
    if names == ["all"]:
        return list(REGISTRY)
    unknown = [name for name in names if name not in REGISTRY]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"unknown mechanism {', '.join(unknown) or text!r}; choose from {', '.join(REGISTRY)}"
            " or 'all'"
        )
    return names


def _cpus(text: str) -> list[int]:
    try:
        cpus = [int(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a list of CPU numbers: {text!r}") from None
    if not cpus or len(set(cpus)) != len(cpus) or min(cpus) < 0:
        raise argparse.ArgumentTypeError(f"need distinct CPU numbers, not {text!r}")
    return cpus


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def _mechanism_list() -> str:
    """The epilog of ``fastipc bench --help``: every mechanism with its summary."""
    from .bench.mechanisms import REGISTRY

    mechanisms = "\n".join(
        f"  {name:<19} {m.summary}{'' if m.default else ' (not run by default)'}"
        for name, m in REGISTRY.items()
    )
    return (
        f"mechanisms:\n{mechanisms}\n\noptional baselines: {BENCH_EXTRA}"
        " (a missing one is skipped with a note)"
    )


class _Parser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose epilog may be written only when its help is shown
    (``late_epilog``), so that building the parser imports nothing it names."""

    def __init__(self, *args: Any, late_epilog: Callable[[], str] | None = None, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._late_epilog = late_epilog

    def format_help(self) -> str:
        if self._late_epilog is not None:
            self.epilog, self._late_epilog = self._late_epilog(), None
        return super().format_help()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fastipc", description="fastipc: fast, safe interprocess communication."
    )
    parser.add_argument("--version", action="version", version=f"{DISTRIBUTION} {__version__}")
    commands = parser.add_subparsers(
        dest="command", required=True, metavar="COMMAND", parser_class=_Parser
    )

    bench = commands.add_parser(
        "bench",
        help="every mechanism side by side, with the alternatives and the machine's limit",
        description="Between two processes, for each mechanism and message size: round-trip "
        "latency (client -> echo side -> client; median, p99) and one-way throughput (a stream "
        "of messages; messages/s, GB/s), with the alternatives (multiprocessing.Pipe is the "
        "reference) and a C reference peer (the machine's limit) in the same run.",
        late_epilog=_mechanism_list,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    bench.add_argument(
        "--sizes",
        type=_sizes,
        default=None,
        metavar="N,N,...",
        help="message sizes in bytes, suffixes k and m allowed (default: 64,65536,1048576)",
    )
    bench.add_argument(
        "--mechanisms",
        type=_mechanisms,
        default=None,
        metavar="NAME,...",
        help="mechanisms to run, or 'all' (default: every default one; see below)",
    )
    bench.add_argument(
        "--placement",
        choices=("same-core", "cross-core", "both"),
        default=None,
        help="pin client and echo to one CPU, to two, or run both "
        "(default: both; same-core with --quick)",
    )
    bench.add_argument(
        "--cpus",
        type=_cpus,
        default=None,
        metavar="A[,B]",
        help="CPUs to use: A for the echo side (and both, same-core), B for the client cross-core "
        "(default: the first two this process may use)",
    )
    bench.add_argument(
        "--quick", action="store_true", help="short timings, same-core only: under 30 s"
    )
    bench.add_argument(
        "--plot",
        metavar="PATH",
        default=None,
        help="also draw latency and throughput per mechanism and size as a PNG "
        f"(needs matplotlib: {BENCH_EXTRA})",
    )
    bench.add_argument(
        "--iterations",
        type=_positive,
        default=None,
        metavar="N",
        help="time exactly N round trips per row, and stream batches of N messages "
        "(default: as many as fit in the time budget)",
    )
    bench.add_argument(
        "--backend",
        choices=("rust", "python"),
        default=None,
        help="fastipc backend of the benchmark processes (sets FASTIPC_BACKEND for them)",
    )
    bench.add_argument(
        "--json",
        metavar="PATH",
        default=None,
        help="also write every statistic as JSON ('-': stdout)",
    )
    bench.add_argument(
        "--async",
        dest="aio",
        action="store_true",
        help="the asyncio rows instead: fastipc.aio against asyncio streams and zmq.asyncio "
        "(64 B, default loop and uvloop), 1 MiB against blocking fastipc, and many concurrent "
        "connections to one asyncio listener (uses --quick, --cpus, --backend, --json)",
    )
    bench.add_argument(
        "--connections",
        type=_positive,
        default=10_000,
        metavar="N",
        help="with --async: concurrent connections of the listener row (default: 10000)",
    )
    bench.set_defaults(func=_bench)

    info = commands.add_parser(
        "info", help="version, backend, extension and its build, platform and capabilities"
    )
    info.set_defaults(func=_info)

    ls = commands.add_parser(
        "ls",
        help="list the shared memory segments, semaphores and locks fastipc created",
        description="List the named resources fastipc created (from its registry): kind, name, "
        "size, creator pid and whether the creator still runs.",
    )
    ls.add_argument("--json", action="store_true", help="one JSON object per resource")
    ls.set_defaults(func=_ls)

    clean = commands.add_parser(
        "clean",
        help="remove the resources whose creator is gone",
        description="Unlink the segments, semaphores and locks fastipc created whose creating "
        "process is gone (a reused pid is told apart by its start time), and forget entries "
        "whose resource someone else already removed.",
    )
    clean.add_argument("--dry-run", action="store_true", help="only show what would be removed")
    clean.set_defaults(func=_clean)
    return parser


class _Terminated(Exception):
    pass


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise _Terminated


def _progress_printer() -> Callable[[Progress], None]:
    """A progress bar with the time left on a terminal; otherwise one line per finished cell."""
    tty = sys.stderr.isatty()
    started = time.monotonic()

    def show(p: Progress) -> None:
        if not tty:
            if p.final:
                sys.stderr.write(f"[{p.done}/{p.total}] {p.line}\n")
                sys.stderr.flush()
            return
        try:
            columns = os.get_terminal_size(sys.stderr.fileno()).columns
        except OSError:
            columns = 80
        elapsed = time.monotonic() - started
        left = f"{elapsed / p.done * (p.total - p.done):3.0f} s left" if p.done else "  ... "
        bar_width = 24
        filled = bar_width * p.done // max(p.total, 1)
        bar = "#" * filled + "-" * (bar_width - filled)
        line = f"[{bar}] {p.done}/{p.total} {left}  {p.line}"
        sys.stderr.write("\r\x1b[K" + line[: max(20, columns - 1)])
        sys.stderr.flush()

    return show


def _timing_plan(args: argparse.Namespace) -> TimingPlan:
    from .bench.timing import TimingPlan

    if args.quick:
        return TimingPlan(
            iterations=args.iterations,
            budget_s=0.08,
            max_iterations=4000,
            min_iterations=30,
            warmup_s=0.02,
            stream_budget_s=0.04,
            stream_warmup_s=0.01,
            stream_batches=3,
            stream_min_messages=8,
        )
    return TimingPlan(
        iterations=args.iterations,
        budget_s=0.35,
        warmup_s=0.08,
        min_iterations=100,
        stream_budget_s=0.2,
        stream_warmup_s=0.03,
        stream_batches=5,
    )


def _bad_cpus(cpus: list[int] | None) -> str | None:
    """Why ``--cpus`` cannot be used, or ``None``."""
    if cpus is None or not hasattr(os, "sched_getaffinity"):
        return None
    allowed = os.sched_getaffinity(0)
    if set(cpus) <= allowed:
        return None
    return (
        f"--cpus {','.join(map(str, cpus))}: this process may only use "
        f"CPUs {','.join(map(str, sorted(allowed)))}"
    )


def _bench_async(args: argparse.Namespace) -> int:
    import json

    from .bench import aio

    options = aio.Options(
        quick=args.quick,
        cpu=args.cpus[0] if args.cpus else None,
        backend=args.backend,
        connections=args.connections,
    )
    try:
        result = aio.run(options)
    except KeyboardInterrupt:
        sys.stderr.write("\nfastipc bench: interrupted\n")
        return 130
    print(aio.format_report(result, options.cpu))
    if args.json is not None:
        text = json.dumps(aio.to_json(result), indent=2)
        if args.json == "-":
            print(text)
        else:
            with open(args.json, "w", encoding="utf-8") as f:
                f.write(text + "\n")
    return 0


def _bench(args: argparse.Namespace) -> int:
    if args.aio:
        return _bench_async(args)
    from .bench import mechanisms, plot, report, runner
    from .bench.results import Options

    placement = args.placement or ("same-core" if args.quick else "both")
    if args.plot is not None:
        try:
            plot.check()
        except ImportError as exc:
            print(f"fastipc bench: --plot: {exc}", file=sys.stderr)
            return 2
    problem = _bad_cpus(args.cpus)
    if problem is not None:
        print(f"fastipc bench: {problem}", file=sys.stderr)
        return 2

    def show_machine(machine: dict[str, Any]) -> None:
        print(report.format_machine(machine), flush=True)

    options = Options(
        sizes=args.sizes or list(DEFAULT_SIZES),
        mechanisms=args.mechanisms or mechanisms.defaults(),
        placements=list(runner.PLACEMENTS) if placement == "both" else [placement],
        plan=_timing_plan(args),
        backend=args.backend,
        cpus=args.cpus,
        quick=args.quick,
        progress=_progress_printer(),
        on_machine=show_machine,
    )
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        result = runner.run(options)
    except runner.BenchError as exc:
        print(f"fastipc bench: {exc}", file=sys.stderr)
        return 1
    except (KeyboardInterrupt, _Terminated):
        sys.stderr.write("\nfastipc bench: interrupted; every benchmark process was stopped\n")
        return 130
    finally:
        signal.signal(signal.SIGTERM, previous)
        if sys.stderr.isatty():
            sys.stderr.write("\r\x1b[K")
            sys.stderr.flush()
    result.command = ["fastipc", *args.argv]
    print()
    print(report.format_report(result, machine=False))
    return _write_outputs(args, result)


def _write_outputs(args: argparse.Namespace, result: Report) -> int:
    """``--json`` and ``--plot``; the exit status of the whole command."""
    from .bench import plot, report

    if args.json is not None:
        try:
            report.write_json(result, args.json)
        except OSError as exc:
            print(f"fastipc bench: cannot write {args.json}: {exc}", file=sys.stderr)
            return 1
    if args.plot is not None:
        try:
            plot.plot(result, args.plot)
        except OSError as exc:
            print(f"fastipc bench: cannot write {args.plot}: {exc}", file=sys.stderr)
            return 1
        print(f"plot: {args.plot}")
    return 1 if result.failed else 0


def _capabilities() -> list[tuple[str, str]]:
    """What exists here, tried for real where that creates no file."""

    def works(action: Callable[[], Any]) -> str:
        try:
            resource = action()
        except (OSError, NotImplementedError, ValueError) as exc:
            return f"no ({type(exc).__name__})"
        for end in resource if isinstance(resource, tuple) else (resource,):
            end.close()
        return "yes"

    linux = sys.platform.startswith("linux")
    return [
        ("stream socketpair", works(lambda: socketpair("stream"))),
        ("seqpacket socketpair", works(lambda: socketpair("seqpacket"))),
        ("datagram socketpair", works(lambda: socketpair("datagram"))),
        (
            "loopback remapping to Unix sockets",
            "no (TCP loopback)" if sys.platform == "win32" else "yes",
        ),
        (
            "abstract sockets (unix:@name)",
            works(lambda: listen(f"unix:@fastipc-info-{os.getpid()}"))
            if linux
            else "no (Linux only)",
        ),
        ("unix:<path> addresses", "yes" if hasattr(socket, "AF_UNIX") else "no"),
        ("TCP", "yes"),
        ("anonymous shared memory (sealed memfd)", works(lambda: SharedMemory.anonymous(4096))),
        (
            "semaphore timed waits",
            "polling (no sem_timedwait)" if sys.platform == "darwin" else "sem_timedwait",
        ),
        (
            "crash-robust Lock",
            "yes"
            if BACKEND == "rust" and sys.platform.startswith(("linux", "freebsd"))
            else "no (NotSupportedError)",
        ),
        *_classic_capabilities(works, linux),
    ]


def _classic_capabilities(
    works: Callable[[Callable[[], Any]], str], linux: bool
) -> list[tuple[str, str]]:
    """Pipes, FIFOs, message queues, file locks, signals (docs/classic.md)."""
    from . import pipe

    posix = sys.platform != "win32"
    linux_only = "no (Linux only)"
    return [
        ("pipes", works(pipe)),
        ("pipe capacity (F_SETPIPE_SZ)", "yes" if linux else linux_only),
        ("FIFOs", "yes" if posix and hasattr(os, "mkfifo") else "no (NotSupportedError)"),
        (
            "POSIX message queues",
            ("yes" if os.path.isdir("/proc/sys/fs/mqueue") else "no (kernel without mqueue)")
            if linux
            else linux_only,
        ),
        ("System V message queues", "yes" if linux else linux_only),
        ("file locks (fcntl record locks)", "yes" if posix else "no (NotSupportedError)"),
        ("file locks (open-file-description)", "yes" if linux else "no (kind='posix' only)"),
        (
            "signal receiver",
            ("signalfd" if BACKEND == "rust" else "self-pipe")
            if linux
            else ("self-pipe (python backend)" if posix else "no (NotSupportedError)"),
        ),
        ("kill_and_wait", ("pidfd" if linux else "polling") if posix else "no (NotSupportedError)"),
    ]


def _extension_rows() -> list[tuple[str, str]]:
    """Where the Rust extension is and how it was built (also when the fallback is in use)."""
    try:
        from . import _fastipc as extension
    except ImportError as exc:
        return [("extension", f"cannot be loaded ({exc})")]
    path = extension.__file__ or "?"
    built = extension.build_info()
    python_api = "abi3 (stable ABI)" if ".abi3." in os.path.basename(path) else "version-specific"
    listed = built["features"]
    features = ", ".join(map(str, listed)) if isinstance(listed, list) and listed else "none"
    gil = "re-enabled on import" if built["gil_used"] else "not needed"
    return [
        ("extension", path + ("" if BACKEND == "rust" else " (not in use)")),
        ("build", f"{built['version']} {built['profile']}, target {built['target']}"),
        ("build flags", f"features: {features}; Python API: {python_api}"),
        ("free-threading", f"GIL {gil} (gil_used={built['gil_used']})"),
    ]


def _info(args: argparse.Namespace) -> int:
    rows = [
        ("fastipc", f"{__version__} ({DISTRIBUTION})"),
        ("backend", BACKEND),
        *_extension_rows(),
        ("python", f"{platform.python_implementation()} {platform.python_version()}"),
        ("platform", platform.platform()),
        ("socket dir", default_socket_dir()),
    ]
    width = max(len(key) for key, _ in rows)
    for key, value in rows:
        print(f"{key:<{width}}  {value}")
    print()
    capabilities = _capabilities()
    width = max(len(key) for key, _ in capabilities)
    for key, value in capabilities:
        print(f"  {key:<{width}}  {value}")
    return 0


def _ls(args: argparse.Namespace) -> int:
    entries = registry.entries()
    if args.json:
        for e in entries:
            row = {"kind": e.kind, "holds": e.holds, "name": e.name, "size": e.size, "pid": e.pid}
            print(json.dumps({**row, "creator_alive": e.creator_alive, "exists": e.exists}))
        return 0
    if not entries:
        print(f"no resources recorded in {registry.registry_dir()}")
        return 0
    # KIND is the registry's (shm, sem, lock), or what a segment holds (queue, channel ...).
    print(f"{'KIND':<14} {'NAME':<32} {'SIZE':>10} {'PID':>8}  CREATOR")
    for e in entries:
        state = "alive" if e.creator_alive else "gone"
        if not e.exists:
            state += " (resource already removed)"
        size = "-" if e.kind == "sem" else str(e.size)
        print(f"{e.holds or e.kind:<14} {e.name:<32} {size:>10} {e.pid:>8}  {state}")
    return 0


def _clean(args: argparse.Namespace) -> int:
    verb = (
        {"unlink": "would remove", "forget": "would forget"}
        if args.dry_run
        else {
            "unlink": "removed",
            "forget": "forgot",
        }
    )

    def show(action: str, entry: registry.Entry) -> None:
        print(f"{verb[action]} {entry.kind} {entry.name} (creator pid {entry.pid} is gone)")

    try:
        done = registry.clean(dry_run=args.dry_run, report=show)
    except OSError as exc:
        print(f"fastipc clean: {exc}", file=sys.stderr)
        return 1
    if not done:
        print("nothing to clean")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``fastipc`` command; returns the exit status."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(arguments)
    args.argv = arguments
    try:
        status: int = args.func(args)
        sys.stdout.flush()
    except BrokenPipeError:
        # The reader of our output went away (``fastipc info | head -1``): that ends the
        # command quietly, as it ends ``cat``. Python would otherwise print a traceback, and
        # again at exit when it flushes stdout: point stdout at /dev/null first.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        return 1
    return status


if __name__ == "__main__":
    sys.exit(main())
