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
from _helpers import SESSION_PIDS, proc_state

_counter = itertools.count()


def unique(prefix: str) -> str:
    """A name no other test (nor another run) uses: ``fastipc-test-<pid>-<prefix>-<n>``."""
    return f"fastipc-test-{os.getpid()}-{prefix}-{next(_counter)}"


def posix_queues() -> set[str]:
    """The POSIX message queues of this test run: ``fastipc-test-<pid>-...`` names with the pid of
    this process or of a child it started (other runs on the machine have their own)."""
    ours = {str(pid) for pid in SESSION_PIDS | {os.getpid()}}
    if not os.path.ismount("/dev/mqueue"):  # not mounted: nothing to look at
        return set()
    names = os.listdir("/dev/mqueue")
    return {n for n in names if n.startswith("fastipc-test-") and set(n.split("-")) & ours}


def sysv_queues() -> set[int]:
    """The System V message queues that may be this run's: all but those last used (sent to or
    received from) by a live process outside this process's tree, which belong to another test
    run on the machine. A queue nobody has used yet cannot be told apart: it counts."""
    try:
        with open("/proc/sysvipc/msg") as f:
            lines = f.read().splitlines()[1:]
    except FileNotFoundError:
        return set()
    queues = set()
    for line in lines:
        fields = line.split()
        if fields and not any(_foreign_pid(int(pid)) for pid in fields[5:7]):
            queues.add(int(fields[1]))
    return queues


def _foreign_pid(pid: int) -> bool:
    """Whether ``pid`` is a live process that is neither this one nor one of its descendants
    (0, nobody, and processes that have exited are not: nothing says they were someone else's)."""
    me = os.getpid()
    while pid > 1:
        if pid == me:
            return False
        try:
            with open(f"/proc/{pid}/stat") as f:
                data = f.read()
        except FileNotFoundError:
            return False
        pid = int(data[data.rindex(")") + 2 :].split()[1])  # the parent
    return pid == 1


@pytest.fixture(autouse=True, scope="module")
def no_queues_left():
    """After the module: no POSIX queue of these tests in /dev/mqueue, no new System V queue
    (``ipcs -q``). Leftovers are removed so that one failure does not cascade. Queues of other
    test runs on the same machine are left alone (see ``posix_queues`` and ``sysv_queues``)."""
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
