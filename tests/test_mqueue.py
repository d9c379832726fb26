"""POSIX message queues: priorities, attributes, limits, select, interop with C programs."""

from __future__ import annotations

import contextlib
import errno
import os
import select
import stat
import subprocess
import time

import fastipc
import pytest
from _classic import assert_ctrl_c, no_queues_left, unique  # noqa: F401


@pytest.fixture
def qname():
    name = "/" + unique("mq")
    yield name
    with contextlib.suppress(FileNotFoundError, fastipc.NotSupportedError):
        fastipc.unlink_message_queue(name)


def test_priorities_and_attributes(backend, qname):
    with backend.MessageQueue(qname, create=True, max_messages=4, max_message_size=64) as q:
        assert (q.name, q.max_messages, q.max_message_size) == (qname, 4, 64)
        q.send(b"low", 1)
        q.send(b"high", 9)
        q.send(bytearray(b"mid"), priority=5)
        assert q.current_messages == 3
        assert q.receive() == (b"high", 9)
        assert q.receive() == (b"mid", 5)
        assert q.receive(timeout=0) == (b"low", 1)
        assert q.current_messages == 0
        assert qname in repr(q)
        q.unlink()
    assert q.closed


def test_name_without_slash_and_bad_names(backend, qname):
    with backend.MessageQueue(qname[1:], create=True) as q:
        assert q.name == qname
        q.unlink()
    for bad in ("", "/", "a/b", "x" * 256):
        with pytest.raises(ValueError):
            backend.MessageQueue(bad, create=True)


def test_created_private_and_exclusive(backend, qname):
    old = os.umask(0o077)
    try:
        q = backend.MessageQueue(qname, create=True, mode=0o640)
    finally:
        os.umask(old)
    with q:
        if os.path.ismount("/dev/mqueue"):  # an empty directory there is not the file system
            assert stat.S_IMODE(os.stat("/dev/mqueue" + qname).st_mode) == 0o640
        with pytest.raises(FileExistsError):
            backend.MessageQueue(qname, create=True)
        q.unlink()


def test_open_missing(backend, qname):
    with pytest.raises(FileNotFoundError) as info:
        backend.MessageQueue(qname)
    assert info.value.filename == qname


def test_limits_are_clear_errors(backend, qname):
    with pytest.raises(OSError) as info:
        backend.MessageQueue(qname, create=True, max_messages=1 << 30, max_message_size=1 << 30)
    assert info.value.errno in (errno.EINVAL, errno.EMFILE, errno.ENOMEM)
    if info.value.errno == errno.EINVAL:
        assert "/proc/sys/fs/mqueue/msg_max" in str(info.value)
    with pytest.raises(ValueError):
        backend.MessageQueue(qname, max_messages=3)  # sizes only when creating


def test_message_too_large_and_bad_priority(backend, qname):
    with backend.MessageQueue(qname, create=True, max_messages=2, max_message_size=16) as q:
        with pytest.raises(fastipc.MessageTooLarge):
            q.send(b"x" * 17)
        with pytest.raises(ValueError):
            q.send(b"x", 32768)
        q.unlink()


def test_timeouts(backend, qname):
    with backend.MessageQueue(qname, create=True, max_messages=1, max_message_size=8) as q:
        t = time.monotonic()
        with pytest.raises(TimeoutError):
            q.receive(timeout=0.1)
        assert 0.09 <= time.monotonic() - t < 1.0
        q.send(b"a")
        with pytest.raises(TimeoutError):
            q.send(b"b", timeout=0.1)
        with pytest.raises(TimeoutError):
            q.send(b"b", timeout=0)
        q.unlink()


def test_usable_with_select(backend, qname):
    with backend.MessageQueue(qname, create=True, max_messages=2, max_message_size=8) as q:
        assert select.select([q], [], [], 0)[0] == []
        q.send(b"x")
        assert select.select([q], [], [], 1)[0] == [q]
        assert q.receive(timeout=0) == (b"x", 0)
        q.unlink()


def test_closed_queue(backend, qname):
    q = backend.MessageQueue(qname, create=True)
    q.unlink()
    q.close()
    q.close()
    with pytest.raises(OSError) as info:
        q.send(b"x")
    assert info.value.errno == errno.EBADF


CHILD = """
q = B.MessageQueue(ARGS["name"])
data, prio = q.receive(timeout=20)
q.send(data.upper(), prio + 1)
q.close()
report(done=1)
"""


def test_cross_process_python(backend, qname, spawn):
    with backend.MessageQueue(qname, create=True, max_messages=2, max_message_size=64) as q:
        child = spawn(CHILD, args={"name": qname})
        q.send(b"ping", 3)
        child.expect("done")
        assert q.receive(timeout=20) == (b"PING", 4)
        child.finish()
        q.unlink()


def test_c_sender_fastipc_receiver(backend, qname, c_programs):
    with backend.MessageQueue(qname, create=True, max_messages=4, max_message_size=128) as q:
        for prio, text in ((2, "two"), (7, "seven")):
            subprocess.run(
                [c_programs["classic_pmq"], "send", qname, str(prio), text], check=True, timeout=10
            )
        assert q.receive(timeout=5) == (b"seven", 7)
        assert q.receive(timeout=5) == (b"two", 2)
        q.unlink()


def test_fastipc_sender_c_receiver(backend, qname, c_programs):
    with backend.MessageQueue(qname, create=True, max_messages=4, max_message_size=128) as q:
        q.send(b"hello C", 11)
        out = subprocess.run(
            [c_programs["classic_pmq"], "recv", qname],
            check=True,
            timeout=10,
            capture_output=True,
        ).stdout
        assert out == b"11 hello C\n"
        q.unlink()


def test_open_queue_created_by_c(backend, qname, c_programs):
    subprocess.run([c_programs["classic_pmq"], "create", qname, "3", "100"], check=True, timeout=10)
    with backend.MessageQueue(qname) as q:
        assert (q.max_messages, q.max_message_size) == (3, 100)
        q.unlink()


@pytest.mark.parametrize("call", ["q.receive()", "(q.send(b'x'), q.send(b'y'))"])
def test_ctrl_c(backend, qname, spawn, call):
    assert_ctrl_c(
        spawn,
        setup="""
            q = B.MessageQueue(ARGS["name"], create=True, max_messages=1, max_message_size=8)
            q.unlink()
        """,
        call=call,
        cleanup="q.close()",
        args={"name": qname},
    )
