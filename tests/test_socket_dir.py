"""The socket directory rules, locks, stale sockets, unlinking and abstract sockets."""

from __future__ import annotations

import errno
import os
import socket
import stat
import subprocess
import uuid
import warnings

import fastipc
import pytest
from _helpers import ECHO_CLIENT
from conftest import assert_oserror, is_private_mode


def test_created_0700(backend, sock_dir, monkeypatch):
    old = os.umask(0)  # a permissive umask must not make the directory wider
    try:
        new = f"{sock_dir}/fresh"
        with backend.listen("127.0.0.1:0", socket_dir=new) as lst:
            assert is_private_mode(new)
            assert os.lstat(new).st_uid == os.geteuid()
            assert stat.S_IMODE(os.lstat(lst.path).st_mode) == 0o600
            assert stat.S_IMODE(os.lstat(lst.path + ".lock").st_mode) == 0o600
        assert os.listdir(new) == []
    finally:
        os.umask(old)
    os.rmdir(new)


def test_created_by_connect_too(backend, sock_dir):
    new = f"{sock_dir}/fresh2"
    with pytest.raises(FileNotFoundError):
        backend.connect("127.0.0.1:1", socket_dir=new)
    if os.path.exists(new):  # created or not, it must never be anything but private
        assert is_private_mode(new)
        os.rmdir(new)


def test_parent_must_exist(backend, sock_dir):
    with pytest.raises(FileNotFoundError):
        backend.listen("127.0.0.1:0", socket_dir=f"{sock_dir}/no/such")
    assert os.listdir(sock_dir) == []


def _refused(backend, directory: str) -> None:
    for call in (
        lambda: backend.listen("127.0.0.1:0", socket_dir=directory),
        lambda: backend.connect("127.0.0.1:5000", socket_dir=directory),
        lambda: backend.listen("127.0.0.1:0", kind="datagram", socket_dir=directory),
    ):
        with pytest.raises(PermissionError) as info:
            call()
        assert info.value.errno == errno.EPERM
        assert info.value.filename == directory


def test_symlink_refused(backend, sock_dir):
    real = f"{sock_dir}/real"
    link = f"{sock_dir}/link"
    os.mkdir(real, 0o700)
    os.symlink(real, link)
    try:
        _refused(backend, link)
        assert os.listdir(real) == []
    finally:
        os.unlink(link)
        os.rmdir(real)


def test_foreign_owner_refused(backend, sock_dir):
    if os.geteuid() != 0:
        pytest.skip("chown to another user needs root")
    d = f"{sock_dir}/foreign"
    os.mkdir(d, 0o700)
    os.chown(d, 65534, 65534)
    try:
        _refused(backend, d)
        assert os.listdir(d) == []
    finally:
        os.rmdir(d)


@pytest.mark.parametrize("mode", [0o770, 0o707, 0o720, 0o702, 0o1770, 0o777])
def test_group_or_other_writable_refused(backend, sock_dir, mode):
    d = f"{sock_dir}/wide"
    os.mkdir(d)
    os.chmod(d, mode)
    try:
        _refused(backend, d)
        assert os.listdir(d) == []
    finally:
        os.rmdir(d)


@pytest.mark.parametrize("mode", [0o700, 0o750, 0o755, 0o711])
def test_private_enough_accepted(backend, sock_dir, mode):
    d = f"{sock_dir}/ok"
    os.mkdir(d)
    os.chmod(d, mode)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            with backend.listen("127.0.0.1:0", socket_dir=d) as lst:
                assert lst.path.startswith(d + "/")
    finally:
        os.rmdir(d)


def test_not_a_directory(backend, sock_dir):
    f = f"{sock_dir}/file"
    with open(f, "w"):
        pass
    try:
        with pytest.raises(NotADirectoryError):
            backend.listen("127.0.0.1:0", socket_dir=f)
    finally:
        os.unlink(f)


def _sticky_dir(sock_dir: str) -> str:
    d = f"{sock_dir}/shared"
    os.mkdir(d)
    os.chmod(d, 0o1777)
    return d


def test_sticky_world_writable_warns_and_works(backend, sock_dir, spawn):
    d = _sticky_dir(sock_dir)
    try:
        with pytest.warns(fastipc.SharedSocketDirWarning):
            lst = backend.listen("127.0.0.1:0", socket_dir=d)
        with lst:
            assert lst.path == f"{d}/{lst.address}"
            child = spawn(ECHO_CLIENT, args={"address": lst.address}, env={"FASTIPC_SOCKET_DIR": d})
            child.expect("connected")
            with lst.accept(timeout=10) as conn:
                conn.send_bytes(b"shared")
                assert conn.recv_bytes() == b"shared"
            assert child.expect("echoed") == {"echoed": 1}
            child.finish()
        assert os.listdir(d) == []
    finally:
        os.rmdir(d)


def test_sticky_dir_connect_warns(backend, sock_dir):
    """connect() applies the same rules as listen(): the shared directory is named with a
    warning."""
    d = _sticky_dir(sock_dir)
    try:
        with pytest.warns(fastipc.SharedSocketDirWarning):
            lst = backend.listen("127.0.0.1:0", socket_dir=d)
        with lst:
            with pytest.warns(fastipc.SharedSocketDirWarning):
                c = backend.connect(lst.address, socket_dir=d, timeout=5)
            with c, lst.accept(timeout=5) as s:
                c.send_bytes(b"w")
                assert s.recv_bytes() == b"w"
    finally:
        os.rmdir(d)


def test_sticky_dir_from_environment_warns(backend, sock_dir, monkeypatch):
    d = _sticky_dir(sock_dir)
    monkeypatch.setenv("FASTIPC_SOCKET_DIR", d)
    try:
        with pytest.warns(fastipc.SharedSocketDirWarning):
            lst = backend.listen("127.0.0.1:0")
        lst.close()
    finally:
        os.rmdir(d)


def test_sticky_dir_not_explicit_is_refused(backend, sock_dir, monkeypatch, tmp_path):
    """Reached through $XDG_RUNTIME_DIR (not named explicitly) a shared directory is refused."""
    run = f"{sock_dir}/run"
    os.mkdir(run, 0o700)
    d = f"{run}/fastipc"
    os.mkdir(d)
    os.chmod(d, 0o1777)
    monkeypatch.delenv("FASTIPC_SOCKET_DIR")
    monkeypatch.setenv("XDG_RUNTIME_DIR", run)
    try:
        with pytest.raises(PermissionError) as info:
            backend.listen("127.0.0.1:0")
        assert info.value.errno == errno.EPERM
        assert info.value.filename == d
    finally:
        os.rmdir(d)
        os.rmdir(run)


def test_recipe97_c_client(backend, sock_dir, c_programs):
    d = _sticky_dir(sock_dir)
    try:
        with pytest.warns(fastipc.SharedSocketDirWarning):
            lst = backend.listen("127.0.0.1:0", socket_dir=d)
        with lst:
            port = lst.address.rsplit(":", 1)[1]
            proc = subprocess.Popen(
                [c_programs["recipe97_client"], d, "127.0.0.1", port, "hello from C"],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
            with proc:
                with lst.accept(timeout=10) as conn:
                    assert conn.recv_bytes() == b"hello from C"
                    conn.send_bytes(b"hello from fastipc")
                out, err = proc.communicate(timeout=10)
            assert proc.returncode == 0, err
            assert out == b"reply hello from fastipc\n"
        assert os.listdir(d) == []
    finally:
        os.rmdir(d)


STALE_CHILD = """
lst = B.listen(ARGS["address"], kind=ARGS["kind"])
report(address=lst.address, path=lst.path)
wait_parent()
"""


@pytest.mark.parametrize("kind", ["stream", "seqpacket", "datagram"])
def test_stale_socket_recovery(backend, sock_dir, spawn, kind):
    child = spawn(STALE_CHILD, args={"address": "127.0.0.1:7100", "kind": kind})
    info = child.expect("address")
    assert info == {"address": "127.0.0.1:7100", "path": f"{sock_dir}/127.0.0.1:7100"}
    # while the child lives, the address is in use
    with pytest.raises(OSError) as exc:
        backend.listen("127.0.0.1:7100", kind=kind, socket_dir=sock_dir)
    assert_oserror(exc.value, errno.EADDRINUSE)
    assert sorted(os.listdir(sock_dir)) == ["127.0.0.1:7100", "127.0.0.1:7100.lock"]
    child.kill()
    assert child.wait_dead(10) == -9
    # the dead listener's files remain ...
    assert sorted(os.listdir(sock_dir)) == ["127.0.0.1:7100", "127.0.0.1:7100.lock"]
    if kind != "datagram":
        with pytest.raises(ConnectionRefusedError):
            backend.connect("127.0.0.1:7100", kind=kind, socket_dir=sock_dir)
    # ... and listening again on the same address works
    if kind == "datagram":
        with backend.listen("127.0.0.1:7100", kind=kind, socket_dir=sock_dir) as d:
            with backend.connect("127.0.0.1:7100", kind=kind, socket_dir=sock_dir) as c:
                c.send(b"recovered")
                assert d.recvfrom(100) == (b"recovered", c.address)
        assert os.listdir(sock_dir) == []
        return
    with backend.listen("127.0.0.1:7100", kind=kind, socket_dir=sock_dir) as lst:
        with backend.connect("127.0.0.1:7100", kind=kind, socket_dir=sock_dir, timeout=5) as c:
            with lst.accept(timeout=5) as s:
                c.send_bytes(b"recovered")
                assert s.recv_bytes() == b"recovered"
    assert os.listdir(sock_dir) == []


def test_addr_in_use_names_address(backend, sock_dir):
    with backend.listen("127.0.0.1:0", socket_dir=sock_dir) as lst:
        with pytest.raises(OSError) as exc:
            backend.listen(lst.address, socket_dir=sock_dir)
        assert_oserror(exc.value, errno.EADDRINUSE)
        assert exc.value.filename == lst.address
        # the failed attempt did not disturb the first listener's files
        assert sorted(os.listdir(sock_dir)) == [lst.address, lst.address + ".lock"]
        with backend.connect(lst.address, socket_dir=sock_dir, timeout=5) as c:
            with lst.accept(timeout=5) as s:
                c.send_bytes(b"first")
                assert s.recv_bytes() == b"first"


def test_foreign_listener_without_lock_in_use(backend, sock_dir):
    """A program that listens at the path without fastipc's lock is detected by the probe."""
    path = f"{sock_dir}/127.0.0.1:7200"
    raw = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    raw.bind(path)
    raw.listen(4)
    try:
        with pytest.raises(OSError) as exc:
            backend.listen("127.0.0.1:7200", socket_dir=sock_dir)
        assert_oserror(exc.value, errno.EADDRINUSE)
        assert os.path.exists(path)
    finally:
        raw.close()
        os.unlink(path)
    leftover = f"{path}.lock"
    if os.path.exists(leftover):  # the lock file of a failed attempt may stay; it is harmless
        os.unlink(leftover)


def test_stale_file_without_lock_is_replaced(backend, sock_dir):
    path = f"{sock_dir}/127.0.0.1:7300"
    raw = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    raw.bind(path)
    raw.close()
    with backend.listen("127.0.0.1:7300", socket_dir=sock_dir) as lst:
        assert lst.path == path
        with backend.connect(lst.address, socket_dir=sock_dir, timeout=5) as c:
            with lst.accept(timeout=5) as s:
                c.send_bytes(b"x")
                assert s.recv_bytes() == b"x"
    assert os.listdir(sock_dir) == []


def test_close_unlinks_only_own_socket(backend, sock_dir):
    lst = backend.listen("127.0.0.1:0", socket_dir=sock_dir)
    path = lst.path
    assert sorted(os.listdir(sock_dir)) == [lst.address, lst.address + ".lock"]
    # someone replaces the socket file with their own
    os.unlink(path)
    raw = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    raw.bind(path)
    try:
        lst.close()
        assert os.path.exists(path)  # not ours any more: left alone
        assert stat.S_ISSOCK(os.lstat(path).st_mode)
        assert not os.path.exists(path + ".lock")
    finally:
        raw.close()
        os.unlink(path)


def test_close_unlinks_socket_and_lock(backend, sock_dir):
    for kind in ("stream", "seqpacket"):
        lst = backend.listen("127.0.0.1:0", kind=kind, socket_dir=sock_dir)
        assert len(os.listdir(sock_dir)) == 2
        lst.close()
        assert os.listdir(sock_dir) == []
    d = backend.listen("127.0.0.1:0", kind="datagram", socket_dir=sock_dir)
    assert d.path in [f"{sock_dir}/{n}" for n in os.listdir(sock_dir)]
    d.close()
    assert os.listdir(sock_dir) == []
    path = f"{sock_dir}/plain.sock"
    lst = backend.listen(f"unix:{path}")
    assert os.path.exists(path)
    lst.close()
    assert os.listdir(sock_dir) == []


def test_abstract_socket(backend, sock_dir, spawn):
    name = f"fastipc-test-{uuid.uuid4().hex}"
    address = f"unix:@{name}"
    with backend.listen(address) as lst:
        assert lst.address == address
        assert lst.path is None
        assert os.listdir(sock_dir) == []  # never creates files
        with open("/proc/net/unix") as f:
            assert f"@{name}\n" in f.read()
        with pytest.raises(OSError) as exc:
            backend.listen(address)
        assert_oserror(exc.value, errno.EADDRINUSE)
        child = spawn(ECHO_CLIENT, args={"address": address})
        assert child.expect("connected")["connected"] == address
        with lst.accept(timeout=10) as conn:
            assert conn.address == address
            conn.send_bytes(b"abstract")
            assert conn.recv_bytes() == b"abstract"
        assert child.expect("echoed") == {"echoed": 1}
        child.finish()
    with open("/proc/net/unix") as f:
        assert f"@{name}\n" not in f.read()
    with pytest.raises(ConnectionRefusedError):
        backend.connect(address)
    assert os.listdir(sock_dir) == []


CONTENDER = """
import errno
marker = ARGS["marker"]
wins = busy = 0
violations = []
other = []
wait_parent()
for i in range(ARGS["rounds"]):
    try:
        lst = B.listen(ARGS["address"])
    except OSError as e:
        if e.errno == errno.EADDRINUSE:
            busy += 1
            continue
        other.append(repr(e))
        continue
    try:
        fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    except FileExistsError:
        violations.append(i)  # someone else believes it owns the address too
    else:
        os.close(fd)
        os.unlink(marker)
    lst.close()
    wins += 1
report(wins=wins, busy=busy, violations=violations, other=other)
"""


def test_exclusive_ownership_under_contention(backend, sock_dir, spawn, tmp_path):
    """Listeners racing for one address (and closing, which unlinks the lock file) never both
    own it, and fail only with EADDRINUSE."""
    marker = str(tmp_path / "owner")
    rounds = 150
    children = [
        spawn(CONTENDER, args={"address": "127.0.0.1:7600", "marker": marker, "rounds": rounds})
        for _ in range(3)
    ]
    for child in children:
        child.send(go=1)
    results = [child.expect("wins") for child in children]
    for child in children:
        child.finish()
    for r in results:
        assert r["violations"] == [], results
        assert r["other"] == [], results
        assert r["wins"] + r["busy"] == rounds
    assert sum(r["wins"] for r in results) >= rounds
    assert os.listdir(sock_dir) == []
