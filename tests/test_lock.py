"""fastipc.Lock: a crash-robust lock between processes. When the holder is killed (kill -9), the
next acquire succeeds and reports it; hundreds of kills, never a deadlock. The pure-Python backend
has no robust mutexes and raises NotSupportedError."""

from __future__ import annotations

import errno
import os
import random
import signal
import sys
import threading
import time

import pytest
from _helpers import wait_blocked_in_futex

ROBUST = sys.platform.startswith(("linux", "freebsd"))
KILL_ROUNDS = 300
RACE_ROUNDS = 200


@pytest.fixture
def lock_module(backend, backend_name):
    if backend_name == "python":
        pytest.skip("the fallback's Lock raises NotSupportedError (test_fallback_lock_...)")
    if not ROBUST:
        pytest.skip("no robust mutexes on this platform")
    return backend


def wait_blocked_on(lock, pid: int, tid: int | None = None) -> None:
    """Waits until the thread sleeps in the futex of ``lock``'s mutex (in its segment)."""
    wait_blocked_in_futex(pid, tid, mapped="/dev/shm/" + lock.name.lstrip("/"))


@pytest.fixture
def lock(lock_module, names):
    lk = lock_module.Lock(names(), create=True)
    yield lk
    lk.close()
    lk.unlink()


def test_fallback_lock_is_not_supported(backend, backend_name, names):
    if backend_name != "python":
        pytest.skip("the Rust backend has Lock")
    import fastipc

    with pytest.raises(fastipc.NotSupportedError, match="robust"):
        backend.Lock(names(), create=True)
    with pytest.raises(fastipc.NotSupportedError):
        backend.Lock(names())
    with pytest.raises(fastipc.NotSupportedError, match="robust"):
        backend.Lock.locked(object.__new__(backend.Lock))


def test_acquire_release_and_context_manager(lock_module, lock):
    assert lock.name.startswith("/fastipc-test-")
    assert lock.acquire() is True
    assert lock.recovered is False
    assert lock.acquire(blocking=False) is False  # held by this very thread: not available
    with pytest.raises(RuntimeError, match="not reentrant"):
        lock.acquire(timeout=0.1)
    lock.release()
    with pytest.raises(RuntimeError, match="does not hold"):
        lock.release()
    with lock:
        assert lock.acquire(blocking=False) is False
    assert lock.acquire(blocking=False) is True
    lock.release()
    assert repr(lock) == f"<fastipc.Lock {lock.name}>"
    other = lock_module.Lock(lock.name.lstrip("/"))
    try:
        with other:
            assert lock.acquire(blocking=False) is False
    finally:
        other.close()


def test_generated_names_errors_and_close(lock_module, names):
    lk = lock_module.Lock(create=True)
    try:
        assert lk.name.startswith("/fastipc-") and len(lk.name) <= 31
        with pytest.raises(FileExistsError):
            lock_module.Lock(lk.name, create=True)
    finally:
        lk.close()
        lk.unlink()
    lk.close()
    assert lk.closed
    with pytest.raises(OSError) as info:
        lk.acquire()
    assert info.value.errno == errno.EBADF
    with pytest.raises(FileNotFoundError):
        lock_module.Lock(names())
    with pytest.raises(ValueError):
        lock_module.Lock(None)
    with pytest.raises(ValueError, match="non-blocking"):
        lock_module.Lock.acquire(lk, blocking=False, timeout=1)


def test_a_segment_that_is_not_a_lock_is_refused(lock_module, backend, names):
    name = names()
    seg = backend.SharedMemory(name, create=True, size=10)
    try:
        with pytest.raises(ValueError, match="not a fastipc lock"):
            lock_module.Lock(name)
    finally:
        seg.close()
        seg.unlink()


def test_timeout_against_another_process(lock, spawn):
    child = spawn(
        """
        lk = fastipc.Lock(ARGS["name"])
        lk.acquire()
        report(holding=True)
        wait_parent()
        lk.release()
        lk.close()
        report(released=True)
        """,
        args={"name": lock.name},
    )
    child.expect("holding")
    assert lock.acquire(blocking=False) is False
    start = time.monotonic()
    assert lock.acquire(timeout=0.3) is False
    assert 0.3 <= time.monotonic() - start < 0.6
    child.send(go=True)
    child.expect("released")
    assert lock.acquire(timeout=5) is True
    assert lock.recovered is False
    lock.release()
    child.finish()


def test_locked_follows_a_holder_in_another_process(lock, spawn):
    assert lock.locked() is False
    child = spawn(
        """
        lk = fastipc.Lock(ARGS["name"])
        lk.acquire()
        report(holding=lk.locked())
        wait_parent()
        lk.release()
        report(released=lk.locked())
        lk.close()
        """,
        args={"name": lock.name},
    )
    assert child.expect("holding")["holding"] is True
    assert lock.locked() is True
    assert lock.locked() is True  # asking takes nothing
    assert lock.acquire(blocking=False) is False
    child.send(go=True)
    assert child.expect("released")["released"] is False
    assert lock.locked() is False
    child.finish()
    with lock:
        assert lock.locked() is True
    assert lock.locked() is False


def test_locked_counts_a_dead_holder_until_it_is_recovered(lock_module, lock, backend, names):
    data = backend.SharedMemory(names(), create=True, size=8)
    try:
        pid = _fork_holder(lock_module, lock.name, data.buf)
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        # The holder is dead and nobody took its lock over: still locked, and asking (twice)
        # neither recovers it nor sets recovered.
        assert lock.locked() is True
        assert lock.locked() is True
        assert lock.recovered is False
        other = lock_module.Lock(lock.name)
        try:
            assert other.locked() is True
            assert other.acquire(timeout=5) is True
            assert other.recovered is True  # the recovery was this acquire's, not locked()'s
            assert lock.locked() is True
            other.release()
            assert lock.locked() is False
            assert other.locked() is False
            assert other.recovered is True  # not consumed by asking
        finally:
            other.close()
        assert lock.acquire(timeout=5) is True
        assert lock.recovered is False
        lock.release()
    finally:
        data.close()
        data.unlink()


def test_locked_on_a_closed_lock(lock_module, names):
    lk = lock_module.Lock(names(), create=True)
    lk.close()
    with pytest.raises(OSError) as info:
        lk.locked()
    assert info.value.errno == errno.EBADF
    lk.unlink()


def test_thread_that_dies_holding_the_lock(lock):
    t = threading.Thread(target=lock.acquire)
    t.start()
    t.join()
    assert lock.acquire(timeout=5) is True
    assert lock.recovered is True
    lock.release()
    assert lock.acquire(timeout=5) is True
    assert lock.recovered is False
    lock.release()


def test_ctrl_c_interrupts_a_wait_for_the_lock(lock, spawn):
    assert lock.acquire()
    try:
        child = spawn(
            """
            lk = fastipc.Lock(ARGS["name"])
            report(waiting=True)
            try:
                lk.acquire()
                report(result="acquired")
            except KeyboardInterrupt:
                report(result="KeyboardInterrupt")
            lk.close()
            """,
            args={"name": lock.name},
        )
        child.expect("waiting")
        wait_blocked_on(lock, child.pid)
        sent = time.monotonic()
        child.proc.send_signal(signal.SIGINT)
        assert child.expect("result", timeout=5)["result"] == "KeyboardInterrupt"
        assert time.monotonic() - sent < 1.0
        child.finish()
    finally:
        lock.release()


def _fork_holder(lock_module, name: str, dirty: memoryview) -> int:
    """A child that takes the lock, marks the protected data half-updated, tells the parent
    (one byte on a pipe) and sleeps until killed."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        try:
            os.close(r)
            lk = lock_module.Lock(name)
            lk.acquire()
            dirty[0] = 1
            os.write(w, b"x")
            time.sleep(60)
        finally:
            os._exit(0)
    os.close(w)
    try:
        assert os.read(r, 1) == b"x", "the holder died before taking the lock"
    finally:
        os.close(r)
    return pid


def test_kill_9_of_the_holder_hundreds_of_times(lock_module, lock, backend, names):
    data = backend.SharedMemory(names(), create=True, size=8)
    try:
        buf = data.buf
        for round_ in range(KILL_ROUNDS):
            pid = _fork_holder(lock_module, lock.name, buf)
            assert lock.acquire(blocking=False) is False
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            assert lock.acquire(timeout=5), f"deadlock after kill {round_}"
            assert lock.recovered, f"round {round_}: the owner's death went unnoticed"
            assert buf[0] == 1
            buf[0] = 0  # repair
            lock.release()
        assert lock.acquire(timeout=1) and not lock.recovered
        lock.release()
        del buf
    finally:
        data.close()
        data.unlink()


def test_kill_9_while_a_waiter_is_blocked(lock_module, lock, backend, names):
    def wait(got: list[tuple[bool, bool]], calling: threading.Event) -> None:
        calling.set()
        got.append((lock.acquire(timeout=10), lock.recovered))

    data = backend.SharedMemory(names(), create=True, size=8)
    try:
        for _ in range(20):
            pid = _fork_holder(lock_module, lock.name, data.buf)
            got: list[tuple[bool, bool]] = []
            calling = threading.Event()
            waiter = threading.Thread(target=wait, args=(got, calling))
            waiter.start()
            assert calling.wait(5)
            wait_blocked_on(lock, os.getpid(), waiter.native_id)
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            waiter.join(timeout=15)
            assert got == [(True, True)]
            # the waiter thread ended holding the lock: the next acquire recovers it again
            assert lock.acquire(timeout=5) and lock.recovered
            lock.release()
    finally:
        data.close()
        data.unlink()


def test_kill_9_at_random_moments_of_a_busy_holder(lock_module, lock):
    """Children that take and release the lock in a tight loop, killed at random moments (also
    inside lock and unlock): the parent always gets the lock within the timeout."""
    rng = random.Random(1234)
    recovered = 0
    for round_ in range(RACE_ROUNDS):
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - child
            try:
                os.close(r)
                lk = lock_module.Lock(lock.name)
                os.write(w, b"x")
                while True:
                    lk.acquire()
                    lk.release()
            finally:
                os._exit(0)
        os.close(w)
        assert os.read(r, 1) == b"x"
        os.close(r)
        time.sleep(rng.random() * 0.004)
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        assert lock.acquire(timeout=5), f"deadlock after kill {round_}"
        recovered += lock.recovered
        lock.release()
    # some kills land while the child holds the lock
    assert recovered > 0


# ---------------------------------------------------------------------------- Lock.in_buffer


def test_in_buffer_lock_next_to_its_data(lock_module, names):
    seg = lock_module.SharedMemory(names(), create=True, size=4096)
    try:
        assert lock_module.Lock.SIZE == 128
        lk = lock_module.Lock.in_buffer(seg, 256, init=True)
        assert lk.name == f"{seg.name}@256"
        other = lock_module.Lock.in_buffer(lock_module.SharedMemory(seg.name), 256)
        try:
            with lk:
                assert other.acquire(blocking=False) is False
            assert other.acquire(timeout=1) is True
            other.release()
            with pytest.raises(ValueError, match="unlink the segment"):
                lk.unlink()
            with pytest.raises(BufferError):
                seg.close()  # the lock keeps its bytes exported
        finally:
            other.close()
            lk.close()
        seg.close()
    finally:
        seg.close()
        seg.unlink()


def test_in_buffer_argument_checks(lock_module, names):
    seg = lock_module.SharedMemory(names(), create=True, size=200)
    try:
        for offset in (-64, 10, 128):  # negative, misaligned, too little room left
            with pytest.raises(ValueError):
                lock_module.Lock.in_buffer(seg, offset, init=True)
        with pytest.raises(TypeError, match="SharedMemory"):
            lock_module.Lock.in_buffer(bytearray(4096), 0, init=True)
        start = time.monotonic()
        with pytest.raises(ValueError, match="init=True"):
            lock_module.Lock.in_buffer(seg, 0)  # nobody initialised it
        assert time.monotonic() - start < 5
    finally:
        seg.close()
        seg.unlink()


def test_in_buffer_lock_survives_kill_9(lock_module, names):
    seg = lock_module.SharedMemory(names(), create=True, size=4096)
    try:
        lk = lock_module.Lock.in_buffer(seg, 0, init=True)
        try:
            for _ in range(50):
                r, w = os.pipe()
                pid = os.fork()
                if pid == 0:  # pragma: no cover - child
                    try:
                        os.close(r)
                        mine = lock_module.Lock.in_buffer(lock_module.SharedMemory(seg.name), 0)
                        mine.acquire()
                        os.write(w, b"x")
                        time.sleep(60)
                    finally:
                        os._exit(0)
                os.close(w)
                assert os.read(r, 1) == b"x"
                os.close(r)
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                assert lk.acquire(timeout=5) and lk.recovered
                lk.release()
        finally:
            lk.close()
    finally:
        seg.close()
        seg.unlink()


def test_fallback_in_buffer_is_not_supported(backend, backend_name, names):
    if backend_name != "python":
        pytest.skip("the Rust backend has Lock.in_buffer")
    import fastipc

    seg = backend.SharedMemory(names(), create=True, size=4096)
    try:
        with pytest.raises(fastipc.NotSupportedError):
            backend.Lock.in_buffer(seg, 0, init=True)
    finally:
        seg.close()
        seg.unlink()
