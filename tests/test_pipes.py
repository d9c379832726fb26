"""Pipes: pipe(), PipeReader, PipeWriter, on both backends and across processes."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
import threading
import time

import pytest
from _classic import assert_ctrl_c, no_queues_left  # noqa: F401
from _helpers import pattern


def test_round_trip_and_eof(backend):
    r, w = backend.pipe()
    with r, w:
        w.write_all(b"hello")
        assert r.read_exact(5) == b"hello"
        w.write_all(memoryview(b"xyz"))
        buf = bytearray(10)
        assert r.readinto(buf) == 3
        assert bytes(buf[:3]) == b"xyz"
        w.close()
        assert r.read() == b""
        with pytest.raises(EOFError):
            r.read_exact(1)
    assert r.closed and w.closed
    r.close()  # idempotent


def test_truncated_read_exact(backend):
    import fastipc

    r, w = backend.pipe()
    with r, w:
        w.write_all(b"abc")
        w.close()
        with pytest.raises(fastipc.TruncatedMessage) as info:
            r.read_exact(10)
        assert (info.value.expected, info.value.received) == (10, 3)


def test_close_on_exec_by_default(backend):
    r, w = backend.pipe()
    with r, w:
        assert not r.get_inheritable() and not w.get_inheritable()
        assert "pipe" in repr(r) and f"fd={r.fileno()}" in repr(r)


def test_read_timeout(backend):
    r, w = backend.pipe()
    with r, w:
        r.settimeout(0.1)
        assert r.gettimeout() == pytest.approx(0.1)
        t = time.monotonic()
        with pytest.raises(TimeoutError):
            r.read()
        assert 0.09 <= time.monotonic() - t < 1.0
        r.settimeout(0)
        with pytest.raises(TimeoutError):
            r.read_exact(1)


def test_write_timeout_when_full(backend):
    r, w = backend.pipe()
    with r, w:
        w.settimeout(0.1)
        t = time.monotonic()
        with pytest.raises(TimeoutError):
            w.write_all(b"\0" * (w.capacity + 1))
        assert 0.09 <= time.monotonic() - t < 1.0


def test_non_blocking_mode(backend):
    r, w = backend.pipe()
    with r, w:
        r.setblocking(False)
        assert not r.getblocking()
        assert r.gettimeout() == 0.0
        with pytest.raises(BlockingIOError):
            r.read()
        w.write_all(b"x")
        assert r.read() == b"x"
        r.setblocking(True)
        assert r.getblocking() and r.gettimeout() is None


def test_capacity(backend):
    r, w = backend.pipe(capacity=1 << 20)
    with r, w:
        assert w.capacity >= 1 << 20
        assert r.capacity == w.capacity
        got = w.set_capacity(4096)
        assert got == w.capacity == 4096
        w.set_capacity(65536)
        w.write_all(b"\0" * 16384)
        with pytest.raises(OSError) as info:  # cannot shrink below the data it holds
            w.set_capacity(4096)
        assert info.value.errno == errno.EBUSY
        assert r.read_exact(16384) == b"\0" * 16384


def test_capacity_over_limit_is_a_clear_error(backend):
    import fastipc  # noqa: F401

    if os.geteuid() == 0:
        pytest.skip("root may exceed /proc/sys/fs/pipe-max-size")
    r, w = backend.pipe()
    with r, w, pytest.raises(PermissionError):
        w.set_capacity(1 << 30)


def test_poll_and_available(backend):
    r, w = backend.pipe()
    with r, w:
        assert not r.poll()
        w.write_all(b"abcd")
        assert r.poll(1.0)
        assert r.available() == 4
        assert r.read(2) == b"ab"
        assert r.available() == 2


def test_threads_do_not_interleave(backend):
    r, w = backend.pipe()
    with r, w:
        blocks = [bytes([i]) * 100_000 for i in range(4)]
        threads = [threading.Thread(target=w.write_all, args=(b,)) for b in blocks]
        for t in threads:
            t.start()
        got = [r.read_exact(100_000) for _ in blocks]
        for t in threads:
            t.join()
        assert sorted(got) == sorted(blocks)


def test_closed_operations_fail(backend):
    r, w = backend.pipe()
    r.close()
    w.close()
    with pytest.raises(OSError):
        r.read()
    with pytest.raises(OSError):
        w.write(b"x")


def test_broken_pipe(backend):
    r, w = backend.pipe()
    with w:
        r.close()
        with pytest.raises(BrokenPipeError):
            w.write_all(b"x")


def test_hand_end_to_child_with_pass_fds(backend):
    """The explicit way: pass_fds (the end stays close-on-exec here)."""
    r, w = backend.pipe()
    with r, w:
        code = "import os,sys; os.write(int(sys.argv[1]), b'from child'); "
        proc = subprocess.run(
            [sys.executable, "-c", code, str(w.fileno())],
            pass_fds=[w.fileno()],
            timeout=30,
            check=False,
        )
        assert proc.returncode == 0
        w.close()
        assert r.read_exact(10) == b"from child"
        assert r.read() == b""


def test_set_inheritable_gives_child_a_blocking_end(backend):
    r, w = backend.pipe()
    with r, w:
        r.set_inheritable(True)
        assert r.get_inheritable()
        code = (
            "import os,sys; fd=int(sys.argv[1]); "
            "assert os.get_blocking(fd); sys.stdout.write(os.read(fd, 100).decode())"
        )
        proc = subprocess.Popen(
            [sys.executable, "-c", code, str(r.fileno())],
            close_fds=False,
            stdout=subprocess.PIPE,
        )
        w.write_all(b"inherited")
        out, _ = proc.communicate(timeout=30)
        assert proc.returncode == 0
        assert out == b"inherited"
        # this end still works for us, with its descriptor now blocking
        writer = threading.Thread(target=w.write_all, args=(pattern(100_000),))
        writer.start()
        assert r.read_exact(100_000) == pattern(100_000)
        writer.join()


def test_cross_process_big_transfer(backend):
    r, w = backend.pipe()
    with r, w:
        w.set_inheritable(True)  # the explicit hand-over: the child gets a blocking descriptor
        n = 3 << 20
        proc = subprocess.Popen(
            [
                sys.executable,
                "-c",
                "import os,sys\nfd=int(sys.argv[1])\n"
                "v=memoryview(bytes(range(256))*(int(sys.argv[2])//256))\n"
                "while v: v=v[os.write(fd, v):]\n",
                str(w.fileno()),
                str(n),
            ],
            pass_fds=[w.fileno()],
        )
        w.close()
        got = r.read_exact(n)
        assert proc.wait(timeout=30) == 0
        assert got == bytes(range(256)) * (n // 256)
        assert r.read() == b""


def test_detach(backend):
    r, w = backend.pipe()
    fd = w.detach()
    assert w.closed
    os.write(fd, b"raw")
    os.close(fd)
    with r:
        assert r.read_exact(3) == b"raw"


@pytest.mark.parametrize(
    "call",
    [
        "r.read()",
        "r.read_exact(10)",
        "r.readinto(bytearray(10))",
        "r.poll(None)",
        "w.write_all(b'x' * (1 << 22))",
    ],
)
def test_ctrl_c(backend, spawn, call):
    assert_ctrl_c(
        spawn,
        setup="r, w = B.pipe()",
        call=call,
        cleanup="r.close(); w.close()",
    )
