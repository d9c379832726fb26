"""Descriptor passing (SCM_RIGHTS) between real processes, on both backends."""

from __future__ import annotations

import errno
import io
import json
import os
import pickle
import socket
import subprocess
import sys

import fastipc
import pytest
from _helpers import pattern
from conftest import assert_oserror

#: Descriptors one message can carry (Linux's SCM_MAX_FD).
MAX_FDS = 253


def _fd_count() -> int:
    return len(os.listdir("/proc/self/fd"))


def _label(fd: int) -> str:
    """What a memfd received from a child was named (``/memfd:<label> (deleted)``)."""
    target = os.readlink(f"/proc/self/fd/{fd}")
    assert target.startswith("/memfd:"), target
    return target[len("/memfd:") :].removesuffix(" (deleted)")


def _close(fds) -> None:
    for fd in fds:
        os.close(fd)


def _accept_child(backend, sock_dir, spawn, script, kind="stream", args=None):
    lst = backend.listen("127.0.0.1:0", kind=kind, socket_dir=sock_dir)
    child = spawn(script, args={"address": lst.address, "kind": kind, **(args or {})})
    child.expect("connected")
    conn = lst.accept(timeout=10)
    return lst, conn, child


# --------------------------------------------------------------------------------------------
# handing over a pipe, a file, a listening socket and a live connection

HANDED_BY_FDS = """
import socket
conn = B.connect(ARGS["address"], timeout=10)
report(connected=True)
data, fds = conn.recv_bytes_and_fds()
pipe_w, file_fd, lsock_fd, conn_fd = fds
report(data=data.decode(), count=len(fds), inheritable=[os.get_inheritable(fd) for fd in fds])
os.write(pipe_w, b"written by the child")
os.close(pipe_w)
os.lseek(file_fd, 0, os.SEEK_SET)
content = os.read(file_fd, 100).decode()
os.close(file_fd)
lsock = socket.socket(fileno=lsock_fd)
peer, _ = lsock.accept()
got = peer.recv(100).decode()
peer.sendall(b"accepted by the child")
peer.close()
lsock.close()
handed = fastipc.fromfd(conn_fd, address="handed")
os.close(conn_fd)
handed.send_bytes(b"over the handed connection")
echo = handed.recv_bytes().decode()
handed.close()
report(content=content, got=got, echo=echo, kind=type(handed).__name__)
conn.close()
"""


def test_hand_over_with_send_bytes(backend, sock_dir, spawn, tmp_path):
    lst, conn, child = _accept_child(backend, sock_dir, spawn, HANDED_BY_FDS)
    r, w = os.pipe()
    path = tmp_path / "f"
    path.write_bytes(b"file content")
    with lst, conn, open(path, "rb") as f:
        listening = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listening.bind(str(tmp_path / "l"))
        listening.listen(1)
        mine, theirs = backend.socketpair()
        with listening, mine, theirs:
            conn.send_bytes(b"four", fds=[w, f, listening, theirs])
            os.close(w)
            assert child.expect("data") == {
                "data": "four",
                "count": 4,
                "inheritable": [False, False, False, False],
            }
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
                client.connect(str(tmp_path / "l"))
                client.sendall(b"to the child's listener")
                assert client.recv(100) == b"accepted by the child"
            assert mine.recv_bytes() == b"over the handed connection"
            mine.send_bytes(b"echo")
            with os.fdopen(r, "rb") as pipe:
                assert pipe.read() == b"written by the child"
            assert child.expect("content") == {
                "content": "file content",
                "got": "to the child's listener",
                "echo": "echo",
                "kind": "Connection",
            }
    child.finish()


HANDED_AS_OBJECTS = """
import io, socket
conn = B.connect(ARGS["address"], timeout=10)
report(connected=True)
obj = conn.recv()
report(
    types={k: type(v).__name__ for k, v in obj.items() if k != "n"},
    n=obj["n"],
    modes=[obj["pipe"].mode, obj["file"].mode, obj["text"].mode],
    encoding=obj["text"].encoding,
    family=[int(obj["listener"].family), int(obj["listener"].type)],
    inheritable=[os.get_inheritable(obj[k].fileno()) for k in ("pipe", "file", "listener", "conn")],
)
obj["pipe"].write(b"written by the child")
obj["pipe"].close()
content = obj["file"].read().decode()
text = obj["text"].read()
peer, _ = obj["listener"].accept()
got = peer.recv(100).decode()
peer.sendall(b"accepted by the child")
peer.close()
obj["conn"].send_bytes(b"over the handed connection")
echo = obj["conn"].recv_bytes().decode()
for k in ("file", "text", "listener", "conn"):
    obj[k].close()
report(content=content, text=text, got=got, echo=echo)
conn.close()
"""


def test_hand_over_with_send_obj(backend, sock_dir, spawn, tmp_path):
    lst, conn, child = _accept_child(backend, sock_dir, spawn, HANDED_AS_OBJECTS)
    r, w = os.pipe()
    (tmp_path / "f").write_bytes(b"file content")
    (tmp_path / "t").write_text("text content é", encoding="utf-8")
    with (
        lst,
        conn,
        os.fdopen(w, "wb", buffering=0) as pipe_w,
        open(tmp_path / "f", "rb") as f,
        open(tmp_path / "t", encoding="utf-8") as t,
    ):
        listening = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listening.bind(str(tmp_path / "l"))
        listening.listen(1)
        mine, theirs = backend.socketpair()
        with listening, mine, theirs:
            conn.send(
                {
                    "pipe": pipe_w,
                    "file": f,
                    "text": t,
                    "listener": listening,
                    "conn": theirs,
                    "n": 7,
                }
            )
            assert child.expect("types") == {
                "types": {
                    "pipe": "FileIO",
                    "file": "BufferedReader",
                    "text": "TextIOWrapper",
                    "listener": "socket",
                    "conn": "Connection",
                },
                "n": 7,
                "modes": ["wb", "rb", "r"],
                "encoding": "utf-8",
                "family": [int(socket.AF_UNIX), int(socket.SOCK_STREAM)],
                "inheritable": [False, False, False, False],
            }
            pipe_w.close()
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
                client.connect(str(tmp_path / "l"))
                client.sendall(b"to the child's listener")
                assert client.recv(100) == b"accepted by the child"
            assert mine.recv_bytes() == b"over the handed connection"
            mine.send_bytes(b"echo")
            with os.fdopen(r, "rb") as pipe:
                assert pipe.read() == b"written by the child"
            assert child.expect("content") == {
                "content": "file content",
                "text": "text content é",
                "got": "to the child's listener",
                "echo": "echo",
            }
    child.finish()


# --------------------------------------------------------------------------------------------
# limits

MANY_FDS = """
conn = B.connect(ARGS["address"], timeout=10)
report(connected=True)
data, fds = conn.recv_bytes_and_fds()
report(data=data.decode(), count=len(fds), distinct=len(set(fds)),
       inheritable=sorted({os.get_inheritable(fd) for fd in fds}))
for fd in fds:
    os.write(fd, b"x")
    os.close(fd)
conn.close()
"""


def test_253_descriptors_in_one_message(backend, sock_dir, spawn):
    assert backend.SCM_MAX_FD == MAX_FDS
    assert fastipc.SCM_MAX_FD == MAX_FDS
    lst, conn, child = _accept_child(backend, sock_dir, spawn, MANY_FDS)
    r, w = os.pipe()
    with lst, conn, os.fdopen(r, "rb") as pipe:
        conn.send_bytes(b"many", fds=[w] * MAX_FDS)
        os.close(w)
        assert child.expect("data") == {
            "data": "many",
            "count": MAX_FDS,
            "distinct": MAX_FDS,
            "inheritable": [False],
        }
        assert pipe.read() == b"x" * MAX_FDS
    child.finish()


def test_more_than_scm_max_fd_is_refused_before_sending(backend):
    r, w = os.pipe()
    a, b = backend.socketpair()
    try:
        with pytest.raises(ValueError, match="253"):
            a.send_bytes(b"too many", fds=[w] * (MAX_FDS + 1))
        with pytest.raises(ValueError, match="253"):
            a.send_fds(b"too many", [w] * (MAX_FDS + 1))
        assert not b.poll(0)
        a.send_bytes(b"next")
        assert b.recv_bytes_and_fds() == (b"next", [])
    finally:
        a.close()
        b.close()
        os.close(r)
        os.close(w)


def test_stream_descriptors_need_a_byte(backend):
    r, w = os.pipe()
    a, b = backend.socketpair()
    with a, b:
        with pytest.raises(ValueError):
            a.send_fds(b"", [r])
        assert not b.poll(0)
    os.close(r)
    os.close(w)


def test_bad_descriptor_arguments(backend):
    a, b = backend.socketpair()
    with a, b:
        r, w = os.pipe()
        os.close(r)
        os.close(w)
        with pytest.raises(OSError) as info:
            a.send_bytes(b"x", fds=[r])
        assert_oserror(info.value, errno.EBADF)
        with pytest.raises(ValueError):
            a.send_bytes(b"x", fds=[-1])
        with pytest.raises(TypeError):
            a.send_bytes(b"x", fds=["0"])
        assert not b.poll(0)


SENDS_FOUR = """
conn = B.connect(ARGS["address"], kind=ARGS["kind"], timeout=10)
report(connected=True)
fds = [os.memfd_create(f"m{i}") for i in range(4)]
conn.send_bytes(b"four", fds=fds)
conn.send_fds(b"raw", fds[:3])
conn.send_bytes(b"after", fds=fds[:1])
for fd in fds:
    os.close(fd)
report(sent=True)
wait_parent()
conn.close()
"""


@pytest.mark.parametrize("kind", ["stream", "seqpacket"])
def test_more_than_maxfds_closes_all(backend, sock_dir, spawn, kind):
    lst, conn, child = _accept_child(backend, sock_dir, spawn, SENDS_FOUR, kind=kind)
    with lst, conn:
        child.expect("sent")
        before = _fd_count()
        with pytest.raises(OSError) as info:
            conn.recv_bytes_and_fds(maxfds=2)
        assert_oserror(info.value, errno.EMSGSIZE)
        assert info.value.strerror.startswith("control message truncated")
        assert info.value.filename == f"{conn.address}: 4 descriptors, maxfds=2"
        assert _fd_count() == before
        if kind == "stream":
            # The raw bytes after the frame: 3 descriptors, 1 allowed.
            with pytest.raises(OSError) as info:
                conn.recv_fds(3, 1)
            assert_oserror(info.value, errno.EMSGSIZE)
            assert info.value.filename == conn.address
        else:
            with pytest.raises(OSError) as info:
                conn.recv_fds(100, 1)
            assert_oserror(info.value, errno.EMSGSIZE)
        assert _fd_count() == before
        data, fds = conn.recv_bytes_and_fds(maxfds=1)
        assert data == b"after"
        assert [_label(fd) for fd in fds] == ["m0"]
        _close(fds)
        assert _fd_count() == before
        child.send(done=True)
    child.finish()


CTRUNC_RECEIVER = """
import errno, resource
conn = B.connect(ARGS["address"], kind=ARGS["kind"], timeout=10)
report(connected=True)
wait_parent()
count = len(os.listdir("/proc/self/fd"))
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
top = max(int(n) for n in os.listdir("/proc/self/fd"))
# Room for a few more descriptors, not ten: the kernel installs what fits and truncates the
# control message.
resource.setrlimit(resource.RLIMIT_NOFILE, (top + 4, hard))
try:
    conn.recv_bytes_and_fds()
except OSError as e:
    result = [e.errno, e.strerror.startswith("control message truncated")]
else:
    result = None
after = len(os.listdir("/proc/self/fd"))
resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
data, fds = conn.recv_bytes_and_fds()
report(result=result, leaked=after - count, next=data[:4].decode(), size=len(data), fds=len(fds))
if ARGS["kind"] == "stream":
    data, fds = conn.recv_bytes_and_fds()
    report(last=data.decode(), fds=len(fds))
conn.close()
"""


@pytest.mark.parametrize("size", [3, 100 * 1024])
@pytest.mark.parametrize("kind", ["stream", "seqpacket"])
def test_kernel_truncated_control_message(backend, sock_dir, spawn, kind, size):
    lst, conn, child = _accept_child(backend, sock_dir, spawn, CTRUNC_RECEIVER, kind=kind)
    r, w = os.pipe()
    ten = (b"ten" * size)[:size]
    try:
        with lst, conn:
            conn.send_bytes(ten, fds=[w] * 10)
            conn.send_bytes(b"next", fds=[r])
            child.send(go=True)
            got = child.expect("result")
            assert got.pop("result") == [errno.EMSGSIZE, True]
            assert got.pop("leaked") == 0
            if kind == "seqpacket":
                # The packet went with its descriptors.
                assert got == {"next": "next", "size": 4, "fds": 1}
            else:
                # A stream keeps its bytes (it must stay in step): the message comes again,
                # whole, without the descriptors the kernel could not deliver.
                assert got == {"next": ten[:4].decode(), "size": size, "fds": 0}
                assert child.expect("last") == {"last": "next", "fds": 1}
    finally:
        os.close(r)
        os.close(w)
    child.finish()


# --------------------------------------------------------------------------------------------
# descriptors stay with their message

#: (payload size, labels of the descriptors sent with it)
QUEUE = [
    (10, []),
    (64, ["a"]),
    (100 * 1024, ["b1", "b2"]),
    (0, ["c"]),
    (5, []),
    (70 * 1024, []),
    (64 * 1024, ["d1", "d2", "d3"]),
    (1, ["e"]),
    (200 * 1024, ["f"]),
    (3, []),
]

SENDS_QUEUE = """
import socket
conn = B.connect(ARGS["address"], kind=ARGS["kind"], timeout=10)
raw = socket.socket(fileno=os.dup(conn.fileno()))
raw.setsockopt(socket.SOL_SOCKET, 32, 16 << 20)  # SO_SNDBUFFORCE
raw.close()
report(connected=True)
for i, (size, labels) in enumerate(ARGS["queue"]):
    fds = [os.memfd_create(label) for label in labels]
    conn.send_bytes(pattern(size, i), fds=fds)
    for fd in fds:
        os.close(fd)
report(sent=True)
wait_parent()
conn.close()
"""


@pytest.mark.parametrize("kind", ["stream", "seqpacket"])
def test_descriptors_stay_with_their_message(backend, sock_dir, spawn, kind):
    lst = backend.listen("127.0.0.1:0", kind=kind, socket_dir=sock_dir)
    with lst:
        child = spawn(SENDS_QUEUE, args={"address": lst.address, "kind": kind, "queue": QUEUE})
        child.expect("connected")
        with lst.accept(timeout=10) as conn:
            child.expect("sent")  # everything is queued before the first read
            for i, (size, labels) in enumerate(QUEUE):
                data, fds = conn.recv_bytes_and_fds()
                assert data == pattern(size, i), i
                assert [_label(fd) for fd in fds] == labels, i
                assert [os.get_inheritable(fd) for fd in fds] == [False] * len(labels)
                _close(fds)
            child.send(done=True)
    child.finish()


@pytest.mark.parametrize("kind", ["stream", "seqpacket"])
def test_plain_receives_close_descriptors(backend, sock_dir, spawn, kind):
    lst = backend.listen("127.0.0.1:0", kind=kind, socket_dir=sock_dir)
    with lst:
        child = spawn(SENDS_QUEUE, args={"address": lst.address, "kind": kind, "queue": QUEUE})
        child.expect("connected")
        with lst.accept(timeout=10) as conn:
            child.expect("sent")
            before = _fd_count()
            buf = bytearray(256 * 1024)
            for i, (size, _) in enumerate(QUEUE):
                if i % 2:
                    assert conn.recv_bytes() == pattern(size, i)
                else:
                    assert conn.recv_bytes_into(buf) == size
                    assert buf[:size] == pattern(size, i)
                # Read ahead may hold the next message's descriptors, never this one's.
                ahead = len(QUEUE[i + 1][1]) if i + 1 < len(QUEUE) else 0
                assert _fd_count() - before in {0, ahead}, i
            assert _fd_count() == before
            child.send(done=True)
    child.finish()


def test_plain_recv_of_an_object_closes_descriptors(backend):
    a, b = backend.socketpair()
    r, w = os.pipe()
    with a, b:
        before = _fd_count()
        a.send_bytes(pickle.dumps({"plain": 1}), fds=[r, w])
        assert b.recv() == {"plain": 1}
        assert _fd_count() == before
    os.close(r)
    os.close(w)


def test_handed_connection_keeps_working_after_sender_closes(backend):
    a, b = backend.socketpair()
    x, y = backend.socketpair()
    with a, b, x:
        a.send(y)
        y.close()
        got = b.recv()
        assert type(got) is fastipc.Connection  # rebuilt by the facade's fromfd
        with got:
            got.send_bytes(b"still there")
            assert x.recv_bytes() == b"still there"


# --------------------------------------------------------------------------------------------
# interoperability with the standard library

STDLIB_PEER = """
import socket
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.connect(ARGS["path"])
report(connected=True)
fd = os.memfd_create("from-stdlib")
socket.send_fds(s, [b"stdlib bytes"], [fd])
os.close(fd)
data, fds, flags, _ = socket.recv_fds(s, 100, 4)
labels = [os.readlink(f"/proc/self/fd/{x}") for x in fds]
report(data=data.hex(), labels=labels)
for x in fds:
    os.close(x)
data, fds, flags, _ = socket.recv_fds(s, 100, 4)
labels = [os.readlink(f"/proc/self/fd/{x}") for x in fds]
report(data=data.hex(), labels=labels)
for x in fds:
    os.close(x)
s.close()
"""


def test_interop_with_stdlib_send_fds_recv_fds(backend, spawn, tmp_path):
    path = str(tmp_path / "interop")
    lst = backend.listen(f"unix:{path}")
    child = spawn(STDLIB_PEER, args={"path": path})
    child.expect("connected")
    with lst, lst.accept(timeout=10) as conn:
        data, fds = conn.recv_fds(100, 4)
        assert data == b"stdlib bytes"
        assert [_label(fd) for fd in fds] == ["from-stdlib"]
        assert os.get_inheritable(fds[0]) is False
        _close(fds)
        mine = os.memfd_create("from-fastipc")
        try:
            assert conn.send_fds(b"raw", [mine]) == 3
            assert child.expect("data") == {
                "data": b"raw".hex(),
                "labels": ["/memfd:from-fastipc (deleted)"],
            }
            conn.send_bytes(b"framed", fds=[mine])
            assert child.expect("data") == {
                "data": (b"\x00\x00\x00\x06framed").hex(),
                "labels": ["/memfd:from-fastipc (deleted)"],
            }
        finally:
            os.close(mine)
    child.finish()


def test_interop_socketpair_in_process(backend):
    a, b = backend.socketpair()
    mine = os.memfd_create("pair")
    with a, b:
        raw = socket.socket(fileno=os.dup(b.fileno()))
        with raw:
            a.send_fds(b"x", [mine])
            data, fds, _, _ = socket.recv_fds(raw, 10, 2)
            assert data == b"x"
            assert [_label(fd) for fd in fds] == ["pair"]
            _close(fds)
            socket.send_fds(raw, [b"\x00\x00\x00\x02hi"], [mine, mine])
            data, fds = a.recv_bytes_and_fds()
            assert data == b"hi"
            assert [_label(fd) for fd in fds] == ["pair", "pair"]
            assert [os.get_inheritable(fd) for fd in fds] == [False, False]
            _close(fds)
    os.close(mine)


# --------------------------------------------------------------------------------------------
# datagrams

DGRAM_SENDER = """
s = B.connect(ARGS["address"], kind="datagram")
fd = os.memfd_create("dgram")
s.send(b"one", fds=[fd])
s.send_fds(b"two", [fd, fd])
s.send(b"three", fds=[fd])
os.close(fd)
s.close()
report(sent=True)
"""


def test_datagram_descriptors(backend, sock_dir, spawn):
    with backend.listen("127.0.0.1:0", kind="datagram", socket_dir=sock_dir) as server:
        child = spawn(DGRAM_SENDER, args={"address": server.address})
        child.expect("sent")
        data, fds, sender = server.recv_fds(100, 4, timeout=10)
        assert data == b"one"
        assert sender is not None and sender.startswith("127.0.0.1:")
        assert [_label(fd) for fd in fds] == ["dgram"]
        assert os.get_inheritable(fds[0]) is False
        _close(fds)
        before = _fd_count()
        with pytest.raises(OSError) as info:
            server.recv_fds(100, 1, timeout=10)
        assert_oserror(info.value, errno.EMSGSIZE)
        assert _fd_count() == before
        assert server.recvfrom(100) == (b"three", sender)
        assert _fd_count() == before
    child.finish()


# --------------------------------------------------------------------------------------------
# TCP and UDP carry no descriptors


def test_tcp_and_udp_refuse_descriptors(backend):
    r, w = os.pipe()
    try:
        with backend.listen("tcp:127.0.0.1:0") as lst:
            with backend.connect(lst.address, timeout=5) as client, lst.accept(timeout=5) as conn:
                with pytest.raises(fastipc.NotSupportedError):
                    client.send_bytes(b"x", fds=[r])
                with pytest.raises(fastipc.NotSupportedError):
                    client.send_fds(b"x", [r])
                with pytest.raises(fastipc.NotSupportedError):
                    conn.peer_credentials()
                with pytest.raises(fastipc.NotSupportedError):
                    conn.peer_pidfd()
                assert not conn.poll(0)
                client.send_bytes(b"plain", fds=[])
                assert conn.recv_bytes_and_fds() == (b"plain", [])
        with pytest.raises(fastipc.NotSupportedError):
            backend.listen("tcp:127.0.0.1:0", allow_uids=[os.getuid()])
        with backend.listen("udp:127.0.0.1:0", kind="datagram") as u:
            with pytest.raises(fastipc.NotSupportedError):
                u.sendto(b"x", u.address, fds=[r])
            with pytest.raises(fastipc.NotSupportedError):
                u.sendto(b"x", u.address, credentials=True)
    finally:
        os.close(r)
        os.close(w)


# --------------------------------------------------------------------------------------------
# fromfd


def test_fromfd_duplicates(backend):
    a, b = backend.socketpair("seqpacket")
    with a, b:
        c = backend.fromfd(b.fileno(), address="dup")
        with c:
            assert type(c) is type(a)
            assert c.kind == "seqpacket"
            assert c.address == "dup"
            assert c.fileno() != b.fileno()
            assert os.get_inheritable(c.fileno()) is False
            a.send_bytes(b"to the duplicate")
            assert c.recv_bytes() == b"to the duplicate"
        b.send_bytes(b"original still open")
        assert a.recv_bytes() == b"original still open"
    x, y = backend.socketpair("datagram")
    with x, y:
        d = backend.fromfd(y)
        with d:
            assert d.kind == "datagram"
            x.send(b"dgram")
            assert d.recv(10) == b"dgram"
    r, w = os.pipe()
    try:
        with pytest.raises(OSError) as info:
            backend.fromfd(r)
        assert_oserror(info.value, errno.ENOTSOCK)
        assert info.value.filename == f"fd:{r}"
        with pytest.raises(OSError) as info:
            backend.fromfd(r, kind="stream")
        assert_oserror(info.value, errno.ENOTSOCK)
        assert info.value.filename == f"fd:{r}"
    finally:
        os.close(r)
        os.close(w)


def test_fromfd_kind_is_the_kind_the_socket_must_be(backend):
    a, b = backend.socketpair("stream")
    p, q = backend.socketpair("seqpacket")
    x, y = backend.socketpair("datagram")
    with a, b, p, q, x, y:
        with backend.fromfd(b, kind="stream") as c:
            assert type(c) is type(a)
            assert c.kind == "stream"
            a.send_bytes(b"stream")
            assert c.recv_bytes() == b"stream"
        with backend.fromfd(q.fileno(), kind="seqpacket", address="sp") as c:
            assert (type(c), c.kind, c.address) == (type(p), "seqpacket", "sp")
            p.send_bytes(b"packet")
            assert c.recv_bytes() == b"packet"
        with backend.fromfd(y, kind="datagram") as d:
            assert type(d) is type(x)
            assert d.kind == "datagram"
            x.send(b"dgram")
            assert d.recv(10) == b"dgram"
        refused = [(b, "datagram", "stream"), (b, "seqpacket", "stream")]
        refused += [(q, "stream", "seqpacket"), (y, "stream", "datagram")]
        for sock, kind, actual in refused:
            with pytest.raises(ValueError) as info:
                backend.fromfd(sock, kind=kind)
            assert str(info.value) == f"fd:{sock.fileno()}: a {actual} socket, not {kind}"
        with pytest.raises(ValueError) as info:
            backend.fromfd(b, kind="raw")
        assert str(info.value).startswith("kind must be 'stream', 'seqpacket' or 'datagram'")
        # the sockets refused are still whole
        b.send_bytes(b"still")
        assert a.recv_bytes() == b"still"


def test_fromfd_refused_for_its_kind_leaves_the_socket_as_it_was(backend):
    s1, s2 = socket.socketpair()
    with s1, s2:
        s2.setblocking(False)
        with pytest.raises(ValueError):
            backend.fromfd(s2, kind="datagram")
        assert os.get_blocking(s2.fileno()) is False
        with backend.fromfd(s2, kind="stream") as c:  # adopting makes it blocking
            assert c.kind == "stream"
        assert os.get_blocking(s2.fileno()) is True


LIST_FDS = """
import json, os
held = []
for n in os.listdir("/proc/self/fd"):
    try:
        held.append(os.readlink(f"/proc/self/fd/{n}"))
    except OSError:
        pass
print(json.dumps(held))
"""


def test_received_descriptor_is_not_inherited_by_exec(backend):
    a, b = backend.socketpair()
    r, w = os.pipe()
    pipe = os.readlink(f"/proc/self/fd/{w}")
    with a, b:
        a.send_bytes(b"x", fds=[w])
        os.close(w)
        _, fds = b.recv_bytes_and_fds()
        assert os.get_inheritable(fds[0]) is False
        assert os.readlink(f"/proc/self/fd/{fds[0]}") == pipe
        # A program exec'd with every inheritable descriptor kept does not get it.
        shown = subprocess.run(
            [sys.executable, "-c", LIST_FDS], close_fds=False, capture_output=True, check=True
        )
        held = json.loads(shown.stdout)
        assert pipe not in held
        os.close(fds[0])
    os.close(r)


def test_objects_round_trip_in_process(backend, tmp_path):
    a, b = backend.socketpair()
    (tmp_path / "f").write_bytes(b"abc")
    with a, b, open(tmp_path / "f", "rb") as f:
        a.send([f, io.BytesIO(b"plain"), 3])
        got = b.recv()
        assert isinstance(got, list)
        g, plain, n = got
        with g:
            assert type(g) is io.BufferedReader
            assert g.read() == b"abc"
        assert plain.getvalue() == b"plain"
        assert n == 3


def test_descriptors_never_reach_another_connection(backend):
    a, b = backend.socketpair()
    c, d = backend.socketpair()
    mine = os.memfd_create("only-for-b")
    with a, b, c, d:
        for _ in range(2):
            a.sendall(b"raw")
            assert b.recv_exact(3) == b"raw"
            a.send_bytes(b"framed", fds=[mine])
            data, fds = b.recv_bytes_and_fds()
            assert (data, [_label(fd) for fd in fds]) == (b"framed", ["only-for-b"])
            _close(fds)
            c.send_bytes(b"plain")
            assert d.recv_bytes_and_fds() == (b"plain", [])
            c.sendall(b"r")
            assert d.recv_fds(1, 0) == (b"r", [])
    os.close(mine)


# --------------------------------------------------------------------------------------------
# handing over the shared-memory Queue and a Channel end (their descriptors travel)

HANDED_SHM = """
conn = B.connect(ARGS["address"], timeout=10)
report(connected=True)
jobs, end = conn.recv()
items = [jobs.get(timeout=10) for _ in range(3)]
end.send(("got", items))
jobs.task_done(); jobs.task_done(); jobs.task_done()
jobs.close()
end.close()
conn.close()
report(done=True)
"""


def test_hand_over_a_queue_and_a_channel_end(backend, sock_dir, spawn):
    """``send`` of an anonymous Queue and of a channel end passes their descriptors (the
    memfd, the liveness pipes): the other process uses the same queue and channel."""
    lst, conn, child = _accept_child(backend, sock_dir, spawn, HANDED_SHM)
    jobs = backend.JoinableQueue()
    mine, theirs = backend.channel()
    with lst, conn, jobs, mine:
        for item in ("a", {"b": 2}, b"c" * 100_000):
            jobs.put(item)
        conn.send((jobs, theirs))
        theirs.close()  # the child's copy is now the only other end
        mine.settimeout(10)
        assert mine.recv() == ("got", ["a", {"b": 2}, b"c" * 100_000])
        assert jobs.join(timeout=10) is True
        assert child.expect("done") == {"done": True}
        with pytest.raises(EOFError):
            mine.recv()
    child.finish()
