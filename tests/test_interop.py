"""fastipc talks to multiprocessing.connection, to C programs and to the other backend."""

from __future__ import annotations

import errno
import os
import select
import subprocess
import time

import pytest
from _helpers import ECHO_SERVER, pattern
from conftest import SELECTED

SIZES = [0, 1, 64, 65536, 1024 * 1024]

MP_CLIENT = """
from multiprocessing.connection import Client
conn = Client(ARGS["path"], family="AF_UNIX")
report(connected=1)
ok = []
for i, size in enumerate(ARGS["sizes"]):
    data = pattern(size, seed=i)
    conn.send_bytes(data)
    ok.append(conn.recv_bytes() == data[::-1])
conn.send({"obj": [1, 2.5, "three", b"four"]})
ok.append(conn.recv() == ("back", {"obj": [1, 2.5, "three", b"four"]}))
conn.close()
report(ok=ok)
"""


def test_multiprocessing_client_to_fastipc_listener(backend, sock_dir, spawn):
    with backend.listen("127.0.0.1:0", socket_dir=sock_dir) as lst:
        child = spawn(MP_CLIENT, args={"path": lst.path, "sizes": SIZES})
        child.expect("connected")
        with lst.accept(timeout=10) as conn:
            for i, size in enumerate(SIZES):
                data = conn.recv_bytes()
                assert data == pattern(size, seed=i)
                conn.send_bytes(data[::-1])
            obj = conn.recv()
            assert obj == {"obj": [1, 2.5, "three", b"four"]}
            conn.send(("back", obj))
            with pytest.raises(EOFError):
                conn.recv_bytes()
        assert child.expect("ok") == {"ok": [True] * (len(SIZES) + 1)}
        child.finish()


MP_LISTENER = """
from multiprocessing.connection import Listener
with Listener(ARGS["path"], family="AF_UNIX") as lst:
    report(ready=1)
    conn = lst.accept()
    n = 0
    while True:
        try:
            data = conn.recv_bytes()
        except EOFError:
            break
        if data == b"object please":
            conn.send(("an object", 42, None))
            conn.send_bytes(repr(conn.recv()).encode())
        else:
            conn.send_bytes(data[::-1])
        n += 1
    conn.close()
report(n=n)
"""


def test_fastipc_connect_to_multiprocessing_listener(backend, sock_dir, spawn):
    path = f"{sock_dir}/mp.sock"
    child = spawn(MP_LISTENER, args={"path": path})
    child.expect("ready")
    with backend.connect(f"unix:{path}", timeout=10) as conn:
        for i, size in enumerate(SIZES):
            data = pattern(size, seed=i)
            conn.send_bytes(data)
            assert conn.recv_bytes() == data[::-1]
        conn.send_bytes(b"object please")
        assert conn.recv() == ("an object", 42, None)
        conn.send({1: "x"})
        assert conn.recv_bytes() == b"{1: 'x'}"
    assert child.expect("n") == {"n": len(SIZES) + 1}
    child.finish()
    assert os.listdir(sock_dir) == []


def _read_line(proc: subprocess.Popen, timeout: float = 10.0) -> bytes:
    """One line of a child's stdout, with a deadline (no sleeping)."""
    fd = proc.stdout.fileno()
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    line = b""
    deadline = time.monotonic() + timeout
    while not line.endswith(b"\n"):
        left = deadline - time.monotonic()
        if left <= 0 or not poller.poll(left * 1000):
            raise AssertionError(f"no line from {proc.args[0]} within {timeout} s: {line!r}")
        ch = os.read(fd, 1)
        if not ch:
            raise AssertionError(f"{proc.args[0]} closed stdout: {line!r}")
        line += ch
    return line


@pytest.mark.parametrize("via", ["unix-path", "remapped"])
def test_c_server(backend, sock_dir, c_programs, via):
    if via == "remapped":
        path = f"{sock_dir}/127.0.0.1:7500"
        address = "127.0.0.1:7500"
    else:
        path = f"{sock_dir}/c.sock"
        address = f"unix:{path}"
    proc = subprocess.Popen(
        [c_programs["framed_server"], path], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    with proc:
        try:
            assert _read_line(proc) == b"ready\n"
            with backend.connect(address, socket_dir=sock_dir, timeout=10) as conn:
                for i, size in enumerate([*SIZES, 16 * 1024 * 1024]):
                    data = pattern(size, seed=i)
                    conn.send_bytes(data)
                    assert conn.recv_bytes() == data[::-1]
            out, err = proc.communicate(timeout=10)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    assert proc.returncode == 0, err
    assert out == b"frames 6\n"
    assert os.listdir(sock_dir) == []


def test_c_client(backend, sock_dir, c_programs):
    sizes = [*SIZES, 16 * 1024 * 1024]
    with backend.listen("127.0.0.1:0", socket_dir=sock_dir) as lst:
        proc = subprocess.Popen(
            [c_programs["framed_client"], lst.path, *map(str, sizes)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        with proc:
            try:
                with lst.accept(timeout=10) as conn:
                    for i, size in enumerate(sizes):
                        data = conn.recv_bytes()
                        assert data == pattern(size, seed=i)
                        conn.send_bytes(data[::-1])
                    with pytest.raises(EOFError):
                        conn.recv_bytes()
                out, err = proc.communicate(timeout=10)
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.communicate()
        assert proc.returncode == 0, err
        assert out == f"ok {len(sizes)}\n".encode()


@pytest.mark.parametrize("kind", ["stream", "seqpacket"])
def test_cross_backend(backend, backend_name, sock_dir, spawn, kind):
    """The two backends speak the same protocol and honour each other's lock files."""
    peer = "python" if backend_name == "rust" else "rust"
    if peer not in SELECTED:
        pytest.skip(f"the {peer} backend is not selected by FASTIPC_TEST_BACKENDS")
    child = spawn(ECHO_SERVER, backend=peer, args={"address": "127.0.0.1:0", "kind": kind})
    info = child.expect("address")
    with pytest.raises(OSError) as exc:
        backend.listen(info["address"], kind=kind, socket_dir=sock_dir)  # the peer's lock
    assert exc.value.errno == errno.EADDRINUSE
    with backend.connect(info["address"], kind=kind, socket_dir=sock_dir, timeout=10) as conn:
        for i, size in enumerate([0, 1, 64, 65536]):
            data = pattern(size, seed=i)
            conn.send_bytes(data)
            assert conn.recv_bytes() == data
        conn.send({"a": 1})
        assert conn.recv() == {"a": 1}
    assert child.expect("echoed") == {"echoed": 5}
    child.finish()
    assert os.listdir(sock_dir) == []
