"""Datagram sockets: listen/connect(kind="datagram"), sendto/recvfrom and logical senders."""

from __future__ import annotations

import errno
import os
import re
import socket
import stat
import time
import uuid

import fastipc
import pytest
from _helpers import pattern
from conftest import assert_oserror

DGRAM_SERVER = """
sock = B.listen(ARGS["address"], kind="datagram")
report(address=sock.address, path=sock.path, kind=sock.kind)
while True:
    data, sender = sock.recvfrom(65536)
    if data == b"quit":
        break
    report(got=data.hex(), sender=sender)
    if sender is not None:
        sock.sendto(b"re:" + data, sender)
sock.close()
report(done=1)
"""


def test_datagram_listen_port0(backend, sock_dir):
    with backend.listen("127.0.0.1:0", kind="datagram", socket_dir=sock_dir) as sock:
        assert isinstance(sock, backend.DatagramSocket)
        m = re.fullmatch(r"127\.0\.0\.1:(\d+)", sock.address)
        assert m, sock.address
        assert 49152 <= int(m.group(1)) <= 65535
        assert sock.path == f"{sock_dir}/{sock.address}"
        assert sock.kind == "datagram"
        assert sock.peer is None
        assert sock.closed is False
        assert stat.S_ISSOCK(os.lstat(sock.path).st_mode)
        raw = socket.socket(fileno=os.dup(sock.fileno()))
        with raw:
            assert raw.type == socket.SOCK_DGRAM
            assert raw.family == socket.AF_UNIX
        r = repr(sock)
        assert r.startswith("<fastipc.DatagramSocket ") and f"fd={sock.fileno()}" in r, r
    assert sock.closed
    sock.close()
    assert os.listdir(sock_dir) == []
    with pytest.raises(OSError) as info:
        sock.sendto(b"x", "127.0.0.1:1")
    assert_oserror(info.value, errno.EBADF)


def test_datagram_connect_and_replies_across_processes(backend, sock_dir, spawn):
    child = spawn(DGRAM_SERVER, args={"address": "127.0.0.1:0"})
    info = child.expect("address")
    assert info["kind"] == "datagram"
    with backend.connect(info["address"], kind="datagram", socket_dir=sock_dir) as c:
        assert isinstance(c, backend.DatagramSocket)
        assert c.peer == info["address"]
        m = re.fullmatch(r"127\.0\.0\.1:(\d+)", c.address or "")
        assert m, c.address  # a remapped client gets its own name so that replies reach it
        assert c.path == f"{sock_dir}/{c.address}"
        for size in (0, 1, 64, 4096, 60_000):
            data = pattern(size, seed=size % 250)
            assert c.send(data) == size
            got = child.expect("got")
            assert got == {"got": data.hex(), "sender": c.address}
            assert c.recv(65536) == b"re:" + data
        assert c.send(b"quit") == 4
    child.expect("done")
    child.finish()
    assert os.listdir(sock_dir) == []


def test_datagram_sendto_recvfrom_in_child(backend, sock_dir, spawn):
    script = """
me = B.listen("127.0.0.1:0", kind="datagram")
report(address=me.address)
data, sender = me.recvfrom(100)
me.sendto(data.upper(), sender)
data2, sender2 = me.recvfrom(4)  # the rest of a longer datagram is discarded
report(second=data2.decode(), sender=sender2)
me.close()
"""
    child = spawn(script)
    peer = child.expect("address")["address"]
    with backend.listen("127.0.0.1:0", kind="datagram", socket_dir=sock_dir) as me:
        assert me.sendto(b"hello", peer) == 5
        data, sender = me.recvfrom(100)
        assert (data, sender) == (b"HELLO", peer)
        assert me.sendto(b"abcdefgh", ("127.0.0.1", int(peer.rsplit(":", 1)[1]))) == 8
        assert child.expect("second") == {"second": "abcd", "sender": me.address}
    child.finish()


def test_datagram_sender_kinds(backend, sock_dir):
    with backend.listen("127.0.0.1:0", kind="datagram", socket_dir=sock_dir) as server:
        # a unix: path elsewhere
        other = f"{sock_dir}/sub"
        os.mkdir(other, 0o700)
        try:
            with backend.listen(f"unix:{other}/d.sock", kind="datagram") as a:
                assert a.address == f"unix:{other}/d.sock"
                a.sendto(b"1", server.address)
                assert server.recvfrom(10) == (b"1", f"unix:{other}/d.sock")
                server.sendto(b"r1", f"unix:{other}/d.sock")
                assert a.recvfrom(10) == (b"r1", server.address)
        finally:
            os.rmdir(other)
        # an abstract name
        name = f"fastipc-test-{uuid.uuid4().hex}"
        with backend.listen(f"unix:@{name}", kind="datagram") as ab:
            assert ab.address == f"unix:@{name}"
            assert ab.path is None
            ab.sendto(b"2", server.address)
            assert server.recvfrom(10) == (b"2", f"unix:@{name}")
        # a remapped name in another socket directory is reported by its path
        elsewhere = f"{sock_dir}/other"
        os.mkdir(elsewhere, 0o700)
        try:
            with backend.listen("127.0.0.1:0", kind="datagram", socket_dir=elsewhere) as o:
                o.sendto(b"4", f"unix:{server.path}")
                assert server.recvfrom(10) == (b"4", f"unix:{elsewhere}/{o.address}")
        finally:
            os.rmdir(elsewhere)
        # an unbound sender
        raw = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        with raw:
            raw.sendto(b"3", server.path)
            assert server.recvfrom(10) == (b"3", None)


def test_datagram_udp(backend, sock_dir, spawn):
    child = spawn(DGRAM_SERVER, args={"address": "tcp:127.0.0.1:0"})
    info = child.expect("address")
    assert info["path"] is None
    port = int(info["address"].rsplit(":", 1)[1])
    assert port > 0
    assert info["address"] in (f"tcp:127.0.0.1:{port}", f"udp:127.0.0.1:{port}")
    with backend.connect(f"udp:127.0.0.1:{port}", kind="datagram") as c:
        assert c.path is None
        cport = int(c.address.rsplit(":", 1)[1])
        c.send(b"over udp")
        assert child.expect("got") == {"got": b"over udp".hex(), "sender": f"udp:127.0.0.1:{cport}"}
        c.settimeout(10)
        assert c.recv(100) == b"re:over udp"
        c.send(b"quit")
    child.expect("done")
    child.finish()


def test_datagram_timeouts(backend, sock_dir):
    with backend.listen("127.0.0.1:0", kind="datagram", socket_dir=sock_dir) as s:
        assert s.gettimeout() is None
        s.settimeout(0.1)
        assert s.gettimeout() == 0.1
        t0 = time.monotonic()
        with pytest.raises(TimeoutError) as info:
            s.recvfrom(10)
        assert 0.09 <= time.monotonic() - t0 < 2
        assert info.value.errno == errno.ETIMEDOUT
        with pytest.raises(TimeoutError):
            s.recv(10)
        with pytest.raises(ValueError):
            s.settimeout(-1)
        s.settimeout(None)
        assert s.gettimeout() is None


def test_datagram_sendto_missing(backend, sock_dir):
    with backend.listen("127.0.0.1:0", kind="datagram", socket_dir=sock_dir) as s:
        with pytest.raises(FileNotFoundError) as info:
            s.sendto(b"x", "127.0.0.1:1")
        assert info.value.filename == "127.0.0.1:1"


def test_datagram_socketpair(backend):
    a, b = backend.socketpair("datagram")
    with a, b:
        assert isinstance(a, backend.DatagramSocket)
        assert a.kind == b.kind == "datagram"
        assert a.address is None and b.address is None
        for size in (0, 1, 100, 50_000):
            data = pattern(size)
            assert a.send(data) == size
            assert b.recv(65536) == data
        b.send(b"back")
        assert a.recvfrom(100) == (b"back", None)


def test_datagram_connect_missing(backend, sock_dir):
    with pytest.raises(FileNotFoundError):
        backend.connect("127.0.0.1:2", kind="datagram", socket_dir=sock_dir)
    assert os.listdir(sock_dir) == []


def test_datagram_of_one_mebibyte(backend, sock_dir):
    """Both backends size the send buffer alike: a 1 MiB datagram fits on either."""
    data = bytes(range(256)) * 4096
    with backend.listen("127.0.0.1:0", kind="datagram", socket_dir=sock_dir) as server:
        with backend.connect(server.address, kind="datagram", socket_dir=sock_dir) as c:
            c.send(data)
            assert server.recvfrom(2 << 20) == (data, c.address)


def test_datagram_too_large(backend, sock_dir):
    with backend.listen("127.0.0.1:0", kind="datagram", socket_dir=sock_dir) as server:
        assert stat.S_IMODE(os.lstat(server.path).st_mode) == 0o600
        with backend.connect(server.address, kind="datagram", socket_dir=sock_dir) as c:
            assert stat.S_IMODE(os.lstat(c.path).st_mode) == 0o600
            with pytest.raises(fastipc.MessageTooLarge):
                c.send(b"\0" * (16 * 1024 * 1024))
            with pytest.raises(fastipc.MessageTooLarge):
                c.sendto(b"\0" * (16 * 1024 * 1024), server.address)
            c.send(b"small")
            assert server.recvfrom(100) == (b"small", c.address)
