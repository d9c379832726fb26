"""fastipc.Semaphore on both backends: values, timeouts that are real waits, Ctrl-C, other
processes, and the same objects as C sem_open and posix_ipc."""

from __future__ import annotations

import errno
import os
import resource
import signal
import stat
import subprocess
import sys
import threading
import time

import pytest
from _helpers import c_compiler, wait_blocked_in_futex

LINUX = sys.platform.startswith("linux")
pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX semaphores")

try:
    import posix_ipc
except ImportError:  # pragma: no cover
    posix_ipc = None

needs_posix_ipc = pytest.mark.skipif(
    posix_ipc is None, reason="posix_ipc cannot be imported (pip install posix_ipc)"
)


def sem_path(name: str) -> str:
    return "/dev/shm/sem." + name.lstrip("/")


def wait_blocked_on(sem, pid: int, tid: int | None = None) -> None:
    """Waits until the thread sleeps in the futex of ``sem`` (which lives in its file)."""
    wait_blocked_in_futex(pid, tid, mapped=sem_path(sem.name))


@pytest.fixture
def sem(backend, names):
    s = backend.Semaphore(names(), create=True, value=0)
    yield s
    s.close()
    s.unlink()


def test_acquire_release_value(backend, sem):
    assert sem.name.startswith("/fastipc-test-")
    assert sem.value == 0
    assert sem.acquire(blocking=False) is False
    sem.release()
    assert sem.value == 1
    assert sem.acquire() is True
    sem.release(3)
    assert sem.value == 3
    other = backend.Semaphore(sem.name.lstrip("/"))
    try:
        assert other.acquire(timeout=0) is True
        assert other.value == 2
    finally:
        other.close()
    with sem:
        assert sem.value == 1
    assert sem.value == 2
    assert repr(sem) == f"<fastipc.Semaphore {sem.name}>"


def test_generated_name_and_initial_value(backend):
    s = backend.Semaphore(create=True, value=5)
    try:
        assert s.name.startswith("/fastipc-") and len(s.name) <= 31
        assert s.value == 5
    finally:
        s.close()
        s.unlink()


@pytest.mark.parametrize("timeout", [0.05, 0.3])
def test_timeout_returns_false_at_the_deadline(sem, timeout):
    start = time.monotonic()
    assert sem.acquire(timeout=timeout) is False
    spent = time.monotonic() - start
    assert timeout <= spent < timeout + 0.25


def test_timed_wait_is_a_real_wait_not_a_busy_loop(sem):
    before = resource.getrusage(resource.RUSAGE_SELF)
    assert sem.acquire(timeout=0.6) is False
    after = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    assert cpu < 0.1, f"{cpu:.3f} s of CPU for a 0.6 s wait"


def test_long_waits_do_not_poll(sem, spawn):
    """Waits longer than the polling budget sleep in the kernel: 20 waits of 50 ms each cost
    a few milliseconds of CPU, not 1 s."""
    child = spawn(
        """
        import time
        s = fastipc.Semaphore(ARGS["name"])
        for _ in range(20):
            time.sleep(0.05)
            s.release()
        s.close()
        report(done=True)
        """,
        args={"name": sem.name},
    )
    before = resource.getrusage(resource.RUSAGE_SELF)
    for _ in range(20):
        assert sem.acquire(timeout=10)
    after = resource.getrusage(resource.RUSAGE_SELF)
    child.expect("done")
    child.finish()
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    assert cpu < 0.1, f"{cpu:.3f} s of CPU for 1 s of waiting"


def test_acquire_argument_rules(sem):
    with pytest.raises(ValueError, match="non-blocking"):
        sem.acquire(blocking=False, timeout=1)
    with pytest.raises(ValueError):
        sem.acquire(timeout=-2)
    with pytest.raises(ValueError):
        sem.release(0)
    sem.release()
    assert sem.acquire(timeout=-1) is True  # threading's spelling of "forever"


def test_wait_releases_the_gil_and_wakes_on_release(sem):
    """While acquire sleeps in the kernel, the other threads of the process run: a spinner ticks
    20 times before the semaphore is released."""
    ticks = 0
    ticks_while_blocked: list[int] = []
    stop = threading.Event()
    waiter = threading.get_native_id()

    def spin() -> None:
        nonlocal ticks
        while not stop.is_set():
            ticks += 1
            time.sleep(0.001)

    def post_once_blocked() -> None:
        wait_blocked_on(sem, os.getpid(), waiter)
        start, deadline = ticks, time.monotonic() + 1.5
        while ticks - start < 20 and time.monotonic() < deadline:
            time.sleep(0.001)
        ticks_while_blocked.append(ticks - start)
        sem.release()

    spinner = threading.Thread(target=spin)
    poster = threading.Thread(target=post_once_blocked)
    spinner.start()
    poster.start()
    try:
        start = time.monotonic()
        assert sem.acquire(timeout=10) is True
        assert time.monotonic() - start < 2
    finally:
        stop.set()
        spinner.join()
        poster.join()
    assert ticks_while_blocked[0] >= 20, "the other thread did not run while acquire waited"


def test_errors_name_the_semaphore(backend, names):
    name = names()
    with pytest.raises(FileNotFoundError) as info:
        backend.Semaphore(name)
    assert info.value.errno == errno.ENOENT and info.value.filename == name
    s = backend.Semaphore(name, create=True)
    try:
        with pytest.raises(FileExistsError) as info:
            backend.Semaphore(name, create=True)
        assert info.value.filename == name
    finally:
        s.close()
        s.unlink()
    with pytest.raises(FileNotFoundError):
        s.unlink()
    for bad in ("a/b", "", "/"):
        with pytest.raises(ValueError):
            backend.Semaphore(bad, create=True)
    with pytest.raises(ValueError):
        backend.Semaphore(names(), create=True, value=-1)
    with pytest.raises(ValueError):
        backend.Semaphore(None)


def test_closed_semaphore(backend, names):
    s = backend.Semaphore(names(), create=True)
    s.close()
    s.close()
    assert s.closed
    assert repr(s).endswith(" closed>")
    for op in (s.acquire, s.release, lambda: s.value):
        with pytest.raises(OSError) as info:
            op()
        assert info.value.errno == errno.EBADF
    s.unlink()


def test_close_from_another_thread_ends_a_wait(sem):
    outcome: list[BaseException | bool] = []
    calling = threading.Event()

    def wait() -> None:
        calling.set()
        try:
            outcome.append(sem.acquire())
        except OSError as exc:
            outcome.append(exc)

    t = threading.Thread(target=wait)
    t.start()
    assert calling.wait(5)
    wait_blocked_on(sem, os.getpid(), t.native_id)
    sem.close()
    t.join(timeout=5)
    assert not t.is_alive()
    assert isinstance(outcome[0], OSError) and outcome[0].errno == errno.EBADF


@pytest.mark.skipif(not LINUX, reason="the mode is read from /dev/shm")
def test_mode_is_exact(backend, names):
    name = names()
    old = os.umask(0o077)
    try:
        s = backend.Semaphore(name, create=True, mode=0o640)
    finally:
        os.umask(old)
    try:
        assert stat.S_IMODE(os.stat(sem_path(name)).st_mode) == 0o640
    finally:
        s.close()
        s.unlink()
    d = backend.Semaphore(name, create=True)
    try:
        assert stat.S_IMODE(os.stat(sem_path(name)).st_mode) == 0o600
    finally:
        d.close()
        d.unlink()


def test_other_process_wakes_on_release(sem, spawn):
    child = spawn(
        """
        import time
        s = fastipc.Semaphore(ARGS["name"])
        report(waiting=True)
        start = time.monotonic()
        got = s.acquire(timeout=20)
        report(got=got, waited=time.monotonic() - start)
        s.close()
        """,
        args={"name": sem.name},
    )
    child.expect("waiting")
    wait_blocked_on(sem, child.pid)
    sem.release()
    msg = child.expect("got")
    child.finish()
    assert msg["got"] is True and msg["waited"] < 10
    assert sem.value == 0


def test_ctrl_c_interrupts_a_wait_promptly(sem, spawn):
    child = spawn(
        """
        import time
        s = fastipc.Semaphore(ARGS["name"])
        report(waiting=True)
        start = time.monotonic()
        try:
            s.acquire()
            report(result="acquired")
        except KeyboardInterrupt:
            report(result="KeyboardInterrupt", after=time.monotonic() - start)
        s.close()
        """,
        args={"name": sem.name},
    )
    child.expect("waiting")
    wait_blocked_on(sem, child.pid)
    sent = time.monotonic()
    child.proc.send_signal(signal.SIGINT)
    msg = child.expect("result")
    latency = time.monotonic() - sent
    child.finish()
    assert msg["result"] == "KeyboardInterrupt"
    assert latency < 1.0


def test_ctrl_c_interrupts_a_timed_wait(sem, spawn):
    child = spawn(
        """
        s = fastipc.Semaphore(ARGS["name"])
        report(waiting=True)
        try:
            s.acquire(timeout=30)
            report(result="returned")
        except KeyboardInterrupt:
            report(result="KeyboardInterrupt")
        s.close()
        """,
        args={"name": sem.name},
    )
    child.expect("waiting")
    wait_blocked_on(sem, child.pid)
    child.proc.send_signal(signal.SIGINT)
    assert child.expect("result", timeout=5)["result"] == "KeyboardInterrupt"
    child.finish()


SEM_C = r"""
#define _POSIX_C_SOURCE 200809L
#include <fcntl.h>
#include <semaphore.h>
#include <stdio.h>
int main(int argc, char **argv) {
    (void)argc;
    sem_t *s = sem_open(argv[1], 0);
    if (s == SEM_FAILED) { perror("sem_open"); return 1; }
    int v = -1;
    sem_getvalue(s, &v);
    printf("%d\n", v);
    sem_post(s); sem_post(s);
    sem_close(s);
    return 0;
}
"""


def test_c_sem_open_sees_the_same_semaphore(sem, tmp_path):
    src = tmp_path / "semvalue.c"
    src.write_text(SEM_C)
    exe = tmp_path / "semvalue"
    subprocess.run([c_compiler(), "-std=c99", "-o", str(exe), str(src)], check=True, timeout=60)
    sem.release(3)
    out = subprocess.run([str(exe), sem.name], capture_output=True, timeout=30, check=True)
    assert out.stdout == b"3\n"
    assert sem.value == 5


@needs_posix_ipc
def test_posix_ipc_interoperates(backend, names):
    name = names()
    theirs = posix_ipc.Semaphore(name, posix_ipc.O_CREX, mode=0o600, initial_value=2)
    try:
        ours = backend.Semaphore(name)
        try:
            assert ours.value == 2
            assert ours.acquire(timeout=1)
            theirs.release()
            assert ours.value == 2
            ours.release()
            assert theirs.value == 3
        finally:
            ours.close()
        mine = backend.Semaphore(names(), create=True, value=1)
        try:
            other = posix_ipc.Semaphore(mine.name)
            other.acquire(0)
            assert mine.value == 0
            other.close()
        finally:
            mine.close()
            mine.unlink()
    finally:
        theirs.unlink()
        theirs.close()


def test_backends_share_semaphores(both_backends, names):
    rust, python = both_backends
    a = rust.Semaphore(names(), create=True, value=0)
    b = python.Semaphore(a.name)
    try:
        b.release(2)
        assert a.acquire(timeout=1) and a.value == 1
    finally:
        b.close()
        a.close()
        a.unlink()
