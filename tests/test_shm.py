"""fastipc.SharedMemory on both backends: names, modes, buf and views, errors, anonymous
segments over a socket, and the memwriter/memreader pattern with C programs and posix_ipc."""

from __future__ import annotations

import errno
import os
import pickle
import socket
import stat
import subprocess
import sys

import pytest

LINUX = sys.platform.startswith("linux")
pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX shared memory")

try:
    import numpy as np
except ImportError:  # pragma: no cover
    np = None

try:
    import posix_ipc
except ImportError:  # pragma: no cover
    posix_ipc = None

needs_posix_ipc = pytest.mark.skipif(
    posix_ipc is None, reason="posix_ipc cannot be imported (pip install posix_ipc)"
)


def shm_path(name: str) -> str:
    return "/dev/shm/" + name.lstrip("/")


def test_create_open_and_share_bytes(backend, names):
    name = names()
    a = backend.SharedMemory(name, create=True, size=10_000)
    try:
        assert a.name == name
        assert a.size == 10_000
        assert isinstance(a.buf, memoryview)
        assert len(a.buf) == 10_000 and not a.buf.readonly
        assert bytes(a.buf[:16]) == bytes(16), "a new segment is zero-filled"
        a.buf[100:105] = b"hello"
        b = backend.SharedMemory(name.lstrip("/"))  # without the slash: the same segment
        try:
            assert b.name == name and b.size == 10_000
            assert bytes(b.buf[100:105]) == b"hello"
            b.buf[9_999] = 42
            assert a.buf[9_999] == 42
        finally:
            b.close()
    finally:
        a.close()
        a.unlink()


def test_generated_names_are_recognisable(backend):
    with backend.SharedMemory(create=True, size=1) as s:
        try:
            assert s.name.startswith("/fastipc-")
            assert len(s.name) <= 31
        finally:
            s.unlink()


def test_repr_fd_fileno_and_closed(backend, names):
    s = backend.SharedMemory(names(), create=True, size=4096)
    try:
        assert s.fd >= 0 and s.fileno() == s.fd
        assert stat.S_ISREG(os.fstat(s.fd).st_mode)
        assert repr(s) == f"<fastipc.SharedMemory {s.name} size=4096 fd={s.fd}>"
        assert not s.closed
    finally:
        s.close()
        s.unlink()
    assert s.closed and s.fd == -1
    assert repr(s) == f"<fastipc.SharedMemory {s.name} size=4096 closed>"
    s.close()  # idempotent
    with pytest.raises(OSError) as info:
        _ = s.buf
    assert info.value.errno == errno.EBADF and info.value.filename == s.name
    with pytest.raises(OSError) as info:
        s.fileno()
    assert info.value.errno == errno.EBADF


@pytest.mark.skipif(not LINUX, reason="the mode is read from /dev/shm")
@pytest.mark.parametrize("mode", [0o600, 0o640, 0o666])
def test_mode_is_exact_and_creation_exclusive(backend, names, mode):
    name = names()
    old = os.umask(0o077)
    try:
        s = backend.SharedMemory(name, create=True, size=1, mode=mode)
    finally:
        os.umask(old)
    try:
        assert stat.S_IMODE(os.stat(shm_path(name)).st_mode) == mode
        with pytest.raises(FileExistsError) as info:
            backend.SharedMemory(name, create=True, size=1)
        assert info.value.errno == errno.EEXIST and info.value.filename == name
    finally:
        s.close()
        s.unlink()


def test_default_mode_is_private(backend):
    s = backend.SharedMemory(create=True, size=1)
    try:
        if LINUX:
            assert stat.S_IMODE(os.stat(shm_path(s.name)).st_mode) == 0o600
    finally:
        s.close()
        s.unlink()


def test_missing_segment(backend, names):
    name = names()
    with pytest.raises(FileNotFoundError) as info:
        backend.SharedMemory(name)
    assert info.value.errno == errno.ENOENT and info.value.filename == name


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"create": True, "size": 0}, "size"),
        ({"create": True, "size": -1}, "size"),
        ({"create": False}, "name"),
        ({"name": "a/b", "create": True, "size": 1}, "slash"),
        ({"name": "", "create": True, "size": 1}, "empty"),
        ({"name": "/", "create": True, "size": 1}, "empty"),
        ({"name": "x" * 300, "create": True, "size": 1}, "longer"),
        ({"create": True, "size": 1, "mode": 0o4777}, "mode"),
    ],
)
def test_bad_arguments(backend, kwargs, message):
    with pytest.raises(ValueError, match=message):
        backend.SharedMemory(**kwargs)


def test_unlink_keeps_mappings_and_twice_is_an_error(backend, names):
    name = names()
    s = backend.SharedMemory(name, create=True, size=64)
    s.unlink()
    s.buf[:3] = b"abc"  # still mapped
    assert bytes(s.buf[:3]) == b"abc"
    with pytest.raises(FileNotFoundError):
        s.unlink()
    with pytest.raises(FileNotFoundError):
        backend.SharedMemory(name)
    s.close()


def test_context_manager_closes_but_does_not_unlink(backend, names):
    name = names()
    with backend.SharedMemory(name, create=True, size=8) as s:
        s.buf[0] = 7
    assert s.closed
    with backend.SharedMemory(name) as again:
        assert again.buf[0] == 7
        again.unlink()


def test_close_with_exported_views_raises_buffererror(backend, names):
    s = backend.SharedMemory(names(), create=True, size=4096)
    try:
        view = s.buf[10:20]
        with pytest.raises(BufferError):
            s.close()
        assert not s.closed
        view[0] = 1  # still valid: nothing was unmapped
        assert s.buf[10] == 1
        view.release()
        # a memoryview of the whole buffer, made by the user
        whole = memoryview(s.buf)
        with pytest.raises(BufferError):
            s.close()
        whole.release()
        s.close()
        assert s.closed
    finally:
        if not s.closed:
            del view
            s.close()
        s.unlink()


@pytest.mark.skipif(np is None, reason="numpy is not installed")
def test_numpy_sees_the_same_memory(backend, names):
    name = names()
    s = backend.SharedMemory(name, create=True, size=8 * 1000)
    other = backend.SharedMemory(name)
    try:
        array = np.ndarray((1000,), dtype=np.float64, buffer=s.buf)
        array[:] = np.arange(1000)
        seen = np.frombuffer(other.buf, dtype=np.float64)
        assert seen[999] == 999.0
        assert seen.sum() == sum(range(1000))
        # frombuffer holds an export of buf: close refuses, as mmap does
        with pytest.raises(BufferError):
            other.close()
        del seen
        other.close()
        # ndarray(buffer=) keeps a reference instead of an export: close succeeds, and the
        # memory stays mapped until the array goes (never a crash)
        s.close()
        array[5] = 55.0
        assert array[:6].tolist() == [0.0, 1.0, 2.0, 3.0, 4.0, 55.0]
        del array
    finally:
        other.close()
        s.close()
    with backend.SharedMemory(name) as again:
        assert np.frombuffer(again.buf, dtype=np.float64)[5] == 55.0
        again.unlink()


def test_pickle_reopens_by_name(backend, names):
    s = backend.SharedMemory(names(), create=True, size=16)
    try:
        s.buf[:4] = b"pick"
        t = pickle.loads(pickle.dumps(s))
        try:
            assert t.name == s.name and bytes(t.buf[:4]) == b"pick"
        finally:
            t.close()
    finally:
        s.close()
        s.unlink()


@pytest.mark.skipif(not LINUX, reason="posix_fallocate reserves the pages on Linux")
def test_a_full_dev_shm_fails_at_creation_not_with_sigbus(backend, names):
    st = os.statvfs("/dev/shm")
    too_big = st.f_bavail * st.f_frsize + (1 << 30)
    name = names()
    with pytest.raises(OSError) as info:
        backend.SharedMemory(name, create=True, size=too_big)
    assert info.value.errno in (errno.ENOSPC, errno.EFBIG, errno.ENOMEM)
    assert not os.path.exists(shm_path(name)), "a failed creation left the name behind"


def test_segment_outlives_its_creator_process(backend, names, spawn):
    """Nothing is tracked behind the user's back: a segment made by a process that exits
    without unlinking it is still there (multiprocessing.shared_memory would unlink it)."""
    name = names()
    child = spawn(
        """
        s = fastipc.SharedMemory(ARGS["name"], create=True, size=32)
        s.buf[:5] = b"alive"
        s.close()
        report(done=True)
        """,
        args={"name": name},
    )
    child.expect("done")
    child.finish()
    s = backend.SharedMemory(name)
    try:
        assert bytes(s.buf[:5]) == b"alive"
    finally:
        s.close()
        s.unlink()


# ---------------------------------------------------------------------------- anonymous


@pytest.mark.skipif(not LINUX, reason="memfd")
def test_anonymous_segment_is_sealed(backend):
    s = backend.SharedMemory.anonymous(8192)
    try:
        assert s.name is None and s.size == 8192
        with pytest.raises(ValueError, match="no name"):
            s.unlink()
        with pytest.raises(PermissionError):
            os.ftruncate(s.fd, 0)  # F_SEAL_SHRINK
        with pytest.raises(PermissionError):
            os.ftruncate(s.fd, 1 << 20)  # F_SEAL_GROW
        with pytest.raises(ValueError, match="anonymous"):
            pickle.dumps(s)
    finally:
        s.close()


@pytest.mark.skipif(not LINUX, reason="memfd")
def test_from_fd_refuses_unsealed_descriptors(backend, names):
    s = backend.SharedMemory(names(), create=True, size=4096)
    try:
        with pytest.raises(ValueError, match="sealed"):
            backend.SharedMemory.from_fd(s.fd)
        t = backend.SharedMemory.from_fd(s.fd, require_sealed=False)
        try:
            assert t.fd != s.fd, "from_fd duplicates the descriptor"
            t.buf[0] = 9
            assert s.buf[0] == 9
        finally:
            t.close()
    finally:
        s.close()
        s.unlink()
    with pytest.raises(OSError) as info:
        backend.SharedMemory.from_fd(1 << 20)
    assert info.value.errno == errno.EBADF


@pytest.mark.skipif(not LINUX, reason="memfd")
def test_anonymous_segment_handed_over_a_socket(backend, spawn, sock_dir):
    s = backend.SharedMemory.anonymous(1 << 20)
    path = os.path.join(sock_dir, "handover")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        server.bind(path)
        server.listen(1)
        s.buf[: 1 << 20] = bytes(range(256)) * 4096
        child = spawn(
            """
            import socket
            c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            c.connect(ARGS["path"])
            _, fds, _, _ = socket.recv_fds(c, 16, 1)
            seg = fastipc.SharedMemory.from_fd(fds[0])
            os.close(fds[0])
            ok = bytes(seg.buf) == bytes(range(256)) * 4096
            seg.buf[:6] = b"peer!!"
            try:
                os.ftruncate(seg.fd, 0)
                shrunk = True
            except PermissionError:
                shrunk = False
            seg.close()
            report(ok=ok, size=seg.size, shrunk=shrunk)
            c.close()
            """,
            args={"path": path},
        )
        conn, _ = server.accept()
        with conn:
            socket.send_fds(conn, [b"x"], [s.fd])
            msg = child.expect("ok")
        child.finish()
        assert msg == {"ok": True, "size": 1 << 20, "shrunk": False}
        assert bytes(s.buf[:6]) == b"peer!!"
    finally:
        server.close()
        os.unlink(path)
        s.close()


# ---------------------------------------------------------------------------- interop


MESSAGE = "written by the other side"


def pattern_after(size: int, start: int) -> bytes:
    return bytes(i % 251 for i in range(start, size))


def test_fastipc_writes_c_reads(backend, names, c_programs):
    """memwriter pattern with fastipc as the writer, C (shm_open, sem_open) as the reader."""
    shm_name, sem_name, size = names(), names(), 65536
    seg = backend.SharedMemory(shm_name, create=True, size=size)
    sem = backend.Semaphore(sem_name, create=True, value=0)
    try:
        reader = subprocess.Popen(
            [c_programs["memreader"], shm_name, sem_name, str(len(MESSAGE)), "10000"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        seg.buf[: len(MESSAGE)] = MESSAGE.encode()
        seg.buf[len(MESSAGE) :] = pattern_after(size, len(MESSAGE))
        sem.release()
        out, err = reader.communicate(timeout=30)
        assert reader.returncode == 0, err.decode()
        assert out == f"{size}\n{MESSAGE}".encode()
    finally:
        sem.close()
        sem.unlink()
        seg.close()
        seg.unlink()


def test_c_writes_fastipc_reads(backend, names, c_programs):
    """memwriter pattern with C as the writer (O_EXCL, 0600), fastipc as the reader."""
    shm_name, sem_name, size = names(), names(), 4096
    proc = subprocess.run(
        [c_programs["memwriter"], shm_name, sem_name, str(size), MESSAGE],
        capture_output=True,
        timeout=30,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr.decode()
    sem = backend.Semaphore(sem_name)
    seg = backend.SharedMemory(shm_name)
    try:
        assert sem.acquire(timeout=10)
        assert seg.size == size
        assert bytes(seg.buf[: len(MESSAGE)]) == MESSAGE.encode()
        assert bytes(seg.buf[len(MESSAGE) :]) == pattern_after(size, len(MESSAGE))
    finally:
        sem.close()
        sem.unlink()
        seg.close()
        seg.unlink()


POSIX_IPC_READER = """
import mmap, sys, posix_ipc
shm_name, sem_name, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
sem = posix_ipc.Semaphore(sem_name)
sem.acquire(10)
shm = posix_ipc.SharedMemory(shm_name)
size = shm.size
m = mmap.mmap(shm.fd, size)
shm.close_fd()
sys.stdout.buffer.write(b"%d\\n" % size + m[:n])
m.close()
sem.close()
"""

POSIX_IPC_WRITER = """
import mmap, sys, posix_ipc
shm_name, sem_name, size, text = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
shm = posix_ipc.SharedMemory(shm_name, posix_ipc.O_CREX, mode=0o600, size=size)
sem = posix_ipc.Semaphore(sem_name, posix_ipc.O_CREX, mode=0o600, initial_value=0)
m = mmap.mmap(shm.fd, shm.size)
shm.close_fd()
m[: len(text)] = text.encode()
m.close()
sem.release()
sem.close()
"""


@needs_posix_ipc
def test_fastipc_writes_posix_ipc_reads(backend, names):
    shm_name, sem_name, size = names(), names(), 8192
    seg = backend.SharedMemory(shm_name, create=True, size=size)
    sem = backend.Semaphore(sem_name, create=True)
    try:
        reader = subprocess.Popen(
            [sys.executable, "-c", POSIX_IPC_READER, shm_name, sem_name, str(len(MESSAGE))],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        seg.buf[: len(MESSAGE)] = MESSAGE.encode()
        sem.release()
        out, err = reader.communicate(timeout=30)
        assert reader.returncode == 0, err.decode()
        assert out == f"{size}\n{MESSAGE}".encode()
    finally:
        sem.close()
        sem.unlink()
        seg.close()
        seg.unlink()


@needs_posix_ipc
def test_posix_ipc_writes_fastipc_reads(backend, names):
    shm_name, sem_name, size = names(), names(), 8192
    proc = subprocess.run(
        [sys.executable, "-c", POSIX_IPC_WRITER, shm_name, sem_name, str(size), MESSAGE],
        capture_output=True,
        timeout=30,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr.decode()
    sem = backend.Semaphore(sem_name)
    seg = backend.SharedMemory(shm_name)
    try:
        assert sem.acquire(timeout=10)
        assert seg.size == size
        assert bytes(seg.buf[: len(MESSAGE)]) == MESSAGE.encode()
    finally:
        sem.close()
        sem.unlink()
        seg.close()
        seg.unlink()


def test_backends_share_segments(both_backends, names):
    rust, python = both_backends
    name = names()
    a = rust.SharedMemory(name, create=True, size=100)
    b = python.SharedMemory(name)
    try:
        a.buf[:4] = b"both"
        assert bytes(b.buf[:4]) == b"both" and b.size == 100
    finally:
        b.close()
        a.close()
        a.unlink()


MP_READER = """
import sys
from multiprocessing import resource_tracker, shared_memory
m = shared_memory.SharedMemory(sys.argv[1].lstrip("/"))
sys.stdout.buffer.write(bytes(m.buf[:2]))
m.close()
# Python 3.11 registers attached segments too: keep its tracker from unlinking ours
resource_tracker.unregister(m._name, "shared_memory")
"""


def test_multiprocessing_shared_memory_opens_fastipc_segments(backend, names):
    name = names()
    s = backend.SharedMemory(name, create=True, size=64)
    try:
        s.buf[:2] = b"mp"
        proc = subprocess.run(
            [sys.executable, "-c", MP_READER, name], capture_output=True, timeout=60, check=False
        )
        assert proc.returncode == 0, proc.stderr.decode()
        assert proc.stdout == b"mp"
        assert os.path.exists(shm_path(name)) or not LINUX
    finally:
        s.close()
        s.unlink()


@pytest.mark.skipif(not LINUX, reason="memfd")
def test_anonymous_segment_over_a_fastipc_connection(backend, spawn):
    """The segment object itself goes in ``fds=`` (it has ``fileno()``); the receiver maps the
    descriptor it gets and owns it. The transport is the Rust backend's Connection."""
    rust = pytest.importorskip("fastipc._fastipc")
    seg = backend.SharedMemory.anonymous(65536)
    listener = rust.listen("127.0.0.1:0")
    try:
        seg.buf[:5] = b"ready"
        child = spawn(
            """
            from fastipc import _fastipc as rust
            conn = rust.connect(ARGS["address"])
            data, fds = conn.recv_bytes_and_fds()
            seg = B.SharedMemory.from_fd(fds[0])
            os.close(fds[0])
            text = bytes(seg.buf[:5]).decode()
            seg.buf[:5] = b"done!"
            seg.close()
            conn.send_bytes(b"ok")
            conn.close()
            report(data=data.decode(), text=text)
            """,
            args={"address": listener.address},
        )
        with listener.accept(timeout=30) as conn:
            conn.send_bytes(b"segment", fds=[seg])
            assert conn.recv_bytes() == b"ok"
        assert child.expect("text") == {"data": "segment", "text": "ready"}
        child.finish()
        assert bytes(seg.buf[:5]) == b"done!"
    finally:
        listener.close()
        seg.close()
