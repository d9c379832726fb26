"""``close()`` from another thread ends an operation blocked in that object (OSError EBADF), on
both backends: accept, the receives and sends of connections and datagram sockets, pipe and FIFO
reads and writes, message-queue receives. (Semaphores are not in this list: closing one under a
waiter is undefined in POSIX.)"""

from __future__ import annotations

import errno
import os
import sys
import threading
from collections.abc import Callable

import pytest
from _classic import no_queues_left, unique  # noqa: F401
from _helpers import wait_blocked_in_kernel

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")

BIG = 32 * 1024 * 1024


def assert_close_ends(obj, call: Callable[[], object]) -> None:
    """Runs ``call`` in a thread until it blocks in the kernel, closes ``obj`` from this thread,
    and checks that the call ended with OSError(EBADF)."""
    outcome: list[object] = []

    def run() -> None:
        try:
            outcome.append(call())
        except BaseException as exc:
            outcome.append(exc)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    try:
        wait_blocked_in_kernel(os.getpid(), t.native_id)
    finally:
        obj.close()
        t.join(timeout=5)
    assert not t.is_alive(), "close() did not end the blocked call"
    assert len(outcome) == 1
    exc = outcome[0]
    assert isinstance(exc, OSError), exc
    assert exc.errno == errno.EBADF


CONNECTION_RECEIVES = {
    "recv_bytes": lambda c: c.recv_bytes(),
    "recv_bytes_into": lambda c: c.recv_bytes_into(bytearray(64)),
    "recv_bytes_and_fds": lambda c: c.recv_bytes_and_fds(),
    "recv": lambda c: c.recv(),
    "recv_fds": lambda c: c.recv_fds(64, 1),
    "recv_into": lambda c: c.recv_into(bytearray(64)),
    "recv_exact": lambda c: c.recv_exact(64),
    "poll": lambda c: c.poll(None),
}


@pytest.mark.parametrize("kind", ["stream", "seqpacket"])
@pytest.mark.parametrize("op", sorted(CONNECTION_RECEIVES))
def test_connection_receive(backend, kind, op):
    if kind == "seqpacket" and op == "recv_exact":
        pytest.skip("recv_exact is for streams")
    a, b = backend.socketpair(kind=kind)
    with b:
        assert_close_ends(a, lambda: CONNECTION_RECEIVES[op](a))


CONNECTION_SENDS = {
    "send_bytes": lambda c: c.send_bytes(bytes(BIG)),
    "send": lambda c: c.send(bytes(BIG)),
    "sendall": lambda c: c.sendall(bytes(BIG)),
    "send_fds": lambda c: c.send_fds(bytes(BIG), [0]),
}


@pytest.mark.parametrize("op", sorted(CONNECTION_SENDS))
def test_connection_send(backend, op):
    # Nobody reads the other end: the send fills the socket buffers and blocks.
    a, b = backend.socketpair()
    with b:
        assert_close_ends(a, lambda: CONNECTION_SENDS[op](a))


def test_listener_accept(backend):
    listener = backend.listen("127.0.0.1:0")
    assert_close_ends(listener, listener.accept)


DATAGRAM_RECEIVES = {
    "recvfrom": lambda d: d.recvfrom(64),
    "recvfrom_credentials": lambda d: d.recvfrom(64, credentials=True),
    "recv": lambda d: d.recv(64),
    "recv_fds": lambda d: d.recv_fds(64, 1),
}


@pytest.mark.parametrize("op", sorted(DATAGRAM_RECEIVES))
def test_datagram_receive(backend, op):
    sock = backend.listen("127.0.0.1:0", kind="datagram")
    assert_close_ends(sock, lambda: DATAGRAM_RECEIVES[op](sock))


DATAGRAM_SENDS = {
    "send": lambda d, to: d.send(b"x" * 1024),
    "sendto": lambda d, to: d.sendto(b"x" * 1024, to),
    "send_fds": lambda d, to: d.send_fds(b"x" * 1024, [0]),
}


@pytest.mark.parametrize("op", sorted(DATAGRAM_SENDS))
def test_datagram_send(backend, op):
    receiver = backend.listen("127.0.0.1:0", kind="datagram")
    with receiver:
        sender = backend.connect(receiver.address, kind="datagram")
        sender.settimeout(0)
        with pytest.raises(TimeoutError):
            for _ in range(1_000_000):
                sender.send(b"x" * 1024)
        sender.settimeout(None)
        assert_close_ends(sender, lambda: DATAGRAM_SENDS[op](sender, receiver.address))


def pipe_ends(backend, kind, tmp_path):
    """A reader and a writer of a pipe or of a FIFO (already unlinked)."""
    if kind == "pipe":
        return backend.pipe()
    fifo = backend.FIFO(str(tmp_path / "fifo"), create=True)
    raw = os.open(fifo.path, os.O_RDONLY | os.O_NONBLOCK)
    try:
        writer = fifo.open_writer(timeout=10)
        reader = fifo.open_reader(timeout=10)
    finally:
        os.close(raw)
        fifo.unlink()
    return reader, writer


PIPE_READS = {
    "read": lambda r: r.read(),
    "readinto": lambda r: r.readinto(bytearray(64)),
    "read_exact": lambda r: r.read_exact(64),
    "poll": lambda r: r.poll(None),
}


@pytest.mark.parametrize("kind", ["pipe", "fifo"])
@pytest.mark.parametrize("op", sorted(PIPE_READS))
def test_pipe_read(backend, tmp_path, kind, op):
    reader, writer = pipe_ends(backend, kind, tmp_path)
    with writer:
        assert_close_ends(reader, lambda: PIPE_READS[op](reader))


PIPE_WRITES = {
    "write": lambda w: w.write(b"x" * 4096),
    "write_all": lambda w: w.write_all(bytes(1 << 20)),
}


@pytest.mark.parametrize("kind", ["pipe", "fifo"])
@pytest.mark.parametrize("op", sorted(PIPE_WRITES))
def test_pipe_write(backend, tmp_path, kind, op):
    reader, writer = pipe_ends(backend, kind, tmp_path)
    with reader:
        # Nobody reads: fill the pipe, so that the next write waits for room.
        writer.setblocking(False)
        with pytest.raises(BlockingIOError):
            for _ in range(1_000_000):
                writer.write(b"x" * 4096)
        writer.setblocking(True)
        assert_close_ends(writer, lambda: PIPE_WRITES[op](writer))


def test_message_queue_receive(backend):
    name = "/" + unique("mq")
    queue = backend.MessageQueue(name, create=True)
    try:
        assert_close_ends(queue, queue.receive)
    finally:
        backend.unlink_message_queue(name)


def test_sysv_message_queue_receive(backend, tmp_path):
    keyfile = tmp_path / "key"
    keyfile.touch()
    queue = backend.SysVMessageQueue(path=keyfile, project_id=1, create=True)
    try:
        assert_close_ends(queue, queue.receive)
    finally:
        backend.SysVMessageQueue(path=keyfile, project_id=1).remove()
