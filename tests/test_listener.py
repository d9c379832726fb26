"""listen / connect / accept across processes, Listener and Connection attributes."""

from __future__ import annotations

import errno
import fcntl
import os
import re
import socket
import stat
import time

import fastipc
import pytest
from _helpers import ECHO_CLIENT, ECHO_SERVER
from conftest import assert_oserror

STREAM_KINDS = ["stream", "seqpacket"]


def _cloexec(fd: int) -> bool:
    return bool(fcntl.fcntl(fd, fcntl.F_GETFD) & fcntl.FD_CLOEXEC)


def _port_of(address: str) -> int:
    return int(address.rsplit(":", 1)[1])


@pytest.mark.parametrize("kind", STREAM_KINDS)
def test_listen_port0_remapped(backend, sock_dir, kind):
    lst = backend.listen("127.0.0.1:0", kind=kind, socket_dir=sock_dir)
    try:
        m = re.fullmatch(r"127\.0\.0\.1:(\d+)", lst.address)
        assert m, lst.address
        p = int(m.group(1))
        assert 49152 <= p <= 65535
        assert lst.path == f"{sock_dir}/127.0.0.1:{p}"
        assert lst.kind == kind
        assert lst.closed is False
        assert lst.max_message == backend.DEFAULT_MAX_MESSAGE
        assert sorted(os.listdir(sock_dir)) == [f"127.0.0.1:{p}", f"127.0.0.1:{p}.lock"]
        st_sock = os.lstat(lst.path)
        assert stat.S_ISSOCK(st_sock.st_mode)
        assert stat.S_IMODE(st_sock.st_mode) == 0o600
        st_lock = os.lstat(lst.path + ".lock")
        assert stat.S_ISREG(st_lock.st_mode)
        assert stat.S_IMODE(st_lock.st_mode) == 0o600
        fd = lst.fileno()
        assert fd >= 0
        assert stat.S_ISSOCK(os.fstat(fd).st_mode)
        assert _cloexec(fd)
        want = socket.SOCK_STREAM if kind == "stream" else socket.SOCK_SEQPACKET
        s = socket.socket(fileno=os.dup(fd))
        try:
            assert s.family == socket.AF_UNIX
            assert s.type == want
            assert s.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN) == 1
        finally:
            s.close()
        r = repr(lst)
        assert r.startswith("<fastipc.Listener ") and r.endswith(">"), r
        assert f"fd={fd}" in r, r
        assert str(p) in r, r
    finally:
        lst.close()
    assert lst.closed is True
    assert os.listdir(sock_dir) == []
    lst.close()  # idempotent
    assert lst.closed is True
    with pytest.raises(OSError) as info:
        lst.accept(timeout=0)
    assert_oserror(info.value, errno.EBADF)


def test_port0_listeners_get_distinct_ports(backend, sock_dir):
    listeners = [backend.listen("127.0.0.1:0", socket_dir=sock_dir) for _ in range(20)]
    try:
        addresses = {lst.address for lst in listeners}
        assert len(addresses) == 20
        assert len(os.listdir(sock_dir)) == 40
    finally:
        for lst in listeners:
            lst.close()


@pytest.mark.parametrize(
    ("address", "logical"),
    [
        ("127.0.0.1:5000", "127.0.0.1:5000"),
        (("127.0.0.1", 5001), "127.0.0.1:5001"),
        ("localhost:5002", "127.0.0.1:5002"),
        ("127.3.4.5:5003", "127.3.4.5:5003"),
        ("[::1]:5004", "[::1]:5004"),
    ],
)
def test_listen_explicit_remapped(backend, sock_dir, spawn, address, logical):
    with backend.listen(address, socket_dir=sock_dir) as lst:
        assert lst.address == logical
        assert lst.path == f"{sock_dir}/{logical}"
        child = spawn(ECHO_CLIENT, args={"address": logical})
        assert child.expect("connected") == {"connected": logical, "kind": "stream"}
        with lst.accept(timeout=10) as conn:
            assert conn.address == logical
            conn.send_bytes(b"hello " + logical.encode())
            assert conn.recv_bytes() == b"hello " + logical.encode()
        assert child.expect("echoed") == {"echoed": 1}
        child.finish()


def test_listen_ipv6_port0(backend, sock_dir):
    with backend.listen("[::1]:0", socket_dir=sock_dir) as lst:
        m = re.fullmatch(r"\[::1\]:(\d+)", lst.address)
        assert m, lst.address
        assert 49152 <= int(m.group(1)) <= 65535
        assert lst.path == f"{sock_dir}/{lst.address}"


@pytest.mark.parametrize("kind", STREAM_KINDS)
def test_cross_process_accept(backend, sock_dir, spawn, kind):
    with backend.listen("127.0.0.1:0", kind=kind, socket_dir=sock_dir) as lst:
        child = spawn(ECHO_CLIENT, args={"address": lst.address, "kind": kind})
        assert child.expect("connected") == {"connected": lst.address, "kind": kind}
        conn = lst.accept(timeout=10)
        with conn:
            assert conn.kind == kind
            assert conn.address == lst.address
            assert conn.closed is False
            assert conn.readable is True
            assert conn.writable is True
            assert conn.max_message == backend.DEFAULT_MAX_MESSAGE
            assert _cloexec(conn.fileno())
            r = repr(conn)
            assert r.startswith("<fastipc.Connection ") and r.endswith(">"), r
            assert f"fd={conn.fileno()}" in r, r
            for i in range(5):
                conn.send_bytes(b"m%d" % i)
                assert conn.recv_bytes() == b"m%d" % i
        assert conn.closed is True
        conn.close()
        assert child.expect("echoed") == {"echoed": 5}
        child.finish()


@pytest.mark.parametrize("kind", STREAM_KINDS)
def test_connect_to_child_listener(backend, sock_dir, spawn, kind):
    child = spawn(ECHO_SERVER, args={"address": "127.0.0.1:0", "kind": kind})
    info = child.expect("address")
    assert info["path"] == f"{sock_dir}/{info['address']}"
    with backend.connect(info["address"], kind=kind, socket_dir=sock_dir, timeout=5) as conn:
        assert conn.address == info["address"]
        assert conn.kind == kind
        conn.send_bytes(b"ping")
        assert conn.recv_bytes() == b"ping"
    assert child.expect("echoed") == {"echoed": 1}
    child.finish()


def test_tcp_port0(backend, sock_dir, spawn):
    with backend.listen("tcp:127.0.0.1:0", socket_dir=sock_dir) as lst:
        m = re.fullmatch(r"tcp:127\.0\.0\.1:(\d+)", lst.address)
        assert m, lst.address
        assert int(m.group(1)) > 0
        assert lst.path is None
        s = socket.socket(fileno=os.dup(lst.fileno()))
        try:
            assert s.family == socket.AF_INET
            assert s.getsockname() == ("127.0.0.1", int(m.group(1)))
        finally:
            s.close()
        child = spawn(ECHO_CLIENT, args={"address": lst.address})
        assert child.expect("connected")["connected"] == lst.address
        with lst.accept(timeout=10) as conn:
            assert conn.address == lst.address
            conn.send_bytes(b"x" * 100_000)
            assert conn.recv_bytes() == b"x" * 100_000
        assert child.expect("echoed") == {"echoed": 1}
        child.finish()
    assert os.listdir(sock_dir) == []


def test_seqpacket_over_tcp_not_supported(backend, sock_dir):
    with pytest.raises(fastipc.NotSupportedError):
        backend.listen("tcp:127.0.0.1:0", kind="seqpacket")
    with pytest.raises(fastipc.NotSupportedError):
        backend.connect("tcp:127.0.0.1:1", kind="seqpacket")


def test_bad_kind(backend, sock_dir):
    with pytest.raises(ValueError):
        backend.listen("127.0.0.1:0", kind="bogus")
    assert os.listdir(sock_dir) == []


def test_listen_unix_path(backend, sock_dir, spawn):
    path = f"{sock_dir}/app.sock"
    with backend.listen(f"unix:{path}") as lst:
        assert lst.address == f"unix:{path}"
        assert lst.path == path
        assert stat.S_ISSOCK(os.lstat(path).st_mode)
        child = spawn(ECHO_CLIENT, args={"address": f"unix:{path}"})
        assert child.expect("connected")["connected"] == f"unix:{path}"
        with lst.accept(timeout=10) as conn:
            assert conn.address == f"unix:{path}"
            conn.send_bytes(b"u")
            assert conn.recv_bytes() == b"u"
        child.expect("echoed")
        child.finish()
    assert os.listdir(sock_dir) == []


def test_listen_relative_unix_path(backend, sock_dir, monkeypatch):
    monkeypatch.chdir(sock_dir)
    with backend.listen("unix:rel.sock") as lst:
        assert os.path.realpath(lst.path) == os.path.realpath(f"{sock_dir}/rel.sock")
        with backend.connect("unix:rel.sock", timeout=5) as c, lst.accept(timeout=5) as s:
            c.send_bytes(b"r")
            assert s.recv_bytes() == b"r"
    assert os.listdir(sock_dir) == []


def test_accept_timeout(backend, sock_dir):
    with backend.listen("127.0.0.1:0", socket_dir=sock_dir) as lst:
        t0 = time.monotonic()
        with pytest.raises(TimeoutError) as info:
            lst.accept(timeout=0.1)
        elapsed = time.monotonic() - t0
        assert 0.09 <= elapsed < 2.0
        assert info.value.errno == errno.ETIMEDOUT
        with pytest.raises(TimeoutError):
            lst.accept(timeout=0)
        with pytest.raises(ValueError):
            lst.accept(timeout=-1)


def test_accept_timeout_zero_with_pending(backend, sock_dir):
    with backend.listen("127.0.0.1:0", socket_dir=sock_dir) as lst:
        with backend.connect(lst.address, socket_dir=sock_dir, timeout=5) as c:
            # the connection is queued by the kernel before connect returns
            with lst.accept(timeout=0) as s:
                c.send_bytes(b"q")
                assert s.recv_bytes() == b"q"


def test_context_managers(backend, sock_dir):
    with backend.listen("127.0.0.1:0", socket_dir=sock_dir) as lst:
        assert isinstance(lst, backend.Listener)
        with backend.connect(lst.address, socket_dir=sock_dir, timeout=5) as c:
            assert isinstance(c, backend.Connection)
            with lst.accept(timeout=5) as s:
                pass
            assert s.closed
        assert c.closed
    assert lst.closed
    assert os.listdir(sock_dir) == []
    # an exception inside propagates and the object is closed
    with pytest.raises(KeyError):
        with backend.listen("127.0.0.1:0", socket_dir=sock_dir) as lst2:
            raise KeyError("boom")
    assert lst2.closed
    assert os.listdir(sock_dir) == []


def test_connect_missing_remapped(backend, sock_dir):
    with pytest.raises(FileNotFoundError) as info:
        backend.connect("127.0.0.1:5999", socket_dir=sock_dir)
    assert info.value.errno == errno.ENOENT
    assert info.value.filename == "127.0.0.1:5999"


def test_connect_missing_unix_path(backend, sock_dir):
    path = f"{sock_dir}/nothing.sock"
    with pytest.raises(FileNotFoundError) as info:
        backend.connect(f"unix:{path}")
    assert info.value.filename in (f"unix:{path}", path)


def test_connect_refused_stale_file(backend, sock_dir):
    path = f"{sock_dir}/127.0.0.1:6000"
    raw = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    raw.bind(path)
    raw.close()  # the file stays, nobody listens
    try:
        with pytest.raises(ConnectionRefusedError) as info:
            backend.connect("127.0.0.1:6000", socket_dir=sock_dir)
        assert info.value.errno == errno.ECONNREFUSED
        assert info.value.filename == "127.0.0.1:6000"
    finally:
        os.unlink(path)


def test_connect_refused_tcp(backend, sock_dir):
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    with pytest.raises(ConnectionRefusedError) as info:
        backend.connect(f"tcp:127.0.0.1:{port}", timeout=5)
    assert info.value.filename == f"tcp:127.0.0.1:{port}"


def test_connect_negative_timeout(backend, sock_dir):
    with backend.listen("127.0.0.1:0", socket_dir=sock_dir) as lst:
        with pytest.raises(ValueError):
            backend.connect(lst.address, socket_dir=sock_dir, timeout=-0.5)


def test_many_listeners_and_connections(backend, sock_dir):
    n = 40
    listeners = []
    pairs = []
    try:
        for _ in range(n):
            listeners.append(backend.listen("127.0.0.1:0", socket_dir=sock_dir))
        for lst in listeners:
            c = backend.connect(lst.address, socket_dir=sock_dir, timeout=5)
            pairs.append(c)
            pairs.append(lst.accept(timeout=5))
        for i in range(n):
            c, s = pairs[2 * i], pairs[2 * i + 1]
            c.send_bytes(b"to %d" % i)
        for i in range(n):
            c, s = pairs[2 * i], pairs[2 * i + 1]
            assert s.recv_bytes() == b"to %d" % i
            s.send_bytes(b"from %d" % i)
        for i in range(n):
            assert pairs[2 * i].recv_bytes() == b"from %d" % i
        assert len({p.fileno() for p in pairs} | {lst.fileno() for lst in listeners}) == 3 * n
    finally:
        for p in pairs:
            p.close()
        for lst in listeners:
            lst.close()
    assert os.listdir(sock_dir) == []


def test_closed_connection_operations(backend, sock_dir):
    a, b = backend.socketpair()
    a.close()
    b.close()
    for call in (
        lambda: a.send_bytes(b"x"),
        lambda: a.recv_bytes(),
        lambda: a.poll(0),
        lambda: a.sendall(b"x"),
        lambda: a.recv_exact(1),
        lambda: a.send(1),
        lambda: a.recv(),
        lambda: a.recv_into(bytearray(1)),
        lambda: a.recv_bytes_into(bytearray(1)),
        lambda: a.shutdown(),
    ):
        with pytest.raises(OSError) as info:
            call()
        assert_oserror(info.value, errno.EBADF)
    assert a.closed and b.closed


def test_connect_timeout_zero_to_live_listener(backend, sock_dir):
    with backend.listen("127.0.0.1:0", socket_dir=sock_dir) as lst:
        with backend.connect(lst.address, socket_dir=sock_dir, timeout=0) as c:
            with lst.accept(timeout=5) as s:
                s.send_bytes(b"t0")
                assert c.recv_bytes() == b"t0"


def test_connect_timeout_when_backlog_full(backend, sock_dir):
    with backend.listen("127.0.0.1:0", backlog=1, socket_dir=sock_dir) as lst:
        fillers = []
        try:
            for _ in range(16):  # fill the accept queue with connections nobody accepts
                s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                s.setblocking(False)
                fillers.append(s)
                try:
                    s.connect(lst.path)
                except BlockingIOError:
                    break
            else:
                pytest.fail("the accept queue of a backlog-1 listener never filled")
            t0 = time.monotonic()
            with pytest.raises(TimeoutError) as info:
                backend.connect(lst.address, socket_dir=sock_dir, timeout=0.2)
            assert 0.15 <= time.monotonic() - t0 < 5
            assert info.value.errno == errno.ETIMEDOUT
        finally:
            for s in fillers:
                s.close()


def test_connect_with_tuple_address(backend, sock_dir):
    with backend.listen("127.0.0.1:0", socket_dir=sock_dir) as lst:
        port = _port_of(lst.address)
        with backend.connect(("127.0.0.1", port), socket_dir=sock_dir, timeout=5) as c:
            assert c.address == lst.address
            with lst.accept(timeout=5) as s:
                c.send_bytes(b"tuple")
                assert s.recv_bytes() == b"tuple"
        with backend.connect(f"localhost:{port}", socket_dir=sock_dir, timeout=5) as c:
            assert c.address == lst.address
            lst.accept(timeout=5).close()
