"""Framed messages, raw bytes, timeouts and end-of-stream handling, across processes."""

from __future__ import annotations

import errno
import os
import pickle
import socket
import struct
import threading
import time

import fastipc
import pytest
from _helpers import ECHO_CLIENT, pattern
from conftest import assert_oserror
from hypothesis import given, settings
from hypothesis import strategies as st

SIZES = [0, 1, 64, 64 * 1024, 1024 * 1024, 16 * 1024 * 1024]


def _accept_child(backend, sock_dir, spawn, script, kind="stream", args=None, **listen_kw):
    lst = backend.listen("127.0.0.1:0", kind=kind, socket_dir=sock_dir, **listen_kw)
    child = spawn(script, args={"address": lst.address, "kind": kind, **(args or {})})
    child.expect("connected")
    conn = lst.accept(timeout=10)
    return lst, conn, child


def _raw(conn) -> socket.socket:
    """A plain socket on a duplicate of the connection's descriptor (the caller closes it)."""
    return socket.socket(fileno=os.dup(conn.fileno()))


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s}B")
def test_send_recv_bytes_sizes_stream(backend, sock_dir, spawn, size):
    lst, conn, child = _accept_child(backend, sock_dir, spawn, ECHO_CLIENT)
    with lst, conn:
        data = pattern(size, seed=3)
        conn.send_bytes(data)
        got = conn.recv_bytes()
        assert len(got) == size
        assert got == data
        assert type(got) is bytes
    assert child.expect("echoed") == {"echoed": 1}
    child.finish()


# 1 MiB: the largest packet is bounded by the sender's kernel buffer, which both backends size
# to 4 MiB (docs/sockets.md), so the same message fits on both.
@pytest.mark.parametrize("size", [0, 1, 64, 64 * 1024, 1 << 20], ids=lambda s: f"{s}B")
def test_send_recv_bytes_sizes_seqpacket(backend, sock_dir, spawn, size):
    lst, conn, child = _accept_child(backend, sock_dir, spawn, ECHO_CLIENT, kind="seqpacket")
    with lst, conn:
        data = pattern(size, seed=5)
        conn.send_bytes(data)
        assert conn.recv_bytes() == data
        conn.send_bytes(b"after")  # a 0-byte message must not be mistaken for end of file
        assert conn.recv_bytes() == b"after"
    assert child.expect("echoed") == {"echoed": 2}
    child.finish()


def test_seqpacket_too_large_for_kernel(backend, sock_dir):
    a, b = backend.socketpair("seqpacket")
    with a, b:
        with pytest.raises(fastipc.MessageTooLarge):
            a.send_bytes(b"\0" * (16 * 1024 * 1024))
        a.send_bytes(b"still usable")
        assert b.recv_bytes() == b"still usable"


def test_wire_format_is_multiprocessing(backend):
    a, b = backend.socketpair()
    with a, b:
        raw = _raw(b)
        with raw:
            a.send_bytes(b"hello")
            a.send_bytes(b"")
            assert _recv_n(raw, 9) == b"\x00\x00\x00\x05hello"
            assert _recv_n(raw, 4) == b"\x00\x00\x00\x00"
            raw.sendall(struct.pack("!i", 3) + b"abc" + struct.pack("!i", 0))
            assert a.recv_bytes() == b"abc"
            assert a.recv_bytes() == b""


def _recv_n(raw: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = raw.recv(n - len(buf))
        assert chunk, f"EOF after {len(buf)} of {n} bytes"
        buf += chunk
    return buf


@given(data=st.binary(max_size=4096), offset=st.integers(0, 4200), size=st.integers(0, 4200))
def test_prop_send_bytes_offset_size(backend, data, offset, size):
    a, b = backend.socketpair()
    with a, b:
        if offset + size > len(data):
            with pytest.raises(ValueError):
                a.send_bytes(data, offset, size)
        else:
            a.send_bytes(bytearray(data), offset, size)
            raw = _raw(b)
            with raw:
                assert (
                    _recv_n(raw, 4 + size) == struct.pack("!i", size) + data[offset : offset + size]
                )
        if offset > len(data):
            with pytest.raises(ValueError):
                a.send_bytes(data, offset)
        else:
            a.send_bytes(memoryview(data), offset)
            assert b.recv_bytes() == data[offset:]
        assert b.poll(0) is False


@settings(max_examples=600)  # the frame decoder: more than the profile's 200
@given(chunks=st.lists(st.binary(max_size=2000), max_size=8))
def test_prop_decode_frames(backend, chunks):
    a, b = backend.socketpair()
    with a, b:
        raw = _raw(a)
        with raw:
            raw.sendall(b"".join(struct.pack("!i", len(c)) + c for c in chunks))
            for c in chunks:
                assert b.recv_bytes() == c
            assert b.poll(0) is False


@settings(max_examples=400)
@given(
    chunks=st.lists(st.binary(max_size=300), max_size=6),
    bad=st.integers(-(2**31), -2),
    tail=st.binary(max_size=64),
)
def test_prop_decode_frames_then_an_invalid_one(backend, chunks, bad, tail):
    """Invalid frames too: whatever follows a malformed header, every frame before it arrives
    intact, and the malformed one is a protocol error that closes the connection."""
    a, b = backend.socketpair()
    with a, b:
        raw = _raw(a)
        with raw:
            frames = b"".join(struct.pack("!i", len(c)) + c for c in chunks)
            raw.sendall(frames + struct.pack("!i", bad) + tail)
            for c in chunks:
                assert b.recv_bytes() == c
            with pytest.raises(OSError) as info:
                b.recv_bytes()
            assert info.value.errno == errno.EBADMSG
            assert b.closed


def test_send_bytes_negative_offset(backend):
    a, b = backend.socketpair()
    with a, b:
        with pytest.raises(ValueError):
            a.send_bytes(b"abc", -1)
        with pytest.raises(ValueError):
            a.send_bytes(b"abc", 0, -1)


def test_recv_bytes_maxlength(backend, sock_dir, spawn):
    script = """
conn = B.connect(ARGS["address"], timeout=10)
report(connected=1)
conn.send_bytes(b"y" * 100)
conn.send_bytes(b"z" * 101)
report(sent=1)
report(eof=conn.poll(20))
try:
    conn.recv_bytes()
except EOFError:
    report(peer_closed=1)
conn.close()
"""
    lst, conn, child = _accept_child(backend, sock_dir, spawn, script)
    with lst, conn:
        assert conn.recv_bytes(100) == b"y" * 100
        with pytest.raises(fastipc.MessageTooLarge):
            conn.recv_bytes(100)
        assert conn.closed is True
    child.expect("sent")
    assert child.expect("eof") == {"eof": True}
    assert child.expect("peer_closed") == {"peer_closed": 1}
    child.finish()


def test_recv_bytes_maxlength_negative(backend):
    a, b = backend.socketpair()
    with a, b:
        a.send_bytes(b"x")
        with pytest.raises(ValueError):
            b.recv_bytes(-1)


def test_max_message_on_listener(backend, sock_dir, spawn):
    script = """
conn = B.connect(ARGS["address"], timeout=10)
report(connected=1)
conn.send_bytes(b"a" * 1024)
conn.send_bytes(b"b" * 1025)
report(sent=1)
report(eof=conn.poll(20))
conn.close()
"""
    lst, conn, child = _accept_child(backend, sock_dir, spawn, script, max_message=1024)
    child.expect("sent")
    with lst, conn:
        assert lst.max_message == 1024
        assert conn.max_message == 1024
        assert conn.recv_bytes() == b"a" * 1024
        with pytest.raises(fastipc.MessageTooLarge):
            conn.recv_bytes()
        assert conn.closed is True
    assert child.expect("eof") == {"eof": True}
    child.finish()


def test_max_message_on_connect(backend, sock_dir):
    with backend.listen("127.0.0.1:0", socket_dir=sock_dir) as lst:
        with backend.connect(lst.address, socket_dir=sock_dir, max_message=10, timeout=5) as c:
            assert c.max_message == 10
            with lst.accept(timeout=5) as s:
                s.send_bytes(b"0123456789")
                s.send_bytes(b"0123456789A")
                assert c.recv_bytes() == b"0123456789"
                with pytest.raises(fastipc.MessageTooLarge):
                    c.recv_bytes()
                assert c.closed


FORGED_VICTIM = """
import resource
lst = B.listen("127.0.0.1:0", max_message=ARGS["max_message"])
report(address=lst.address, path=lst.path)
results = []
for _ in range(2):
    conn = lst.accept(timeout=20)
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    try:
        conn.recv_bytes()
        results.append("no error")
    except fastipc.MessageTooLarge as e:
        results.append(type(e).__name__)
    except BaseException as e:
        results.append("wrong: %r" % (e,))
    rss1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    results.append(conn.closed)
    results.append(rss1 - rss0)
    conn.close()
# the process still works: one more ordinary connection
conn = lst.accept(timeout=20)
conn.send_bytes(conn.recv_bytes())
conn.close()
lst.close()
report(results=results)
"""


@pytest.mark.parametrize("max_message", [None, 1 << 20])
def test_forged_huge_header(backend, sock_dir, spawn, max_message):
    child = spawn(
        FORGED_VICTIM,
        args={"max_message": max_message or backend.DEFAULT_MAX_MESSAGE},
    )
    info = child.expect("address")
    for header in (
        struct.pack("!i", -1) + struct.pack("!Q", 2**40),  # 1 TiB in the long form
        struct.pack("!i", 0x7FFFFFF0),  # just under 2 GiB in the short form
    ):
        raw = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        with raw:
            raw.settimeout(20)
            raw.connect(info["path"])
            raw.sendall(header)
            # the victim closes the connection without reading a payload
            assert raw.recv(1) == b""
    with fastipc_connect(backend, info["address"], sock_dir) as conn:
        conn.send_bytes(b"alive")
        assert conn.recv_bytes() == b"alive"
    results = child.expect("results")["results"]
    assert results[0::3] == ["MessageTooLarge", "MessageTooLarge"]
    assert results[1::3] == [True, True]
    # nothing like the claimed size was allocated (ru_maxrss is in KiB)
    assert max(results[2::3]) < 32 * 1024, results
    child.finish()


def fastipc_connect(backend, address, sock_dir):
    return backend.connect(address, socket_dir=sock_dir, timeout=10)


def test_recv_bytes_into(backend):
    a, b = backend.socketpair()
    with a, b:
        buf = bytearray(b"-" * 16)
        a.send_bytes(b"hello")
        assert b.recv_bytes_into(buf) == 5
        assert buf == b"hello" + b"-" * 11
        a.send_bytes(b"world")
        assert b.recv_bytes_into(buf, 8) == 5
        assert buf == b"hello---world---"
        a.send_bytes(b"")
        assert b.recv_bytes_into(buf, 16) == 0
        a.send_bytes(b"0123456789abcdef")
        assert b.recv_bytes_into(memoryview(buf)) == 16
        assert buf == b"0123456789abcdef"
        # too short: BufferTooShort holds the whole message, and the stream stays in sync
        a.send_bytes(b"x" * 17)
        with pytest.raises(fastipc.BufferTooShort) as info:
            b.recv_bytes_into(buf)
        assert info.value.args[0] == b"x" * 17
        assert isinstance(info.value, __import__("multiprocessing").BufferTooShort)
        a.send_bytes(b"abc")
        with pytest.raises(fastipc.BufferTooShort) as info:
            b.recv_bytes_into(buf, 14)
        assert info.value.args[0] == b"abc"
        a.send_bytes(b"next")
        assert b.recv_bytes() == b"next"
        with pytest.raises((ValueError, IndexError)):
            b.recv_bytes_into(buf, 17)


def test_recv_bytes_into_readonly_buffer(backend):
    a, b = backend.socketpair()
    with a, b:
        a.send_bytes(b"abc")
        with pytest.raises((TypeError, BufferError, ValueError)):
            b.recv_bytes_into(b"immutable")


def test_recv_bytes_into_cross_process(backend, sock_dir, spawn):
    lst, conn, child = _accept_child(backend, sock_dir, spawn, ECHO_CLIENT)
    with lst, conn:
        data = pattern(1024 * 1024, seed=9)
        conn.send_bytes(data)
        buf = bytearray(1024 * 1024 + 10)
        assert conn.recv_bytes_into(buf, 10) == len(data)
        assert bytes(buf[10:]) == data
    child.expect("echoed")
    child.finish()


def test_poll(backend, sock_dir, spawn):
    script = """
conn = B.connect(ARGS["address"], timeout=10)
report(connected=1)
cmd = wait_parent()
conn.send_bytes(b"one")
cmd = wait_parent()
conn.close()
report(closed=1)
"""
    lst, conn, child = _accept_child(backend, sock_dir, spawn, script)
    with lst, conn:
        assert conn.poll() is False
        assert conn.poll(0) is False
        t0 = time.monotonic()
        assert conn.poll(0.1) is False
        assert 0.09 <= time.monotonic() - t0 < 2
        with pytest.raises(ValueError):
            conn.poll(-1)
        child.send(go=1)
        assert conn.poll(None) is True
        assert conn.poll(0) is True  # polling does not consume
        assert conn.recv_bytes() == b"one"
        assert conn.poll(0) is False
        child.send(go=2)
        child.expect("closed")
        assert conn.poll(10) is True  # end of file counts as readable
        with pytest.raises(EOFError) as info:
            conn.recv_bytes()
        assert not isinstance(info.value, fastipc.TruncatedMessage)
    child.finish()


def test_send_recv_objects(backend, sock_dir, spawn):
    script = """
conn = B.connect(ARGS["address"], timeout=10)
report(connected=1)
while True:
    try:
        obj = conn.recv()
    except EOFError:
        break
    conn.send(("echo", obj))
conn.close()
report(done=1)
"""
    objects = [
        None,
        1,
        -(2**70),
        1.5,
        "text é",
        b"\0\xff",
        [1, [2, (3,)]],
        {"a": {1, 2}},
        2**100,
        bytearray(b"x" * 300_000),
    ]
    lst, conn, child = _accept_child(backend, sock_dir, spawn, script)
    with lst, conn:
        for obj in objects:
            conn.send(obj)
            assert conn.recv() == ("echo", obj)
        # send() frames one pickle per message
        conn.send({"k": 1})
        raw_frame = conn.recv_bytes()
        assert pickle.loads(raw_frame) == ("echo", {"k": 1})
        conn.send_bytes(pickle.dumps([7, 8]))
        assert conn.recv() == ("echo", [7, 8])
    child.expect("done")
    child.finish()


def test_send_unpicklable(backend):
    a, b = backend.socketpair()
    with a, b:
        with pytest.raises((pickle.PicklingError, TypeError, AttributeError)):
            a.send(lambda: 1)
        a.send("fine")
        assert b.recv() == "fine"


def test_raw_bytes(backend, sock_dir, spawn):
    script = """
conn = B.connect(ARGS["address"], timeout=10)
report(connected=1)
data = conn.recv_exact(ARGS["n"])
conn.sendall(data[::-1])
conn.sendall(memoryview(b"tail!"))
conn.close()
report(done=len(data))
"""
    n = 3 * 1024 * 1024 + 7
    lst, conn, child = _accept_child(backend, sock_dir, spawn, script, args={"n": n})
    with lst, conn:
        data = pattern(n, seed=11)
        conn.sendall(bytearray(data))
        back = conn.recv_exact(n)
        assert back == data[::-1]
        buf = bytearray(3)
        assert conn.recv_into(buf) == 3
        assert buf == b"tai"
        buf = bytearray(10)
        got = 0
        while got < 2:
            k = conn.recv_into(memoryview(buf)[got:], 2 - got)
            assert k > 0
            got += k
        assert buf[:2] == b"l!"
        assert buf[2:] == bytes(8)
        assert conn.recv_into(buf) == 0  # end of file
        with pytest.raises(EOFError) as info:
            conn.recv_exact(1)
        assert not isinstance(info.value, fastipc.TruncatedMessage)
    assert child.expect("done") == {"done": n}
    child.finish()


def test_recv_exact_zero_and_recv_into_nbytes(backend):
    a, b = backend.socketpair()
    with a, b:
        assert b.recv_exact(0) == b""
        a.sendall(b"abcdef")
        buf = bytearray(6)
        assert b.recv_into(buf, 2) == 2
        assert buf == b"ab\0\0\0\0"
        assert b.recv_exact(4) == b"cdef"
        with pytest.raises(ValueError):
            b.recv_into(buf, 7)


def test_recv_exact_seqpacket_not_supported(backend):
    a, b = backend.socketpair("seqpacket")
    with a, b:
        with pytest.raises(fastipc.NotSupportedError):
            a.recv_exact(1)


def test_settimeout(backend, sock_dir, spawn):
    lst, conn, child = _accept_child(backend, sock_dir, spawn, ECHO_CLIENT)
    with lst, conn:
        assert conn.gettimeout() is None
        conn.settimeout(0.1)
        assert conn.gettimeout() == 0.1
        for call in (
            conn.recv_bytes,
            lambda: conn.recv_exact(1),
            lambda: conn.recv_into(bytearray(1)),
            conn.recv,
            lambda: conn.recv_bytes_into(bytearray(10)),
        ):
            t0 = time.monotonic()
            with pytest.raises(TimeoutError) as info:
                call()
            assert 0.09 <= time.monotonic() - t0 < 2
            assert info.value.errno == errno.ETIMEDOUT
        conn.settimeout(0)
        assert conn.gettimeout() == 0
        with pytest.raises(TimeoutError):
            conn.recv_bytes()
        with pytest.raises(ValueError):
            conn.settimeout(-1)
        assert conn.gettimeout() == 0
        conn.settimeout(None)
        assert conn.gettimeout() is None
        conn.send_bytes(b"still in sync")
        assert conn.recv_bytes() == b"still in sync"
    assert child.expect("echoed") == {"echoed": 1}
    child.finish()


def test_send_timeout(backend, sock_dir):
    with backend.listen("127.0.0.1:0", socket_dir=sock_dir) as lst:
        with backend.connect(lst.address, socket_dir=sock_dir, timeout=5) as c, lst.accept(5):
            c.settimeout(0.2)
            t0 = time.monotonic()
            with pytest.raises(TimeoutError) as info:
                c.sendall(b"\0" * (64 * 1024 * 1024))  # nobody reads
            assert 0.15 <= time.monotonic() - t0 < 5
            assert info.value.errno == errno.ETIMEDOUT
            c.settimeout(0.1)
            t0 = time.monotonic()
            with pytest.raises(TimeoutError) as info:
                c.send_bytes(b"\0" * (8 * 1024 * 1024))
            assert 0.05 <= time.monotonic() - t0 < 5
            assert info.value.errno == errno.ETIMEDOUT


def test_shutdown(backend, sock_dir, spawn):
    script = """
conn = B.connect(ARGS["address"], timeout=10)
report(connected=1)
msgs = []
while True:
    try:
        msgs.append(conn.recv_bytes().decode())
    except EOFError:
        break
conn.send_bytes(("got " + ",".join(msgs)).encode())
conn.close()
report(done=1)
"""
    lst, conn, child = _accept_child(backend, sock_dir, spawn, script)
    with lst, conn:
        conn.send_bytes(b"a")
        conn.send_bytes(b"b")
        conn.shutdown(socket.SHUT_WR)
        with pytest.raises(OSError) as info:
            conn.send_bytes(b"c")
        assert info.value.errno == errno.EPIPE
        assert conn.recv_bytes() == b"got a,b"
        with pytest.raises(EOFError):
            conn.recv_bytes()
        conn.shutdown()  # SHUT_RDWR on a half-closed socket is fine
    child.expect("done")
    child.finish()


def test_shutdown_read(backend):
    a, b = backend.socketpair()
    with a, b:
        b.shutdown(socket.SHUT_RD)
        with pytest.raises(EOFError):
            b.recv_bytes()
        b.send_bytes(b"one way")
        assert a.recv_bytes() == b"one way"


TRUNCATE_CHILD = """
import socket as S
conn = B.connect(ARGS["address"], timeout=10)
report(connected=1)
raw = S.socket(fileno=os.dup(conn.fileno()))
raw.sendall(bytes.fromhex(ARGS["hex"]))
wait_parent()
os._exit(0)  # dies in the middle of the message
"""


@pytest.mark.parametrize(
    ("wire", "expected", "received"),
    [
        (struct.pack("!i", 1000) + b"p" * 300, 1000, 300),
        (struct.pack("!i", 5) + b"", 5, 0),
    ],
    ids=["payload", "no-payload"],
)
def test_truncated_message(backend, sock_dir, spawn, wire, expected, received):
    lst, conn, child = _accept_child(
        backend, sock_dir, spawn, TRUNCATE_CHILD, args={"hex": wire.hex()}
    )
    with lst, conn:
        assert conn.poll(10)
        child.send(die=1)
        assert child.wait_dead(10) == 0
        with pytest.raises(fastipc.TruncatedMessage) as info:
            conn.recv_bytes()
        assert info.value.expected == expected
        assert info.value.received == received
        assert isinstance(info.value, EOFError)


def test_truncated_header(backend, sock_dir, spawn):
    lst, conn, child = _accept_child(backend, sock_dir, spawn, TRUNCATE_CHILD, args={"hex": "0000"})
    with lst, conn:
        assert conn.poll(10)
        child.send(die=1)
        child.wait_dead(10)
        with pytest.raises(fastipc.TruncatedMessage):
            conn.recv_bytes()


def test_truncated_recv_exact(backend, sock_dir, spawn):
    lst, conn, child = _accept_child(
        backend, sock_dir, spawn, TRUNCATE_CHILD, args={"hex": "41" * 7}
    )
    with lst, conn:
        assert conn.poll(10)
        child.send(die=1)
        child.wait_dead(10)
        with pytest.raises(fastipc.TruncatedMessage) as info:
            conn.recv_exact(10)
        assert (info.value.expected, info.value.received) == (10, 7)


def test_eof_on_clean_close(backend, sock_dir, spawn):
    script = """
conn = B.connect(ARGS["address"], timeout=10)
report(connected=1)
conn.send_bytes(b"last")
conn.close()
"""
    lst, conn, child = _accept_child(backend, sock_dir, spawn, script)
    with lst, conn:
        child.finish()
        assert conn.recv_bytes() == b"last"
        with pytest.raises(EOFError) as info:
            conn.recv_bytes()
        assert type(info.value) is EOFError
        with pytest.raises(EOFError):
            conn.recv()


BROKEN_PIPE_CHILD = """
import signal, socket as S
signal.signal(signal.SIGPIPE, signal.SIG_DFL)
assert signal.getsignal(signal.SIGPIPE) == signal.SIG_DFL
conn = B.connect(ARGS["address"], timeout=10)
report(connected=1)
assert conn.poll(20)  # the parent closed its end
errors = []
for method in ("send_bytes", "sendall", "send"):
    try:
        for _ in range(100):
            getattr(conn, method)(b"x" * 1000)
        errors.append("no error")
    except BrokenPipeError as e:
        errors.append([method, type(e).__name__, e.errno])
    except BaseException as e:
        errors.append([method, "wrong", repr(e)])
report(errors=errors)
conn.close()
"""


def test_broken_pipe_with_sigpipe_default(backend, sock_dir, spawn):
    lst, conn, child = _accept_child(backend, sock_dir, spawn, BROKEN_PIPE_CHILD)
    with lst:
        conn.close()
        errors = child.expect("errors")["errors"]
        assert errors == [
            ["send_bytes", "BrokenPipeError", errno.EPIPE],
            ["sendall", "BrokenPipeError", errno.EPIPE],
            ["send", "BrokenPipeError", errno.EPIPE],
        ]
        child.finish()  # exit status 0: not killed by SIGPIPE


def test_broken_pipe_tcp_with_sigpipe_default(backend, sock_dir, spawn):
    with backend.listen("tcp:127.0.0.1:0") as lst:
        child = spawn(BROKEN_PIPE_CHILD, args={"address": lst.address})
        child.expect("connected")
        lst.accept(timeout=10).close()
        errors = child.expect("errors")["errors"]
        assert [e[1:] for e in errors] == [["BrokenPipeError", errno.EPIPE]] * 3, errors
        child.finish()


def test_seqpacket_message_boundaries(backend, sock_dir, spawn):
    script = """
conn = B.connect(ARGS["address"], kind="seqpacket", timeout=10)
report(connected=1)
for i in range(50):
    conn.send_bytes(pattern(i * 37 + 1, seed=i))
conn.close()
report(done=1)
"""
    lst, conn, child = _accept_child(backend, sock_dir, spawn, script, kind="seqpacket")
    with lst, conn:
        child.expect("done")  # the peer is gone before the first message is read
        for i in range(50):
            assert conn.recv_bytes() == pattern(i * 37 + 1, seed=i)
        with pytest.raises(EOFError):
            conn.recv_bytes()
    child.finish()


def test_seqpacket_empty_message_before_close(backend, sock_dir, spawn):
    """A 0-byte message queued before the peer closed is a message, not the end of file."""
    script = """
conn = B.connect(ARGS["address"], kind="seqpacket", timeout=10)
report(connected=1)
conn.send_bytes(b"")
conn.send_bytes(b"x")
conn.send_bytes(b"")
conn.close()
report(done=1)
"""
    lst, conn, child = _accept_child(backend, sock_dir, spawn, script, kind="seqpacket")
    with lst, conn:
        child.expect("done")
        got = []
        with pytest.raises(EOFError):
            for _ in range(4):
                got.append(conn.recv_bytes())
        assert got == [b"", b"x", b""]
    child.finish()


def test_seqpacket_is_one_packet_per_message(backend):
    a, b = backend.socketpair("seqpacket")
    with a, b:
        raw = _raw(b)
        with raw:
            a.send_bytes(b"abc")
            a.send_bytes(b"defgh")
            assert raw.recv(100) == b"abc"  # no length prefix
            assert raw.recv(100) == b"defgh"
            _raw_send = _raw(a)
            with _raw_send:
                _raw_send.send(b"packet")
            assert b.recv_bytes() == b"packet"
            a.send_bytes(b"x" * 50)
            with pytest.raises(fastipc.MessageTooLarge):
                b.recv_bytes(10)


CONCURRENT_SENDER = """
import threading
conn = B.connect(ARGS["address"], timeout=10)
report(connected=1)
start = threading.Barrier(ARGS["threads"])
errors = []
def worker(t):
    try:
        start.wait()
        for i in range(ARGS["count"]):
            size = (i * 7919 + t * 104729) % ARGS["maxsize"]
            head = b"%02d:%04d:" % (t, i)
            conn.send_bytes(head + bytes([t + 65]) * size)
    except BaseException as e:
        errors.append(repr(e))
threads = [threading.Thread(target=worker, args=(t,)) for t in range(ARGS["threads"])]
for th in threads:
    th.start()
for th in threads:
    th.join()
conn.close()
report(errors=errors)
"""


def test_concurrent_send_bytes_no_interleaving(backend, sock_dir, spawn):
    threads, count, maxsize = 6, 100, 300_000
    lst, conn, child = _accept_child(
        backend,
        sock_dir,
        spawn,
        CONCURRENT_SENDER,
        args={"threads": threads, "count": count, "maxsize": maxsize},
    )
    seen = {t: [] for t in range(threads)}
    with lst, conn:
        for _ in range(threads * count):
            msg = conn.recv_bytes()
            t, i = int(msg[:2]), int(msg[3:7])
            size = (i * 7919 + t * 104729) % maxsize
            assert msg == b"%02d:%04d:" % (t, i) + bytes([t + 65]) * size
            seen[t].append(i)
        with pytest.raises(EOFError):
            conn.recv_bytes()
    assert child.expect("errors") == {"errors": []}
    assert seen == {t: list(range(count)) for t in range(threads)}
    child.finish()


def test_concurrent_send_bytes_in_process(backend):
    a, b = backend.socketpair()
    n_threads, count = 4, 200
    received = []

    def reader():
        for _ in range(n_threads * count):
            received.append(b.recv_bytes())

    def writer(t):
        for i in range(count):
            a.send_bytes(bytes([t]) * (1000 + (i * 613) % 70_000))

    with a, b:
        r = threading.Thread(target=reader)
        r.start()
        ws = [threading.Thread(target=writer, args=(t,)) for t in range(n_threads)]
        for w in ws:
            w.start()
        for w in ws:
            w.join()
        r.join(30)
        assert not r.is_alive()
    assert len(received) == n_threads * count
    for msg in received:
        assert msg == msg[:1] * len(msg)
    for t in range(n_threads):
        sizes = [len(m) for m in received if m[0] == t]
        assert sizes == [1000 + (i * 613) % 70_000 for i in range(count)]


@pytest.mark.parametrize("kind", ["stream", "seqpacket"])
def test_socketpair_stream_kinds(backend, kind):
    a, b = backend.socketpair(kind)
    with a, b:
        assert a.kind == b.kind == kind
        assert isinstance(a, backend.Connection)
        a.send_bytes(b"ab")
        b.send_bytes(b"ba")
        assert b.recv_bytes() == b"ab"
        assert a.recv_bytes() == b"ba"
        a.send({"x": 1})
        assert b.recv() == {"x": 1}
    assert a.closed and b.closed


def test_socketpair_default_is_stream(backend):
    a, b = backend.socketpair()
    with a, b:
        assert a.kind == "stream"


def test_socketpair_cloexec(backend):
    """Every descriptor is close-on-exec, including both ends of a socketpair."""
    import fcntl

    a, b = backend.socketpair()
    c, d = backend.socketpair("datagram")
    with a, b, c, d:
        for obj in (a, b, c, d):
            assert fcntl.fcntl(obj.fileno(), fcntl.F_GETFD) & fcntl.FD_CLOEXEC


def test_closed_ops_ebadf(backend):
    a, b = backend.socketpair()
    b.close()
    a.close()
    with pytest.raises(OSError) as info:
        a.send_bytes(b"")
    assert_oserror(info.value, errno.EBADF)


def test_default_max_message_checked_before_allocation(backend):
    a, b = backend.socketpair()
    with a, b:
        raw = _raw(a)
        with raw:
            raw.sendall(struct.pack("!i", backend.DEFAULT_MAX_MESSAGE + 1))
            with pytest.raises(fastipc.MessageTooLarge):
                b.recv_bytes()
            assert b.closed


def test_seqpacket_buffer_too_short(backend):
    a, b = backend.socketpair("seqpacket")
    with a, b:
        a.send_bytes(b"0123456789")
        buf = bytearray(4)
        with pytest.raises(fastipc.BufferTooShort) as info:
            b.recv_bytes_into(buf)
        assert info.value.args[0] == b"0123456789"
        a.send_bytes(b"ok")
        assert b.recv_bytes_into(buf, 1) == 2
        assert buf == b"\0ok\0"


def test_full_duplex_threads(backend, sock_dir, spawn):
    """One thread sends while another receives on the same connection."""
    lst, conn, child = _accept_child(backend, sock_dir, spawn, ECHO_CLIENT)
    n = 300
    got = []
    with lst, conn:

        def reader():
            for _ in range(n):
                got.append(conn.recv_bytes())

        t = threading.Thread(target=reader)
        t.start()
        for i in range(n):
            conn.send_bytes(pattern(5000 + i * 301, seed=i % 200))
        t.join(30)
        assert not t.is_alive()
    assert got == [pattern(5000 + i * 301, seed=i % 200) for i in range(n)]
    assert child.expect("echoed") == {"echoed": n}
    child.finish()


def test_send_bytes_any_buffer(backend):
    import array

    a, b = backend.socketpair()
    with a, b:
        arr = array.array("i", [1, 2, 3])
        a.send_bytes(arr)
        assert b.recv_bytes() == arr.tobytes()
        a.send_bytes(arr, 4, 8)  # offset and size count bytes
        assert b.recv_bytes() == arr.tobytes()[4:12]
        a.send_bytes(memoryview(b"abcdef")[1:4])
        assert b.recv_bytes() == b"bcd"
        a.sendall(arr)
        assert b.recv_exact(12) == arr.tobytes()
        with pytest.raises(TypeError):
            a.send_bytes("text is not a buffer")
