"""Shared helpers of the classic-mechanism tests: unique names, the check that no message queue
is left behind, and the Ctrl-C check of a blocking call in a child process."""

from __future__ import annotations

import contextlib
import itertools
import os
import signal
import textwrap
import time

import pytest
from _helpers import proc_state

_counter = itertools.count()


def unique(prefix: str) -> str:
    """A name no other test (nor another run) uses: ``fastipc-test-<pid>-<prefix>-<n>``."""
    return f"fastipc-test-{os.getpid()}-{prefix}-{next(_counter)}"


def posix_queues() -> set[str]:
    try:
        return {n for n in os.listdir("/dev/mqueue") if n.startswith("fastipc-test-")}
    except FileNotFoundError:  # /dev/mqueue not mounted: nothing to look at
        return set()


def sysv_queues() -> set[int]:
    try:
        with open("/proc/sysvipc/msg") as f:
            lines = f.read().splitlines()[1:]
    except FileNotFoundError:
        return set()
    return {int(line.split()[1]) for line in lines if line.strip()}


@pytest.fixture(autouse=True, scope="module")
def no_queues_left():
    """After the module: no POSIX queue of these tests in /dev/mqueue, no new System V queue
    (``ipcs -q``). Leftovers are removed so that one failure does not cascade."""
    sysv_before = sysv_queues()
    yield
    left_posix = posix_queues()
    left_sysv = sysv_queues() - sysv_before
    for name in left_posix:
        with contextlib.suppress(OSError):
            os.unlink(f"/dev/mqueue/{name}")
    for qid in left_sysv:
        os.system(f"ipcrm -q {qid} 2>/dev/null")
    assert not left_posix, f"POSIX message queues left behind: {sorted(left_posix)}"
    assert not left_sysv, f"System V message queues left behind (ipcs -q): {sorted(left_sysv)}"


CTRL_C_CHILD = """
import threading, time
{setup}
report(blocking=1, tid=threading.get_native_id())
try:
    {call}
    report(result="returned")
except KeyboardInterrupt:
    report(result="KeyboardInterrupt", t=time.monotonic())
{cleanup}
report(clean=1)
"""


def wait_sleeping(pid: int, tid: int, timeout: float = 5.0) -> None:
    """Bounded poll until the thread has been asleep in the kernel for a few observations."""
    deadline = time.monotonic() + timeout
    streak = 0
    while streak < 5:
        streak = streak + 1 if proc_state(pid, tid) == "S" else 0
        if time.monotonic() > deadline:
            raise AssertionError(f"thread {tid} of {pid} did not block within {timeout} s")
        time.sleep(0.002)


def assert_ctrl_c(spawn, setup: str, call: str, cleanup: str = "", args=None) -> None:
    """Runs ``call`` blocked in a child, sends SIGINT, and checks KeyboardInterrupt within 0.3 s
    and that ``cleanup`` then runs."""
    script = CTRL_C_CHILD.format(
        setup=textwrap.dedent(setup).strip(),
        call=call,
        cleanup=textwrap.dedent(cleanup).strip(),
    )
    child = spawn(script, args=args or {})
    tid = child.expect("blocking")["tid"]
    wait_sleeping(child.pid, tid)
    sent = time.monotonic()
    os.kill(child.pid, signal.SIGINT)
    msg = child.expect("result", timeout=10)
    assert msg["result"] == "KeyboardInterrupt"
    delay = msg["t"] - sent
    assert 0 <= delay < 0.3, f"KeyboardInterrupt {delay * 1000:.0f} ms after SIGINT"
    assert child.expect("clean") == {"clean": 1}
    child.finish()
