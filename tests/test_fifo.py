"""FIFOs: creation, interruptible and bounded opens, interop with C programs."""

from __future__ import annotations

import os
import stat
import subprocess
import threading
import time

import pytest
from _classic import assert_ctrl_c, no_queues_left  # noqa: F401


@pytest.fixture
def fifo_path(tmp_path):
    return str(tmp_path / "f")


def test_create_with_exact_mode_despite_umask(backend, fifo_path):
    old = os.umask(0o077)
    try:
        f = backend.FIFO(fifo_path, create=True, mode=0o640)
    finally:
        os.umask(old)
    st = os.stat(fifo_path)
    assert stat.S_ISFIFO(st.st_mode)
    assert stat.S_IMODE(st.st_mode) == 0o640
    assert f.path == fifo_path and fifo_path in repr(f)
    f.unlink()
    assert not os.path.exists(fifo_path)


def test_default_mode_is_private(backend, fifo_path):
    backend.FIFO(fifo_path, create=True)
    assert stat.S_IMODE(os.stat(fifo_path).st_mode) == 0o600
    os.unlink(fifo_path)


def test_create_is_exclusive(backend, fifo_path):
    with backend.FIFO(fifo_path, create=True), pytest.raises(FileExistsError):
        backend.FIFO(fifo_path, create=True)
    assert not os.path.exists(fifo_path)  # the context manager unlinked what it created


def test_missing_fifo(backend, fifo_path):
    with pytest.raises(FileNotFoundError) as info:
        backend.FIFO(fifo_path).open_reader(timeout=0.1)
    assert info.value.filename == fifo_path


def test_not_a_fifo(backend, tmp_path):
    path = tmp_path / "regular"
    path.write_bytes(b"")
    with pytest.raises(OSError):
        backend.FIFO(str(path)).open_writer(timeout=0.1)


@pytest.mark.parametrize("side", ["open_reader", "open_writer"])
def test_open_times_out(backend, fifo_path, side):
    with backend.FIFO(fifo_path, create=True) as f:
        t = time.monotonic()
        with pytest.raises(TimeoutError):
            getattr(f, side)(timeout=0.15)
        assert 0.14 <= time.monotonic() - t < 1.5
        with pytest.raises(TimeoutError):
            getattr(f, side)(timeout=0)


def test_both_sides_in_threads(backend, fifo_path):
    with backend.FIFO(fifo_path, create=True) as f:
        got = {}

        def reader():
            with f.open_reader(timeout=10) as r:
                got["data"] = r.read_exact(5)
                got["eof"] = r.read()

        t = threading.Thread(target=reader)
        t.start()
        with f.open_writer(timeout=10) as w:
            w.write_all(b"hello")
        t.join(10)
        assert got == {"data": b"hello", "eof": b""}


def test_existing_fifo_of_another_program_any_mode(backend, fifo_path):
    os.mkfifo(fifo_path, 0o666)
    os.chmod(fifo_path, 0o666)
    try:
        f = backend.FIFO(fifo_path)
        out = {}
        t = threading.Thread(target=lambda: out.setdefault("r", f.open_reader(timeout=10)))
        t.start()
        w = f.open_writer(timeout=10)
        t.join(10)
        with out["r"] as r, w:
            w.write_all(b"x")
            assert r.read_exact(1) == b"x"
        assert stat.S_IMODE(os.stat(fifo_path).st_mode) == 0o666  # untouched
    finally:
        os.unlink(fifo_path)


def test_c_writer_fastipc_reader(backend, fifo_path, c_programs):
    with backend.FIFO(fifo_path, create=True) as f:
        proc = subprocess.Popen([c_programs["classic_fifo"], "write", fifo_path, "from C"])
        try:
            with f.open_reader(timeout=10) as r:
                assert r.read_exact(6) == b"from C"
                r.settimeout(10)
                assert r.read() == b""
        finally:
            assert proc.wait(timeout=10) == 0


def test_fastipc_writer_c_reader(backend, fifo_path, c_programs):
    with backend.FIFO(fifo_path, create=True) as f:
        proc = subprocess.Popen(
            [c_programs["classic_fifo"], "read", fifo_path], stdout=subprocess.PIPE
        )
        with f.open_writer(timeout=10) as w:
            w.write_all(b"to C " * 10_000)
        out, _ = proc.communicate(timeout=10)
        assert proc.returncode == 0
        assert out == b"to C " * 10_000


CHILD_READER = """
f = B.FIFO(ARGS["path"])
with f.open_reader(timeout=20) as r:
    report(data=r.read_exact(ARGS["n"]).decode())
"""


def test_cross_process_python(backend, fifo_path, spawn):
    with backend.FIFO(fifo_path, create=True) as f:
        child = spawn(CHILD_READER, args={"path": fifo_path, "n": 11})
        with f.open_writer(timeout=20) as w:
            w.write_all(b"cross-proc!")
        assert child.expect("data")["data"] == "cross-proc!"
        child.finish()


def test_cancelled_open_leaves_nothing(backend, fifo_path):
    """A timed-out open_reader closes what it opened: a later writer finds no reader."""
    with backend.FIFO(fifo_path, create=True) as f:
        with pytest.raises(TimeoutError):
            f.open_reader(timeout=0.05)
        with pytest.raises(TimeoutError):
            f.open_writer(timeout=0.05)


@pytest.mark.parametrize("side", ["open_reader", "open_writer"])
def test_ctrl_c_during_open(backend, fifo_path, spawn, side):
    os.mkfifo(fifo_path, 0o600)
    try:
        assert_ctrl_c(
            spawn,
            setup='f = B.FIFO(ARGS["path"])',
            call=f"f.{side}()",
            args={"path": fifo_path},
        )
    finally:
        os.unlink(fifo_path)
