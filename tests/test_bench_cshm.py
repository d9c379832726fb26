"""``cshm.c``, the C shared-memory references of ``fastipc bench`` (``c-spin``, ``c-futex``): an
acknowledgement that lands while the sender is between reading it and waiting for it.

The program is compiled here (``-O2 -std=c11``, as ``fastipc.bench.cpeer.build`` does), with
``CSHM_LATE_ACK_NS``: a pause where an interrupt or a preemption can fall in a real run.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from fastipc.bench import cpeer

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


def _cpus() -> tuple[str, str]:
    """(echo CPU, client CPU): two CPUs where there are two, else unpinned."""
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    return (str(cpus[0]), str(cpus[1])) if len(cpus) >= 2 else ("-1", "-1")


def _args(mode: str, *, iterations: int, warmup_ns: int, batches: int) -> list[str]:
    """cshm's arguments: 64 B, ``iterations`` round trips and stream messages per batch."""
    echo, client = _cpus()
    n = str(iterations)
    return [mode, "64", echo, client, n, "0", n, n, str(warmup_ns), "10", n, "0", "0", str(batches)]


@pytest.mark.parametrize("mode", MODES)
def test_an_acknowledgement_landing_before_the_wait_is_seen(tmp_path: Path, mode: str) -> None:
    # Each message of the stream waits for the acknowledgement of the one before; with a pause
    # between seeing it missing and waiting for it, the acknowledgement lands there.
    late = _compile(tmp_path / "cshm-late", "-DCSHM_LATE_ACK_NS=2000")
    argv = [late, *_args(mode, iterations=200, warmup_ns=0, batches=5)]
    proc = subprocess.run(argv, capture_output=True, timeout=WAIT_S, check=False)
    assert proc.returncode == 0, proc.stdout
    result = json.loads(proc.stdout)
    assert result["event"] == "result"
    assert result["iterations"] == 200 and len(result["samples"]) == 200
    assert result["stream"]["messages_per_batch"] == 200
    assert len(result["stream"]["batches_ns"]) == 5
