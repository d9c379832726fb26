"""One shape for closed objects: on both backends, every closable object closes idempotently and
then refuses every operation with the same error, OSError(EBADF, "the object is closed", what),
where ``what`` names the object's address or name."""

from __future__ import annotations

import errno
import sys

import pytest

CLOSED = "the object is closed"


def assert_closed_error(exc: OSError, what: str) -> None:
    assert exc.errno == errno.EBADF
    assert exc.strerror == CLOSED
    assert exc.filename == what


def closed_twice(obj) -> None:
    obj.close()
    obj.close()  # idempotent
    assert obj.closed


def test_connection(backend):
    a, b = backend.socketpair()
    with b:
        closed_twice(a)
        for call in (lambda: a.send_bytes(b"x"), a.recv_bytes, lambda: a.poll(0)):
            with pytest.raises(OSError) as info:
                call()
            assert_closed_error(info.value, a.address)


def test_listener(backend, sock_dir):
    listener = backend.listen("127.0.0.1:0")
    closed_twice(listener)
    with pytest.raises(OSError) as info:
        listener.accept(timeout=0)
    assert_closed_error(info.value, listener.address)


def test_datagram_socket(backend, sock_dir):
    sock = backend.listen("127.0.0.1:0", kind="datagram")
    closed_twice(sock)
    for call in (lambda: sock.sendto(b"x", "127.0.0.1:1"), lambda: sock.recvfrom(64)):
        with pytest.raises(OSError) as info:
            call()
        assert info.value.errno == errno.EBADF
        assert info.value.strerror == CLOSED


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX named objects")
def test_shared_memory_and_semaphore(backend, names):
    shm = backend.SharedMemory(names(), create=True, size=64)
    shm.unlink()
    closed_twice(shm)
    with pytest.raises(OSError) as info:
        shm.fileno()
    assert info.value.errno == errno.EBADF
    assert info.value.strerror == CLOSED

    sem = backend.Semaphore(names(), create=True, value=0)
    sem.unlink()
    closed_twice(sem)
    with pytest.raises(OSError) as info:
        sem.release()
    assert info.value.errno == errno.EBADF
    assert info.value.strerror == CLOSED
