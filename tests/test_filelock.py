"""File locks: exclusion across processes, ranges, shared locks, F_GETLK, C interop."""

from __future__ import annotations

import os
import subprocess
import threading
import time

import pytest
from _classic import assert_ctrl_c, no_queues_left  # noqa: F401

KINDS = ["ofd", "posix"]


@pytest.fixture
def lockfile(tmp_path):
    return str(tmp_path / "lock")


class CHolder:
    """A C program holding an fcntl lock until its stdin closes."""

    def __init__(self, exe, path, start, length, mode):
        self.proc = subprocess.Popen(
            [exe, "hold", path, str(start), str(length), mode],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        line = self.proc.stdout.readline()
        assert line.startswith(b"locked "), line
        self.pid = int(line.split()[1])

    def release(self):
        self.proc.stdin.close()
        assert self.proc.wait(timeout=10) == 0
        self.proc.stdout.close()


def c_try(exe, path, start, length, mode):
    out = subprocess.run(
        [exe, "try", path, str(start), str(length), mode],
        check=True,
        capture_output=True,
        timeout=10,
    ).stdout.split()
    return out


@pytest.mark.parametrize("kind", KINDS)
def test_acquire_release_and_context(backend, lockfile, kind):
    lock = backend.FileLock(lockfile, kind=kind)
    with lock:
        assert lock.kind == kind
        assert lock.held
        assert lock.acquire()  # already held: True
        assert "held" in repr(lock)
    assert not lock.held
    with pytest.raises(RuntimeError):
        lock.release()
    lock.close()
    lock.close()
    assert os.stat(lockfile).st_mode & 0o777 == 0o600


def test_ofd_locks_exclude_threads_of_one_process(backend, lockfile):
    a = backend.FileLock(lockfile, kind="ofd")
    b = backend.FileLock(lockfile, kind="ofd")
    try:
        assert a.acquire()
        assert not b.acquire(blocking=False)
        t = time.monotonic()
        assert not b.acquire(timeout=0.1)
        assert 0.09 <= time.monotonic() - t < 1.0
        holder = b.holder()
        assert holder is not None and holder.pid == -1 and not holder.shared
        threading.Timer(0.05, a.release).start()
        assert b.acquire(timeout=5)
        b.release()
    finally:
        a.close()
        b.close()


@pytest.mark.parametrize("kind", KINDS)
def test_c_holder_blocks_fastipc_and_is_reported(backend, lockfile, kind, c_programs):
    holder = CHolder(c_programs["classic_lock"], lockfile, 10, 20, "w")
    lock = backend.FileLock(lockfile, start=0, length=100, kind=kind)
    try:
        assert not lock.acquire(blocking=False)
        assert not lock.acquire(timeout=0.05)
        who = lock.holder()
        assert (who.pid, who.start, who.length, who.shared) == (holder.pid, 10, 20, False)
        # a range that does not overlap is free
        with backend.FileLock(lockfile, start=30, length=5, kind=kind) as other:
            assert other.held
        releaser = threading.Timer(0.05, holder.release)
        releaser.start()
        assert lock.acquire(timeout=10)
        releaser.join()
        assert lock.holder() is None
    finally:
        lock.close()
        if holder.proc.poll() is None:
            holder.release()


@pytest.mark.parametrize("kind", KINDS)
def test_fastipc_holder_blocks_c(backend, lockfile, kind, c_programs):
    with backend.FileLock(lockfile, start=5, length=0, kind=kind):
        out = c_try(c_programs["classic_lock"], lockfile, 0, 10, "r")
        assert out[0] == b"busy"
        # classic F_GETLK reports the pid of a POSIX holder, -1 for an OFD holder
        assert int(out[1]) == (os.getpid() if kind == "posix" else -1)
        assert out[2:] == [b"5", b"0", b"w"]
        assert c_try(c_programs["classic_lock"], lockfile, 0, 5, "w") == [b"ok"]
    assert c_try(c_programs["classic_lock"], lockfile, 0, 10, "w") == [b"ok"]


@pytest.mark.parametrize("kind", KINDS)
def test_shared_locks(backend, lockfile, kind, c_programs):
    holder = CHolder(c_programs["classic_lock"], lockfile, 0, 0, "r")
    try:
        with backend.FileLock(lockfile, shared=True, kind=kind) as lock:
            assert lock.held and lock.shared
            excl = backend.FileLock(lockfile, kind="ofd")
            try:
                assert not excl.acquire(timeout=0.02)
                who = excl.holder()
                assert who is not None and who.shared
            finally:
                excl.close()
    finally:
        holder.release()


def test_read_only_file_takes_shared_lock(backend, lockfile):
    with open(lockfile, "w"):
        pass
    os.chmod(lockfile, 0o444)
    if os.geteuid() == 0:
        pytest.skip("root opens read-only files for writing anyway")
    with backend.FileLock(lockfile, shared=True) as lock:
        assert lock.held


def test_bad_kind(backend, lockfile):
    with pytest.raises(ValueError):
        backend.FileLock(lockfile, kind="flock")


CHILD = """
lock = B.FileLock(ARGS["path"], kind=ARGS["kind"])
lock.acquire()
report(locked=os.getpid())
wait_parent()
lock.release()
lock.close()
"""


@pytest.mark.parametrize("kind", KINDS)
def test_cross_process_python(backend, lockfile, kind, spawn):
    child = spawn(CHILD, args={"path": lockfile, "kind": kind})
    pid = child.expect("locked")["locked"]
    lock = backend.FileLock(lockfile, kind=kind)
    try:
        assert not lock.acquire(timeout=0.05)
        who = lock.holder()
        assert who.pid == (pid if kind == "posix" else -1)
        child.send(go=1)
        assert lock.acquire(timeout=10)
        child.finish()
    finally:
        lock.close()


@pytest.mark.parametrize("kind", KINDS)
def test_ctrl_c(backend, lockfile, kind, spawn):
    # the lock is held by this process; the child waits for it forever
    with backend.FileLock(lockfile, kind=kind):
        assert_ctrl_c(
            spawn,
            setup='lock = B.FileLock(ARGS["path"], kind=ARGS["kind"])',
            call="lock.acquire()",
            cleanup="assert not lock.held; lock.close()",
            args={"path": lockfile, "kind": kind},
        )
