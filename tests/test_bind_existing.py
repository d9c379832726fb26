"""Binding a Unix path where something already exists: only a stale socket is ever replaced;
anything else is EADDRINUSE and stays as it was, on both backends."""

from __future__ import annotations

import errno
import os
import socket
import stat

import pytest

KINDS = ["stream", "seqpacket", "datagram"]


def _regular(path: str) -> None:
    with open(path, "w") as f:
        f.write("precious data\n")


def _empty(path: str) -> None:
    open(path, "w").close()


def _fifo(path: str) -> None:
    os.mkfifo(path, 0o600)


def _directory(path: str) -> None:
    os.mkdir(path, 0o700)


def _symlink_to_file(path: str) -> None:
    target = path + "-target"
    _regular(target)
    os.symlink(target, path)


MAKERS = {
    "regular": _regular,
    "empty": _empty,
    "fifo": _fifo,
    "directory": _directory,
    "symlink": _symlink_to_file,
}


def _snapshot(directory: str) -> dict[str, tuple[int, int, bytes | None]]:
    """Every entry of ``directory``: its type, inode and (for a regular file) its contents."""
    out = {}
    for name in sorted(os.listdir(directory)):
        path = os.path.join(directory, name)
        st = os.lstat(path)
        data = None
        if stat.S_ISREG(st.st_mode):
            with open(path, "rb") as f:
                data = f.read()
        out[name] = (stat.S_IFMT(st.st_mode), st.st_ino, data)
    return out


def _assert_refused(backend, address, kind, sock_dir, directory):
    before = _snapshot(directory)
    with pytest.raises(OSError) as info:
        backend.listen(address, kind=kind, socket_dir=sock_dir)
    assert info.value.errno == errno.EADDRINUSE
    # Untouched: same entries, same inodes, same contents, no lock file left behind.
    assert _snapshot(directory) == before


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("make", MAKERS.values(), ids=MAKERS.keys())
def test_unix_path_that_is_not_a_socket_is_left_alone(backend, sock_dir, tmp_path, kind, make):
    path = str(tmp_path / "file.txt")
    make(path)
    _assert_refused(backend, f"unix:{path}", kind, sock_dir, str(tmp_path))


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("make", MAKERS.values(), ids=MAKERS.keys())
def test_remapped_path_that_is_not_a_socket_is_left_alone(backend, sock_dir, kind, make):
    path = os.path.join(sock_dir, "127.0.0.1:4999")
    make(path)
    try:
        _assert_refused(backend, "127.0.0.1:4999", kind, sock_dir, sock_dir)
    finally:
        for name in os.listdir(sock_dir):
            entry = os.path.join(sock_dir, name)
            if stat.S_ISDIR(os.lstat(entry).st_mode):
                os.rmdir(entry)
            else:
                os.unlink(entry)


@pytest.mark.parametrize("kind", ["stream", "seqpacket"])
def test_a_stale_socket_is_still_replaced(backend, sock_dir, tmp_path, kind):
    path = str(tmp_path / "stale.sock")
    types = {"stream": socket.SOCK_STREAM, "seqpacket": socket.SOCK_SEQPACKET}
    with socket.socket(socket.AF_UNIX, types[kind]) as dead:
        dead.bind(path)  # closed without unlinking: nothing listens there
    with backend.listen(f"unix:{path}", kind=kind, socket_dir=sock_dir) as lst:
        st = os.lstat(path)
        assert stat.S_ISSOCK(st.st_mode)
        with backend.connect(lst.address, kind=kind, timeout=5) as c, lst.accept(timeout=5) as s:
            c.send_bytes(b"ok")
            assert s.recv_bytes() == b"ok"
    assert not os.path.exists(path)
