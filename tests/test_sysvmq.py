"""System V message queues: typed retrieval, ftok keys shared with C programs, removal."""

from __future__ import annotations

import errno
import os
import subprocess
import threading
import time

import pytest
from _classic import assert_ctrl_c, no_queues_left  # noqa: F401
from _helpers import SLEEP_SYSCALLS, wait_blocked_in_kernel


@pytest.fixture
def keyfile(tmp_path):
    path = tmp_path / "key"
    path.write_bytes(b"")
    return str(path)


def test_typed_retrieval(backend):
    q = backend.SysVMessageQueue(create=True)
    try:
        assert q.key == 0 and q.id >= 0
        for t, m in ((3, b"c"), (1, b"a"), (2, b"b"), (1, b"a2"), (5, b"e")):
            q.send(m, t)
        assert q.current_messages == 5
        assert q.receive(2, timeout=0) == (b"b", 2)  # first of type 2
        assert q.receive(-3, timeout=0) == (b"a", 1)  # lowest type up to 3
        assert q.receive(timeout=0) == (b"c", 3)  # first message
        assert q.receive(-4, timeout=0) == (b"a2", 1)
        with pytest.raises(TimeoutError):
            q.receive(-4, timeout=0)
        assert q.receive(type=5, timeout=0) == (b"e", 5)
        assert q.current_messages == 0
        assert q.mode == 0o600
    finally:
        q.remove()


def test_bad_arguments(backend, keyfile):
    with pytest.raises(ValueError):
        backend.SysVMessageQueue()  # a private queue must be created
    with pytest.raises(ValueError):
        backend.SysVMessageQueue(5, path=keyfile, project_id=1)
    with pytest.raises(ValueError):
        backend.ftok(keyfile, 0)
    q = backend.SysVMessageQueue(create=True)
    try:
        with pytest.raises(ValueError):
            q.send(b"x", 0)
    finally:
        q.remove()


def test_ftok_matches_c(backend, keyfile, c_programs):
    out = subprocess.run(
        [c_programs["classic_sysv"], "key", keyfile, "65"], check=True, capture_output=True
    ).stdout
    assert backend.ftok(keyfile, 65) == int(out)


def test_exclusive_create_and_open_by_key(backend, keyfile):
    q = backend.SysVMessageQueue(path=keyfile, project_id=7, create=True)
    try:
        with pytest.raises(FileExistsError):
            backend.SysVMessageQueue(path=keyfile, project_id=7, create=True)
        other = backend.SysVMessageQueue(q.key)
        assert other.id == q.id
        other.send(b"via key", 4)
        assert q.receive(timeout=1) == (b"via key", 4)
    finally:
        q.remove()
    with pytest.raises(FileNotFoundError):
        backend.SysVMessageQueue(path=keyfile, project_id=7)


def test_timeouts(backend):
    q = backend.SysVMessageQueue(create=True)
    try:
        t = time.monotonic()
        with pytest.raises(TimeoutError):
            q.receive(timeout=0.1)
        assert 0.09 <= time.monotonic() - t < 1.0
        # fill the queue (msg_qbytes) and time out sending
        chunk = b"x" * 1024
        n = q.max_bytes // len(chunk)
        for _ in range(n):
            q.send(chunk, timeout=0)
        with pytest.raises(TimeoutError):
            q.send(chunk, timeout=0.1)
    finally:
        q.remove()


def test_remove_wakes_waiters_with_error(backend):
    """msgrcv has no timeout: receive polls with IPC_NOWAIT and sleeps between tries, so a
    waiter is a thread asleep in that back-off (nanosleep), and the removal ends it."""
    q = backend.SysVMessageQueue(create=True)
    errors = []
    calling = threading.Event()

    def wait():
        calling.set()
        try:
            q.receive(timeout=10)
        except OSError as exc:
            errors.append(exc.errno)

    t = threading.Thread(target=wait)
    t.start()
    assert calling.wait(5)
    wait_blocked_in_kernel(os.getpid(), t.native_id, syscalls=SLEEP_SYSCALLS)
    q.remove()
    t.join(5)
    assert errors in ([errno.EIDRM], [errno.EINVAL])


def test_c_sender_fastipc_receiver(backend, keyfile, c_programs):
    q = backend.SysVMessageQueue(path=keyfile, project_id=42, create=True)
    try:
        for t, text in ((9, "nine"), (3, "three")):
            subprocess.run(
                [c_programs["classic_sysv"], "send", keyfile, "42", str(t), text],
                check=True,
                timeout=10,
            )
        assert q.receive(-5, timeout=5) == (b"three", 3)
        assert q.receive(timeout=5) == (b"nine", 9)
    finally:
        q.remove()


def test_fastipc_sender_c_receiver(backend, keyfile, c_programs):
    out = subprocess.run(
        [c_programs["classic_sysv"], "create", keyfile, "43"], check=True, capture_output=True
    ).stdout
    q = backend.SysVMessageQueue(path=keyfile, project_id=43)
    try:
        assert q.id == int(out)
        q.send(b"first", 1)
        q.send(b"typed", 6)
        got = subprocess.run(
            [c_programs["classic_sysv"], "recv", keyfile, "43", "6"],
            check=True,
            timeout=10,
            capture_output=True,
        ).stdout
        assert got == b"6 typed\n"
        assert q.receive(timeout=0) == (b"first", 1)
    finally:
        q.remove()


CHILD = """
q = B.SysVMessageQueue(ARGS["key"])
data, t = q.receive(-10, timeout=20)
q.send(data[::-1], t + 100)
report(done=1)
"""


def test_cross_process_python(backend, keyfile, spawn):
    q = backend.SysVMessageQueue(path=keyfile, project_id=1, create=True)
    try:
        child = spawn(CHILD, args={"key": q.key})
        q.send(b"abc", 7)
        child.expect("done")
        assert q.receive(107, timeout=20) == (b"cba", 107)
        child.finish()
    finally:
        q.remove()


@pytest.mark.parametrize("call", ["q.receive()", "q.receive(3)", "q.send(b'x' * 1024)"])
def test_ctrl_c(backend, spawn, call):
    assert_ctrl_c(
        spawn,
        setup="""
            q = B.SysVMessageQueue(create=True)
            if "send" in ARGS["call"]:  # fill the queue so that the send waits
                for _ in range(q.max_bytes // 1024):
                    q.send(b"x" * 1024, timeout=0)
        """,
        args={"call": call},
        call=call,
        cleanup="q.remove(); q.close()",
    )
