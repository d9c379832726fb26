"""What a receiver does with bytes that break the framing, and with messages it cannot take:
the same on both backends."""

from __future__ import annotations

import errno
import os
import pickle
import socket
import struct

import fastipc
import pytest


def _raw(conn) -> socket.socket:
    """A plain socket on a duplicate of the connection's descriptor (the caller closes it)."""
    return socket.socket(fileno=os.dup(conn.fileno()))


def _send_raw_and_close(conn, data: bytes) -> None:
    """Writes ``data`` as is on ``conn``'s socket, then closes that end."""
    with _raw(conn) as raw:
        raw.sendall(data)
    conn.close()


def test_long_header_cut_short_counts_against_twelve(backend):
    a, b = backend.socketpair()
    with a, b:
        _send_raw_and_close(a, struct.pack("!i", -1) + b"\0\0")
        with pytest.raises(fastipc.TruncatedMessage) as info:
            b.recv_bytes()
        assert (info.value.expected, info.value.received) == (12, 6)
        assert "6 of 12 bytes" in str(info.value)


def test_short_header_cut_short_counts_against_four(backend):
    a, b = backend.socketpair()
    with a, b:
        _send_raw_and_close(a, b"\0\0")
        with pytest.raises(fastipc.TruncatedMessage) as info:
            b.recv_bytes()
        assert (info.value.expected, info.value.received) == (4, 2)
        assert "2 of 4 bytes" in str(info.value)


@pytest.mark.parametrize("port", [2**63, 2**64, -(2**63) - 1, 10**30, 65536, -1])
def test_resolve_port_out_of_range_is_value_error(backend, port):
    with pytest.raises(ValueError, match="the port must be a number from 0 to 65535") as info:
        backend.resolve(("h", port))
    assert type(info.value) is ValueError


def test_resolve_port_not_int_is_type_error(backend):
    with pytest.raises(TypeError):
        backend.resolve(("h", "80"))
    with pytest.raises(TypeError):
        backend.resolve(("h", 80.0))


def test_seqpacket_too_large_drops_the_packet_and_stays_open(backend):
    a, b = backend.socketpair("seqpacket")
    r, w = os.pipe()
    try:
        with a, b:
            # The descriptor riding on the refused packet is closed with it (the fd-leak check).
            a.send_bytes(b"x" * 11, fds=[r])
            a.send_bytes(b"y" * 10)
            with pytest.raises(fastipc.MessageTooLarge):
                b.recv_bytes(10)
            assert b.closed is False
            assert b.recv_bytes(10) == b"y" * 10
            b.send_bytes(b"back")
            assert a.recv_bytes() == b"back"
    finally:
        os.close(r)
        os.close(w)


def test_stream_too_large_still_closes(backend):
    a, b = backend.socketpair()
    with a, b:
        a.send_bytes(b"x" * 11)
        with pytest.raises(fastipc.MessageTooLarge):
            b.recv_bytes(10)
        assert b.closed is True


@pytest.mark.parametrize(
    "payload",
    [
        b"garbage",
        pickle.dumps(list(range(100)))[:-5],  # truncated
        b"cnope\nNope\n.",  # a class from a module this process does not have
    ],
    ids=["garbage", "truncated", "missing-class"],
)
@pytest.mark.parametrize("kind", ["stream", "seqpacket"])
def test_recv_of_a_bad_pickle_is_unpickling_error(backend, payload, kind):
    a, b = backend.socketpair(kind)
    with a, b:
        a.send_bytes(payload)
        a.send({"after": 1})
        with pytest.raises(fastipc.UnpicklingError) as info:
            b.recv()
        err = info.value
        assert isinstance(err, fastipc.IPCError)
        assert isinstance(err, pickle.UnpicklingError)
        assert err.__cause__ is not None
        assert f"of {len(payload)} bytes" in str(err)
        # The message was consumed; the connection carries on.
        assert b.closed is False
        assert b.recv() == {"after": 1}


def test_recv_of_a_pickle_whose_constructor_raises(backend):
    a, b = backend.socketpair()
    with a, b:
        # int("x") at unpickling time: a ValueError inside pickle, wrapped.
        a.send_bytes(b"cbuiltins\nint\n(Vx\ntR.")
        with pytest.raises(fastipc.UnpicklingError) as info:
            b.recv()
        assert type(info.value.__cause__) is ValueError
        assert info.value.__cause__.args[0].startswith("invalid literal for int()")


def _receive(conn, method: str) -> object:
    if method == "recv_bytes_into":
        return conn.recv_bytes_into(bytearray(16))
    return getattr(conn, method)()


RECEIVES = ["recv_bytes", "recv_bytes_into", "recv_bytes_and_fds", "recv"]


@pytest.mark.parametrize("prefix", [-2, -(2**31)], ids=["minus-2", "int32-min"])
@pytest.mark.parametrize("method", RECEIVES)
def test_negative_length_prefix_is_a_protocol_error_that_closes(backend, prefix, method):
    a, b = backend.socketpair()
    with a, b:
        with _raw(a) as raw:
            # What follows the bad prefix looks like a frame: nothing of it may be delivered.
            raw.sendall(struct.pack("!i", prefix) + struct.pack("!i", 2) + b"ok")
        with pytest.raises(OSError) as info:
            _receive(b, method)
        assert type(info.value) is OSError
        assert info.value.errno == errno.EBADMSG
        assert b.closed is True
        with pytest.raises(OSError) as again:
            b.recv_bytes()
        assert again.value.errno == errno.EBADF
        # The peer sees the end of the connection.
        assert a.poll(10) is True
        with pytest.raises(EOFError):
            a.recv_bytes()


@pytest.mark.parametrize("method", RECEIVES)
def test_over_max_message_closes_for_every_receive(backend, sock_dir, method):
    with backend.listen("127.0.0.1:0", socket_dir=sock_dir) as lst:
        with backend.connect(lst.address, socket_dir=sock_dir, max_message=10, timeout=5) as c:
            with lst.accept(timeout=5) as s:
                s.send_bytes(b"x" * 11)
                s.send_bytes(b"y")
                with pytest.raises(fastipc.MessageTooLarge):
                    _receive(c, method)
                assert c.closed is True


#: Lengths no process can allocate (exabytes), under a max_message raised to allow them.
UNALLOCATABLE = [2**61, 2**62 + 12345]


@pytest.mark.parametrize("size", UNALLOCATABLE, ids=["2^61", "2^62+"])
@pytest.mark.parametrize("method", RECEIVES)
def test_unallocatable_length_closes(backend, sock_dir, size, method):
    with backend.listen("127.0.0.1:0", socket_dir=sock_dir) as lst:
        with backend.connect(
            lst.address, socket_dir=sock_dir, max_message=2**63 - 1, timeout=5
        ) as c:
            c.settimeout(10)  # a receiver that waited for the payload instead fails, not hangs
            with lst.accept(timeout=5) as s:
                # The "payload" looks like a frame: it must never be delivered as one.
                with _raw(s) as raw:
                    raw.sendall(struct.pack("!iQ", -1, size) + struct.pack("!i", 2) + b"ok")
                with pytest.raises(MemoryError):
                    _receive(c, method)
                assert c.closed is True
                assert s.poll(10) is True
                with pytest.raises(EOFError):
                    s.recv_bytes()
