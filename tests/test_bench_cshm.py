"""``cshm.c``, the C shared-memory references of ``fastipc bench`` (``c-spin``, ``c-futex``): a
word that changes between two reads of it, a forked side that dies, a client that dies, and how
long the runner waits for a C program.

The program is compiled here (``-O2 -std=c11``, as ``fastipc.bench.cpeer.build`` does), once with
``CSHM_TEST_PAUSE_NS``: a pause between two reads of a word, where an interrupt or a preemption
can fall in a real run.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastipc import cli
from fastipc.bench import cpeer
from fastipc.bench.results import Cell
from fastipc.bench.runner import _cell_budget

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux") or cpeer._compiler() is None,
    reason="cshm.c is built with a C compiler, for Linux",
)

MODES = ("spin", "futex")
WAIT_S = 30.0


def _compile(out: Path, *defines: str) -> str:
    cc = cpeer._compiler()
    assert cc is not None
    cmd = [cc, "-O2", "-std=c11", *defines, "-o", str(out), str(cpeer.SHM_SOURCE)]
    subprocess.run(cmd, check=True, capture_output=True, timeout=120)
    return str(out)


@pytest.fixture(scope="module")
def cshm(tmp_path_factory: pytest.TempPathFactory) -> str:
    return _compile(tmp_path_factory.mktemp("cshm") / "cshm")


def _cpus() -> tuple[str, str]:
    """(echo CPU, client CPU): two CPUs where there are two, else unpinned."""
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    return (str(cpus[0]), str(cpus[1])) if len(cpus) >= 2 else ("-1", "-1")


def _args(mode: str, *, iterations: int, warmup_ns: int, batches: int) -> list[str]:
    """cshm's arguments: 64 B, ``iterations`` round trips and stream messages per batch."""
    echo, client = _cpus()
    n = str(iterations)
    return [mode, "64", echo, client, n, "0", n, n, str(warmup_ns), "10", n, "0", "0", str(batches)]


@pytest.fixture
def started() -> Iterator[list[subprocess.Popen[bytes]]]:
    """The programs a test starts, each in its own session, killed with their group at the end."""
    procs: list[subprocess.Popen[bytes]] = []
    yield procs
    for proc in procs:
        # the group outlives its leader while a forked side lives
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


def _start(started: list[subprocess.Popen[bytes]], argv: list[str]) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, start_new_session=True)
    started.append(proc)
    return proc


def _forked_side(proc: subprocess.Popen[bytes]) -> int:
    """The pid of the side ``proc`` forked, once it has one."""
    children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children")
    if not children.exists():
        pytest.skip("no /proc/PID/task/TID/children here")
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        pids = children.read_text().split()
        if pids:
            return int(pids[0])
        time.sleep(0.001)
    raise AssertionError("cshm forked no side")


@pytest.mark.parametrize("mode", MODES)
def test_a_change_between_two_reads_is_seen(tmp_path: Path, mode: str) -> None:
    # Each message of the stream waits for the acknowledgement of the one before: with a pause
    # between seeing it missing and waiting for it, the acknowledgement lands there. A futex
    # wait pauses between its first read and the one after it announced itself as a sleeper:
    # the message lands there, and the wait returns its sequence number, not the old one.
    paused = _compile(tmp_path / "cshm-paused", "-DCSHM_TEST_PAUSE_NS=2000")
    argv = [paused, *_args(mode, iterations=200, warmup_ns=0, batches=5)]
    proc = subprocess.run(argv, capture_output=True, timeout=WAIT_S, check=False)
    assert proc.returncode == 0, proc.stdout
    result = json.loads(proc.stdout)
    assert result["event"] == "result"
    assert result["iterations"] == 200 and len(result["samples"]) == 200
    assert result["stream"]["messages_per_batch"] == 200
    assert len(result["stream"]["batches_ns"]) == 5


@pytest.mark.parametrize("mode", MODES)
def test_a_forked_side_that_dies_is_reported_at_once(
    cshm: str, mode: str, started: list[subprocess.Popen[bytes]]
) -> None:
    # a minute of warm-up: the round trips are running when the echo side is killed
    proc = _start(started, [cshm, *_args(mode, iterations=200, warmup_ns=60 * 10**9, batches=1)])
    os.kill(_forked_side(proc), signal.SIGKILL)
    out, _ = proc.communicate(timeout=WAIT_S)
    assert proc.returncode == 1
    assert json.loads(out) == {
        "event": "error",
        "type": "OSError",
        "message": "cshm: the forked side exited before the end",
    }


@pytest.mark.parametrize("mode", MODES)
def test_the_forked_side_dies_with_the_client(
    cshm: str, mode: str, started: list[subprocess.Popen[bytes]]
) -> None:
    proc = _start(started, [cshm, *_args(mode, iterations=200, warmup_ns=60 * 10**9, batches=1)])
    _forked_side(proc)
    proc.kill()
    proc.wait()
    # The forked side holds the output pipe too: end of file once it is gone as well.
    assert proc.stdout is not None
    readable, _, _ = select.select([proc.stdout], [], [], WAIT_S)
    assert readable == [proc.stdout]
    assert proc.stdout.read() == b""


def test_a_c_program_is_given_up_in_seconds_for_small_messages() -> None:
    plan = cli._timing_plan(cli.build_parser().parse_args(["bench"]))
    # 10 s + 10 x (0.35 + 0.08 + 0.2 + 0.03) s + (1 + 10 + 100 + 5 x 20) x (1 ms + 64 x 10 ns)
    for name in ("c-limit", "c-spin", "c-futex"):
        cell = Cell(name, 64, "cross-core", 0, 1)
        assert _cell_budget(plan, cell) == pytest.approx(16.6 + 211 * 1.00064e-3)
    # 1 MiB: each round trip and message 1 ms + 1048576 x 10 ns
    big = Cell("c-spin", 1 << 20, "cross-core", 0, 1)
    assert _cell_budget(plan, big) == pytest.approx(16.6 + 211 * (1e-3 + 1048576e-8))
    # the Python rows keep theirs: 60 s + 20000 x 10 ms + the budgets
    python_row = Cell("fastipc-channel", 64, "cross-core", 0, 1)
    assert _cell_budget(plan, python_row) == pytest.approx(260.89)
