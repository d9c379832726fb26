"""fastipc.channel() and fastipc.Channel: a duplex pair of rings in shared memory with the
Connection API, across real processes (fork, spawn, forkserver), with EOF and BrokenPipeError
when the other end closes or is killed, timeouts, Ctrl-C, zero-copy views and reservations, and
named channels."""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import pickle
import select
import signal
import threading
import time

import fastipc
import pytest
from _helpers import wait_blocked_in_futex

#: The promise of the docs: a peer's close or death is noticed within this long.
NOTICE = 0.1


@pytest.fixture(scope="module", autouse=True)
def _helper_processes():
    """multiprocessing's resource tracker and fork server keep descriptors open for the rest of
    the session: started before the leak check of the first test that needs them."""
    import multiprocessing.forkserver
    import multiprocessing.resource_tracker

    multiprocessing.resource_tracker.ensure_running()
    multiprocessing.forkserver.ensure_running()


@pytest.fixture
def mod(backend, backend_name):
    if not hasattr(backend, "channel"):
        pytest.skip(f"the {backend_name} backend has no channel() on this branch")
    return backend


@pytest.fixture
def pair(mod):
    a, b = mod.channel(capacity=64 * 1024)
    yield a, b
    a.close()
    b.close()


def test_bytes_objects_and_into(pair):
    a, b = pair
    a.send_bytes(b"hello")
    a.send_bytes(b"0123456789", 2, 3)
    a.send_bytes(bytearray(b""))
    assert b.recv_bytes() == b"hello"
    assert b.recv_bytes() == b"234"
    assert b.recv_bytes() == b""
    b.send({"k": [1, 2.5, "x"]})
    assert a.recv() == {"k": [1, 2.5, "x"]}
    a.send_bytes(b"abcdef")
    buf = bytearray(10)
    assert b.recv_bytes_into(buf, 2) == 6
    assert bytes(buf) == b"\0\0abcdef\0\0"
    a.send_bytes(b"too long for it")
    with pytest.raises(fastipc.BufferTooShort) as info:
        b.recv_bytes_into(bytearray(4))
    assert info.value.args[0] == b"too long for it"
    a.send_bytes(b"x" * 100)
    with pytest.raises(fastipc.MessageTooLarge):
        b.recv_bytes(maxlength=10)
    assert b.poll() is False
    with pytest.raises(ValueError):
        a.send_bytes(b"abc", 4)
    with pytest.raises(ValueError):
        a.send_bytes(b"abc", 1, 3)


def test_out_of_band_buffers_arrive_intact(pair):
    a, b = pair
    payload = pickle.PickleBuffer(bytearray(range(256)) * 40)
    a.send(["before", payload, "after"])
    got = b.recv()
    assert got[0] == "before" and got[2] == "after"
    assert bytes(got[1]) == bytes(bytearray(range(256)) * 40)


def test_poll_and_timeouts(pair):
    a, b = pair
    assert b.poll() is False
    assert b.poll(0.02) is False
    assert b.gettimeout() is None
    b.settimeout(0.05)
    assert b.gettimeout() == 0.05
    start = time.monotonic()
    with pytest.raises(TimeoutError):
        b.recv_bytes()
    assert time.monotonic() - start >= 0.05
    with pytest.raises(ValueError):
        b.settimeout(-1)
    a.send_bytes(b"x")
    assert b.poll(None) is True
    assert b.recv_bytes() == b"x"


def test_a_full_ring_times_out_and_loses_nothing(mod):
    a, b = mod.channel(capacity=4096)
    with a, b:
        a.settimeout(0.02)
        sent = 0
        with pytest.raises(TimeoutError):
            while True:
                a.send_bytes(sent.to_bytes(4, "little") * 16)
                sent += 1
        assert sent > 10
        got = [int.from_bytes(b.recv_bytes()[:4], "little") for _ in range(sent)]
        assert got == list(range(sent))
        assert b.poll() is False


def test_view_and_reservation(pair):
    a, b = pair
    with a.reserve(5) as view:
        assert len(view) == 5 and not view.readonly
        view[:] = b"hello"
    r = a.reserve(10)
    assert len(r) == 10
    with r as view:
        view[:3] = b"abc"
        r.shrink(3)
    with pytest.raises(RuntimeError), a.reserve(4) as view:
        view[:] = b"lost"
        raise RuntimeError("discarded")
    r = a.reserve(2)
    r.discard()
    r.discard()
    r.commit()  # after discard: nothing
    with pytest.raises(ValueError):
        a.reserve(3).shrink(4)
    mv = b.get_view()
    assert len(mv) == 5
    with mv as view:
        assert view.readonly and bytes(view) == b"hello"
    with pytest.raises(ValueError):
        view[0]
    mv.release()
    with b.get_view(timeout=1) as view:
        assert bytes(view) == b"abc"
    assert b.poll() is False
    with pytest.raises(TimeoutError):
        b.get_view(timeout=0.01)


def _in_thread(fn):
    t = threading.Thread(target=fn)
    t.start()
    t.join()


def test_a_view_or_reservation_ends_in_any_thread(pair):
    """The rings' locks belong to the process, not the thread: another thread may commit a
    reservation or release a view, and the next send and receive go through."""
    a, b = pair
    a.settimeout(5)
    b.settimeout(5)
    r = a.reserve(3)
    view = r.__enter__()
    view[:] = b"one"
    view.release()
    _in_thread(r.commit)
    a.send_bytes(b"two")
    v = b.get_view()
    assert len(v) == 3
    _in_thread(v.release)
    assert b.recv_bytes() == b"two"
    assert b.poll() is False


def test_a_lock_left_by_a_dead_process_is_taken_over(mod, backend_name, names):
    """A lock word naming a process that exited (or no process at all) is taken over by the
    next sender or receiver, which goes on at once (docs/channel.md, "The locks")."""
    import struct

    if backend_name != "rust":
        pytest.skip("the layout of docs/channel.md is the Rust backend's")
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)
    name = names()
    capacity = 4096
    a = mod.Channel.create(name, capacity=capacity)
    b = mod.Channel.open(name)
    shm = fastipc.SharedMemory(name)
    try:
        a.settimeout(5)
        b.settimeout(5)
        ring = 256  # ring 0: a sends, b receives
        for lock_at, owner in ((ring, pid), (ring + 128, 0x7FFF_FFF0)):
            shm.buf[lock_at : lock_at + 4] = struct.pack("<I", owner | 1 << 31)
            shm.buf[lock_at + 8 : lock_at + 16] = struct.pack("<Q", 12345)
        start = time.monotonic()
        a.send_bytes(b"after")
        assert b.recv_bytes() == b"after"
        assert time.monotonic() - start < 1
        assert bytes(shm.buf[ring : ring + 4]) == bytes(4)
        assert bytes(shm.buf[ring + 128 : ring + 132]) == bytes(4)
    finally:
        shm.close()
        a.close()
        b.close()
        a.unlink()


def test_close_gives_eof_after_the_messages_and_broken_pipe(pair):
    a, b = pair
    a.send_bytes(b"one")
    a.send(2)
    a.close()
    assert a.closed
    with pytest.raises(OSError):
        a.send_bytes(b"x")
    assert b.poll() is True
    assert b.recv_bytes() == b"one"
    assert b.recv() == 2
    assert b.poll() is True  # EOF is readiness, as for multiprocessing's Connection
    with pytest.raises(EOFError):
        b.recv_bytes()
    deadline = time.monotonic() + NOTICE
    with pytest.raises(BrokenPipeError):
        while True:
            b.send_bytes(b"into the void")
            assert time.monotonic() < deadline, "send did not notice the closed end"


def _echo(end, other) -> None:
    # A forked child holds a copy of every end alive in its parent, as with multiprocessing's
    # Pipe: it closes the one it does not use, or its parent would never see EOF.
    other.close()
    while True:
        try:
            msg = end.recv_bytes()
        except EOFError:
            return
        end.send_bytes(msg[::-1])


@pytest.mark.parametrize("method", ["fork", "spawn", "forkserver"])
def test_ends_pickle_into_a_process(mod, backend_name, method, monkeypatch):
    monkeypatch.setenv("FASTIPC_BACKEND", backend_name)
    ctx = multiprocessing.get_context(method)
    a, b = mod.channel()
    p = ctx.Process(target=_echo, args=(b, a))
    p.start()
    b.close()
    try:
        for i in range(200):
            msg = f"message {i}".encode() * (i % 7 + 1)
            a.send_bytes(msg)
            assert a.recv_bytes() == msg[::-1]
    finally:
        a.close()
        p.join(10)
    assert p.exitcode == 0
    p.close()


def test_pickling_outside_a_process_is_a_type_error(pair):
    with pytest.raises(TypeError, match=r"multiprocessing\.Process"):
        pickle.dumps(pair[0])


def test_a_forked_child_uses_the_end_it_inherited(mod):
    a, b = mod.channel()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 1
        try:
            a.close()
            b.send_bytes(b"from the child " + b.recv_bytes())
            code = 0
        finally:
            os._exit(code)
    b.close()
    a.send_bytes(b"ping")
    assert a.recv_bytes() == b"from the child ping"
    with pytest.raises(EOFError):
        a.recv_bytes()
    assert os.waitpid(pid, 0)[1] == 0
    a.close()


def test_kill_9_of_the_peer_gives_eof_and_broken_pipe_promptly(mod):
    a, b = mod.channel()
    ready = multiprocessing.get_context("fork").Event()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        a.close()
        b.send_bytes(b"last words")
        ready.set()
        time.sleep(60)
        os._exit(0)
    b.close()
    ready.wait(10)
    assert a.recv_bytes() == b"last words"
    result: list[object] = []

    def blocked_recv() -> None:
        try:
            a.recv_bytes()
        except EOFError:
            result.append(time.monotonic())

    t = threading.Thread(target=blocked_recv)
    t.start()
    time.sleep(0)  # let it block; the kill is measured from here on either way
    killed = time.monotonic()
    os.kill(pid, signal.SIGKILL)
    t.join(5)
    os.waitpid(pid, 0)
    assert result and result[0] - killed < NOTICE
    start = time.monotonic()
    with pytest.raises(BrokenPipeError):
        while True:
            a.send_bytes(b"x")
    assert time.monotonic() - start < NOTICE
    a.close()


def test_ctrl_c_interrupts_a_blocked_receive(mod, names):
    name = names()
    a = mod.Channel.create(name, capacity=4096)
    b = mod.Channel.open(name)
    try:
        main = threading.get_native_id()
        kicked: list[float] = []

        def kick() -> None:
            wait_blocked_in_futex(os.getpid(), main, mapped="/dev/shm/" + name.lstrip("/"))
            kicked.append(time.monotonic())
            os.kill(os.getpid(), signal.SIGINT)

        t = threading.Thread(target=kick)
        t.start()
        with pytest.raises(KeyboardInterrupt):
            b.recv_bytes()
        done = time.monotonic()
        t.join()
        assert done - kicked[0] < NOTICE
        # nothing was lost or half-consumed
        a.send_bytes(b"after")
        assert b.recv_bytes() == b"after"
    finally:
        a.close()
        b.close()
        a.unlink()


def test_named_create_open_and_one_opener(mod, names):
    name = names()
    a = mod.Channel.create(name, capacity=8192)
    assert a.name == name and a.capacity == 8192
    with pytest.raises(FileExistsError):
        mod.Channel.create(name)
    b = mod.Channel.open(name)
    with pytest.raises(FileExistsError, match="one opener"):
        mod.Channel.open(name)
    a.send(("hello", 1))
    assert b.recv() == ("hello", 1)
    b.send_bytes(b"back")
    assert a.recv_bytes() == b"back"
    b.close()
    with pytest.raises(EOFError):
        a.recv_bytes()
    c = mod.Channel.open(name)  # the first opener is gone: a new one may come
    c.send_bytes(b"again")
    assert a.recv_bytes() == b"again"
    c.close()
    a.close()
    a.unlink()
    with pytest.raises(FileNotFoundError):
        mod.Channel.open(name)
    anon, other = mod.channel()
    with pytest.raises(ValueError):
        anon.unlink()
    anon.close()
    other.close()


def test_named_open_of_something_else_is_a_clear_error(mod, names):
    name = names()
    shm = fastipc.SharedMemory(name, create=True, size=65536)
    try:
        with pytest.raises(fastipc.IPCError, match="not a fastipc"):
            mod.Channel.open(name)
    finally:
        shm.close()
        shm.unlink()


def test_fileno_is_readable_when_a_message_waits(pair):
    a, b = pair
    fd = b.fileno()
    assert b.fileno() == fd
    assert select.select([fd], [], [], 0)[0] == []
    a.send_bytes(b"wake")
    assert select.select([fd], [], [], 5)[0] == [fd]
    assert multiprocessing.connection.wait([b], 5) == [b]
    assert b.recv_bytes() == b"wake"
    deadline = time.monotonic() + 5
    while select.select([fd], [], [], 0)[0]:
        assert time.monotonic() < deadline, "still readable after the message was taken"
        time.sleep(0.001)
    assert select.select([a.space_fileno()], [], [], 5)[0] == [a.space_fileno()]


def test_random_bytes_over_the_ring_never_crash(mod, backend_name, names):
    """A hostile peer writing random bytes anywhere in the segment (the headers and the rings'
    lock words included), 100,000 times, while the ends send and receive: valid messages
    (within the ring's bounds) or IPCError("corrupt channel"), a timeout or the end of the
    channel, never a crash, a hang past the timeout or a huge allocation."""
    import random

    name = names()
    capacity = 4096
    a = mod.Channel.create(name, capacity=capacity)
    b = mod.Channel.open(name)
    shm = fastipc.SharedMemory(name)
    rng = random.Random(1234)
    outcomes = {"message": 0, "corrupt": 0, "timeout": 0, "end": 0}
    try:
        a.settimeout(0)
        b.settimeout(0)
        buf = shm.buf
        size = len(buf)
        pristine = bytes(buf)
        for i in range(100_000):
            if i % 16 == 0:  # the peer "repairs" the segment now and then: new states to hit
                buf[:] = pristine
            if rng.random() < 0.5:
                at = rng.randrange(0, size - 8)
                buf[at : at + 8] = rng.randbytes(8)
            with contextlib.suppress(fastipc.IPCError, TimeoutError, BrokenPipeError):
                a.send_bytes(b"payload", 0, rng.randrange(0, 8))
            try:
                got = b.recv_bytes()
                assert len(got) <= capacity
                outcomes["message"] += 1
            except fastipc.IPCError as exc:
                assert "corrupt" in str(exc)
                outcomes["corrupt"] += 1
            except TimeoutError:
                outcomes["timeout"] += 1
            except EOFError:
                outcomes["end"] += 1
        del buf
    finally:
        shm.close()
        a.close()
        b.close()
        a.unlink()
    assert sum(outcomes.values()) == 100_000
    assert outcomes["message"] > 10_000 and outcomes["corrupt"] > 1_000


def test_a_c_peer_through_the_documented_layout(mod, backend_name, names, c_programs):
    """tests/c/ring_peer.c, written from docs/channel.md alone, is the other end of a named
    Channel and takes from one Queue and puts into another."""
    import subprocess

    if backend_name != "rust":
        pytest.skip("the layout of docs/channel.md is the Rust backend's")
    msgs = [bytes(range(n % 256)) * (n // 256 + 1) for n in (0, 1, 7, 300, 5000, 20_000)] * 20
    name = names()
    a = mod.Channel.create(name, capacity=1 << 16)
    try:
        peer = subprocess.Popen([c_programs["ring_peer"], "channel", name, str(len(msgs))])
        for m in msgs:
            a.send_bytes(m)
            assert a.recv_bytes() == m[::-1]
        assert peer.wait(10) == 0
        with pytest.raises(EOFError):
            a.recv_bytes()
    finally:
        a.close()
        a.unlink()
    qin, qout = names(), names()
    q1 = mod.Queue(name=qin, capacity=1 << 16)
    q2 = mod.Queue(name=qout, capacity=1 << 16)
    try:
        peer = subprocess.Popen([c_programs["ring_peer"], "queue", qin, qout, str(len(msgs))])
        for m in msgs:
            q1.put_bytes(m)
        assert [q2.get_bytes(timeout=10) for _ in msgs] == [m[::-1] for m in msgs]
        assert peer.wait(10) == 0
    finally:
        for q in (q1, q2):
            q.close()
            q.unlink()
