"""fastipc.Queue and JoinableQueue on both backends: objects and bytes, the zero-copy forms,
batches, messages larger than the ring, names, pickling into processes of every start method,
many producers and consumers across processes, timeouts and interrupts, crashes, and a forked
child using the queue it inherited."""

from __future__ import annotations

import contextlib
import errno
import multiprocessing
import os
import pickle
import queue
import random
import select
import signal
import stat
import sys
import threading
import time

import fastipc
import pytest
from _helpers import pattern, wait_blocked_in_futex
from fastipc import _registry

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX shared memory")

try:
    import numpy as np
except ImportError:  # pragma: no cover
    np = None

START_METHODS = [
    m for m in ("fork", "spawn", "forkserver") if m in multiprocessing.get_all_start_methods()
]


@pytest.fixture(scope="module", autouse=True)
def _multiprocessing_servers():
    """The resource tracker and the forkserver keep descriptors open for the rest of the
    session: started here, before the per-test leak check takes its first look."""
    from multiprocessing import forkserver, resource_tracker

    resource_tracker.ensure_running()
    if "forkserver" in START_METHODS:
        forkserver.ensure_running()


def reap(p, timeout: float = 60) -> int | None:
    """Join a multiprocessing process and release its descriptors; its exit code."""
    p.join(timeout)
    code = p.exitcode
    if code is None:  # pragma: no cover - reported by the caller's assertion
        p.kill()
        p.join(timeout)
    p.close()
    return code


def shm_path(name: str) -> str:
    return "/dev/shm/" + name.lstrip("/")


def recorded_segments() -> dict[str, _registry.Entry]:
    return {e.name: e for e in _registry.entries() if e.kind == "shm"}


def message(i: int, size: int = 64) -> bytes:
    """``size`` bytes that say which message they are (and let a torn one show)."""
    head = i.to_bytes(8, "little")
    body = bytes((i * 31 + k) & 0xFF for k in range(size - 16))
    return head + body + head


def intact(data: bytes) -> int:
    """The number of a message made by :func:`message`; fails on a torn or foreign one."""
    i = int.from_bytes(data[:8], "little")
    assert data == message(i, len(data)), f"message {i} arrived damaged"
    return i


# ------------------------------------------------------------------------------------------
# objects, bytes, properties


def test_objects_round_trip_in_order(backend):
    items = [1, "two", b"three", {"four": [4.0]}, None, ("six", 6), bytearray(b"seven")]
    with backend.Queue() as q:
        assert q.name is None
        assert q.capacity == 1 << 20
        assert q.maxsize == 0
        assert q.closed is False
        assert q.empty() and q.qsize() == 0 and not q.full()
        for item in items:
            q.put(item)
        assert q.qsize() == len(items) and not q.empty()
        assert [q.get() for _ in items] == items
        assert q.empty()
    assert q.closed


def test_bytes_forms(backend):
    with backend.Queue(capacity=1 << 16) as q:
        q.put_bytes(b"abc")
        q.put_bytes(bytearray(b"defg"))
        q.put_bytes(memoryview(b"xxhijxx")[2:5])
        q.put_bytes(b"")
        assert q.get_bytes() == b"abc"
        assert q.get_bytes() == b"defg"
        buf = bytearray(10)
        assert q.get_bytes_into(buf) == 3
        assert buf[:3] == b"hij"
        assert q.get_bytes() == b""
        q.put_bytes(b"too long for it")
        small = bytearray(4)
        with pytest.raises(fastipc.BufferTooShort) as info:
            q.get_bytes_into(small)
        assert info.value.args[0] == b"too long for it"
        assert q.empty(), "a message too long for the buffer is consumed"


def test_put_bytes_and_get_interoperate_with_pickle(backend):
    with backend.Queue() as q:
        q.put_bytes(pickle.dumps({"a": 1}))
        assert q.get() == {"a": 1}
        q.put_bytes(b"not a pickle")
        with pytest.raises(fastipc.UnpicklingError):
            q.get()
        q.put("still usable")
        assert q.get() == "still usable"


@pytest.mark.skipif(np is None, reason="numpy")
def test_numpy_array_with_out_of_band_buffers(backend):
    arr = np.arange(100_000, dtype=np.float64).reshape(100, 1000)
    with backend.Queue(capacity=1 << 21) as q:
        q.put(arr)
        got = q.get()
        assert got.dtype == arr.dtype and got.shape == arr.shape
        assert np.array_equal(got, arr)
        got[0, 0] = -1.0  # the array owns its memory: writable, apart from the ring
        q.put("next")
        assert q.get() == "next"
        assert got[0, 0] == -1.0


# A received pickle of 64 KiB or more without out-of-band buffers is copied into a buffer the
# receiving thread reuses (Rust backend): what it unpickles must not depend on that buffer, and
# a receive made while unpickling must not overwrite it.

_NESTED: dict[str, object] = {}


def _receive_next() -> object:
    q = _NESTED["queue"]
    return q.get()  # type: ignore[attr-defined]


class _ReceivesNext:
    """Unpickled by receiving the next message of ``_NESTED["queue"]``."""

    def __reduce__(self):
        return (_receive_next, ())


def test_large_objects_received_in_turn_stay_intact(backend):
    payloads = [message(i, 100_000 + 8 * i) for i in range(4)]
    with backend.Queue(capacity=1 << 21) as q:
        got = []
        for p in payloads:
            q.put({"payload": p, "head": p[:16]})
            got.append(q.get())
        q.put(payloads[0][:1000])  # a small one in between
        assert q.get() == payloads[0][:1000]
        assert got == [{"payload": p, "head": p[:16]} for p in payloads]


@pytest.mark.skipif(np is None, reason="numpy")
def test_out_of_band_buffers_outlive_the_next_large_receive(backend):
    arr = np.arange(20_000, dtype=np.float64)
    with backend.Queue(capacity=1 << 21) as q:
        q.put(arr)
        got = q.get()
        q.put(message(7, 160_000))
        assert intact(q.get()) == 7
        assert np.array_equal(got, arr)


def test_a_receive_while_unpickling_gets_its_own_buffer(backend):
    outer, inner = message(1, 100_000), message(2, 200_000)
    with backend.Queue(capacity=1 << 21) as q:
        _NESTED["queue"] = q
        try:
            q.put([_ReceivesNext(), outer])
            q.put(inner)
            assert q.get() == [inner, outer]
        finally:
            _NESTED.clear()


def test_closed_queue(backend):
    q = backend.Queue()
    q.close()
    q.close()
    assert q.closed
    for call in (lambda: q.put(1), q.get_nowait, lambda: q.put_bytes(b"x"), q.qsize):
        with pytest.raises(OSError) as info:
            call()
        assert info.value.errno == errno.EBADF


def test_join_thread_and_cancel_join_thread_do_nothing(backend):
    with backend.Queue() as q:
        q.put(1)
        assert q.join_thread() is None
        assert q.cancel_join_thread() is None
        assert q.get() == 1


def test_bad_arguments(backend):
    with pytest.raises(ValueError):
        backend.Queue(-1)
    with pytest.raises(ValueError):
        backend.Queue(capacity=0)
    with backend.Queue() as q:
        with pytest.raises(ValueError):
            q.unlink()  # an anonymous queue has no name
        with pytest.raises(ValueError):
            q.get_many(0)


# ------------------------------------------------------------------------------------------
# Empty, Full, timeouts


def test_empty_and_timeouts(backend):
    with backend.Queue() as q:
        with pytest.raises(queue.Empty):
            q.get_nowait()
        with pytest.raises(queue.Empty):
            q.get(block=False)
        with pytest.raises(queue.Empty):
            q.get_bytes(timeout=0.01)
        with pytest.raises(queue.Empty):
            q.get_view(timeout=0)
        with pytest.raises(queue.Empty):
            q.get_many(5, timeout=0.01)
        start = time.monotonic()
        with pytest.raises(queue.Empty):
            q.get(timeout=0.2)
        assert time.monotonic() - start >= 0.2
        q.put("after")
        assert q.get(timeout=0) == "after"


def test_maxsize_counts_items(backend):
    with backend.Queue(2) as q:
        assert q.maxsize == 2
        q.put(1)
        q.put_bytes(b"2")
        assert q.full() and q.qsize() == 2
        with pytest.raises(queue.Full):
            q.put_nowait(3)
        with pytest.raises(queue.Full):
            q.put(3, timeout=0.05)
        with pytest.raises(queue.Full):
            q.put_bytes(b"3", block=False)
        assert q.qsize() == 2, "a refused put leaves nothing behind"
        assert q.get() == 1
        assert not q.full()
        q.put(3)
        assert q.get_bytes() == b"2"
        assert q.get() == 3
        assert q.empty()


def test_capacity_in_bytes_fills_up(backend):
    with backend.Queue(capacity=4096) as q:
        assert q.capacity == 4096
        sent = 0
        with pytest.raises(queue.Full):
            while True:
                q.put_bytes(message(sent, 256), block=False)
                sent += 1
                assert sent < 4096 // 256 + 1, "a 4 KiB ring took more than 4 KiB"
        assert sent >= 4096 // (256 + 64) - 1
        assert q.qsize() == sent
        got = [intact(q.get_bytes(timeout=0)) for _ in range(sent)]
        assert got == list(range(sent))
        with pytest.raises(queue.Empty):
            q.get_bytes(block=False)


def test_a_blocked_put_goes_in_when_space_is_freed(backend):
    with backend.Queue(1) as q:
        q.put("first")
        started = threading.Event()
        errors = []

        def producer():
            started.set()
            try:
                q.put("second", timeout=10)
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

        t = threading.Thread(target=producer)
        t.start()
        started.wait(5)
        assert q.get(timeout=10) == "first"
        assert q.get(timeout=10) == "second"
        t.join(10)
        assert not t.is_alive() and errors == []


def test_timeouts_never_lose_or_duplicate(backend):
    """Alternating gets that time out and puts: every message comes out once, in order."""
    with backend.Queue(3) as q:
        out = []
        for i in range(50):
            with pytest.raises(queue.Empty):
                q.get(timeout=0.001)
            q.put(i)
            q.put(i + 1000)
            q.put_bytes(b"x")
            with pytest.raises(queue.Full):
                q.put("never", timeout=0.001)
            out.append(q.get(timeout=5))
            out.append(q.get(timeout=5))
            assert q.get_bytes(timeout=5) == b"x"
        assert out == [v for i in range(50) for v in (i, i + 1000)]
        assert q.empty()


# ------------------------------------------------------------------------------------------
# batches


def test_put_many_and_get_many(backend):
    with backend.Queue() as q:
        assert q.put_many(range(10)) == 10
        assert q.put_many(iter(["a", "b"])) == 2
        assert q.qsize() == 12
        assert q.get_many(4) == [0, 1, 2, 3]
        assert q.get_many(100, timeout=0) == [4, 5, 6, 7, 8, 9, "a", "b"]
        with pytest.raises(queue.Empty):
            q.get_many(3, timeout=0.01)
        assert q.put_many([]) == 0


def test_put_many_says_how_many_went_in(backend):
    with backend.Queue(3) as q:
        q.put("already")
        with pytest.raises(queue.Full) as info:
            q.put_many(["a", "b", "c", "d"], timeout=0.02)
        assert info.value.args[0] == 2
        assert q.get_many(10) == ["already", "a", "b"]


def test_get_many_waits_for_the_first_item(backend):
    with backend.Queue() as q:
        t = threading.Thread(target=lambda: q.put_many([1, 2, 3]))
        got = []
        t.start()
        while len(got) < 3:
            got += q.get_many(3, timeout=10)
        t.join(10)
        assert got == [1, 2, 3]


# ------------------------------------------------------------------------------------------
# zero copy


def test_get_view(backend):
    with backend.Queue() as q:
        q.put_bytes(b"zero copy")
        q.put_bytes(b"second")
        mv = q.get_view()
        assert len(mv) == 9
        with mv as view:
            assert isinstance(view, memoryview)
            assert view.readonly
            assert bytes(view) == b"zero copy"
        with pytest.raises(ValueError):
            view[0]
        mv.release()  # idempotent
        assert q.get_bytes() == b"second"
        assert q.empty()


def test_get_view_released_without_entering(backend):
    with backend.Queue() as q:
        q.put_bytes(b"one")
        q.put_bytes(b"two")
        v = q.get_view(timeout=1)
        assert len(v) == 3
        v.release()
        v.release()
        assert q.get_bytes() == b"two"


def test_reserve_publishes_on_exit(backend):
    with backend.Queue() as q:
        r = q.reserve(5)
        assert len(r) == 5
        with r as view:
            assert isinstance(view, memoryview) and not view.readonly and len(view) == 5
            view[:] = b"hello"
        assert q.get_bytes() == b"hello"
        with q.reserve(3) as view:
            view[:] = b"abc"
        assert q.get_bytes() == b"abc"


def test_reserve_shrink_commit_discard(backend):
    with backend.Queue() as q:
        r = q.reserve(10)
        with r as view:
            view[:4] = b"abcd"
            r.shrink(4)
        assert q.get_bytes() == b"abcd"

        r = q.reserve(8)
        with pytest.raises(ValueError):
            r.shrink(9)
        with pytest.raises(ValueError):
            r.shrink(-1)
        with r as view:
            view[:] = b"12345678"
            r.commit()
            r.commit()
        assert q.get_bytes() == b"12345678"

        with pytest.raises(RuntimeError):
            with q.reserve(3) as view:
                view[:] = b"bad"
                raise RuntimeError("discarded")
        r = q.reserve(3)
        r.discard()
        r.discard()
        with pytest.raises(queue.Empty):
            q.get_bytes(timeout=0)
        q.put_bytes(b"after")
        assert q.get_bytes() == b"after"


def test_reservation_after_commit_cannot_write(backend):
    with backend.Queue() as q:
        with q.reserve(2) as view:
            view[:] = b"ok"
        with pytest.raises(ValueError):
            view[0] = 1
        assert q.get_bytes() == b"ok"


# ------------------------------------------------------------------------------------------
# messages larger than the ring


def test_big_message_travels_in_its_own_segment(backend):
    big = bytes(random.Random(1).randbytes(3 << 20))
    with backend.Queue(capacity=1 << 16) as q:
        before = recorded_segments()
        q.put_bytes(big)
        new = {n: e for n, e in recorded_segments().items() if n not in before}
        assert len(new) == 1, new
        (name,) = new
        assert new[name].pid == os.getpid()
        assert os.stat(shm_path(name)).st_size >= len(big)
        q.put_bytes(b"small after")
        assert q.get_bytes(timeout=5) == big
        assert not os.path.exists(shm_path(name)), "received: its segment is freed"
        assert recorded_segments().keys() == before.keys()
        assert q.get_bytes(timeout=5) == b"small after"


def test_big_objects_views_and_reservations(backend):
    payload = list(range(100_000))
    with backend.Queue(capacity=1 << 16) as q:
        q.put(payload)
        assert q.get(timeout=5) == payload
        q.put_bytes(b"b" * 200_000)
        with q.get_view(timeout=5) as view:
            assert len(view) == 200_000 and bytes(view) == b"b" * 200_000
        with q.reserve(300_000) as view:
            view[:] = b"r" * 300_000
        assert q.get_bytes(timeout=5) == b"r" * 300_000
        assert q.put_many([b"m" * 100_000, "x"]) == 2
        assert q.get_many(5, timeout=5) == [b"m" * 100_000, "x"]
        assert q.empty()


def test_big_message_of_a_dead_producer_is_cleaned(backend, names, spawn):
    name = names()
    with backend.Queue(capacity=1 << 16, name=name) as q:
        try:
            child = spawn(
                """
                q = B.Queue.open(ARGS["name"])
                q.put_bytes(b"z" * 500_000)
                q.close()
                report(done=True)
                """,
                args={"name": name},
            )
            assert child.expect("done") == {"done": True}
            child.finish()
            theirs = [e for e in recorded_segments().values() if e.pid == child.pid]
            assert len(theirs) == 1 and os.path.exists(shm_path(theirs[0].name))
            cleaned = _registry.clean()
            assert theirs[0].name in {e.name for e in cleaned}
            assert not os.path.exists(shm_path(theirs[0].name))
        finally:
            q.unlink()


# ------------------------------------------------------------------------------------------
# names


def test_named_queue_mode_exclusive_and_open(backend, names):
    name = names()
    q = backend.Queue(name=name, mode=0o640, capacity=1 << 16)
    try:
        assert q.name == name
        st = os.stat(shm_path(name))
        assert stat.S_IMODE(st.st_mode) == 0o640
        assert name in recorded_segments()
        with pytest.raises(FileExistsError):
            backend.Queue(name=name)
        other = backend.Queue.open(name)
        try:
            assert other.name == name and other.capacity == 1 << 16
            q.put("from the creator")
            assert other.get(timeout=5) == "from the creator"
            other.put_bytes(b"from the opener")
            assert q.get_bytes(timeout=5) == b"from the opener"
        finally:
            other.close()
    finally:
        q.close()
        q.unlink()
    assert not os.path.exists(shm_path(name))
    assert name not in recorded_segments()
    with pytest.raises(FileNotFoundError):
        backend.Queue.open(name)


def test_named_queue_maxsize_is_the_creators(backend, names):
    name = names()
    with backend.Queue(2, name=name) as q:
        try:
            with backend.Queue.open(name) as other:
                assert other.maxsize == 2
                other.put(1)
                other.put(2)
                with pytest.raises(queue.Full):
                    other.put(3, block=False)
                assert q.full()
        finally:
            q.unlink()


def test_named_queue_across_processes(backend, names, spawn):
    name = names()
    with backend.Queue(name=name) as q:
        try:
            child = spawn(
                """
                q = B.Queue.open(ARGS["name"])
                for i in range(200):
                    q.put(("child", i))
                q.put_bytes(pattern(100_000))
                wait_parent()
                report(got=q.get(timeout=30))
                q.close()
                """,
                args={"name": name},
            )
            assert [q.get(timeout=30) for _ in range(200)] == [("child", i) for i in range(200)]
            assert q.get_bytes(timeout=30) == pattern(100_000)
            q.put({"parent": True})
            child.send(go=True)
            assert child.expect("got") == {"got": {"parent": True}}
            child.finish()
        finally:
            q.unlink()


def test_not_a_queue_is_a_clear_error(backend, names):
    name = names()
    seg = backend.SharedMemory(name, create=True, size=1 << 16)
    try:
        seg.buf[:] = bytes(random.Random(7).randbytes(1 << 16))
        with pytest.raises(fastipc.IPCError, match="not a fastipc queue"):
            backend.Queue.open(name)
        seg.buf[:] = bytes(1 << 16)
        with pytest.raises(fastipc.IPCError, match="not a fastipc queue"):
            backend.Queue.open(name)
    finally:
        seg.close()
        seg.unlink()


def test_tiny_segment_is_a_clear_error(backend, names):
    name = names()
    seg = backend.SharedMemory(name, create=True, size=8)
    try:
        with pytest.raises(fastipc.IPCError, match="not a fastipc queue"):
            backend.Queue.open(name)
    finally:
        seg.close()
        seg.unlink()


def test_the_other_backends_queue_is_refused(both_backends, names):
    """The backends do not share a layout: each refuses the other's queue with a clear error
    (never a misread)."""
    for maker, opener in (both_backends, both_backends[::-1]):
        name = names()
        with maker.Queue(name=name) as q:
            try:
                with pytest.raises(fastipc.IPCError, match=r"not a fastipc queue|layout"):
                    opener.Queue.open(name)
            finally:
                q.unlink()


# ------------------------------------------------------------------------------------------
# processes


def _echo_worker(q_in, q_out) -> None:
    while True:
        item = q_in.get(timeout=60)
        if item is None:
            break
        q_out.put((os.getpid(), item * 2))
    q_out.put_bytes(b"bye")


@pytest.mark.parametrize("method", START_METHODS)
def test_anonymous_queue_pickles_into_a_process(backend, method):
    ctx = multiprocessing.get_context(method)
    with backend.Queue() as q_in, backend.Queue() as q_out:
        p = ctx.Process(target=_echo_worker, args=(q_in, q_out))
        p.start()
        try:
            for i in range(100):
                q_in.put(i)
            q_in.put(None)
            got = [q_out.get(timeout=60) for _ in range(100)]
            assert [v for _, v in got] == [i * 2 for i in range(100)]
            assert {pid for pid, _ in got} == {p.pid}
            assert q_out.get_bytes(timeout=60) == b"bye"
        finally:
            code = reap(p)
        assert code == 0


@pytest.mark.parametrize("method", START_METHODS)
def test_joinable_queue_pickles_into_a_process(backend, method):
    ctx = multiprocessing.get_context(method)
    with backend.JoinableQueue() as q:
        p = ctx.Process(target=_done_worker, args=(q, 20))
        p.start()
        try:
            for i in range(20):
                q.put(i)
            assert q.join(timeout=60) is True
        finally:
            code = reap(p)
        assert code == 0


def _done_worker(q, n: int) -> None:
    for _ in range(n):
        q.get(timeout=60)
        q.task_done()


def test_anonymous_queue_does_not_pickle_outside_a_process(backend):
    with backend.Queue() as q:
        with pytest.raises(TypeError):
            pickle.dumps(q)


def _producer(q, start: int, count: int) -> None:
    for i in range(start, start + count):
        if i % 3 == 0:
            q.put_bytes(pickle.dumps(message(i, 64 + i % 200)))
        else:
            q.put(message(i, 32 + i % 100))


def _consumer(q, results) -> None:
    got = []
    while True:
        item = q.get(timeout=60)
        if item is None:
            break
        got.append(intact(item if isinstance(item, bytes) else bytes(item)))
    results.put(got)


def test_many_producers_and_consumers_exactly_once(backend):
    """3 producer and 3 consumer processes on a small ring: every message arrives once, whole,
    and each producer's messages in the order it put them."""
    ctx = multiprocessing.get_context("fork")
    per = 400
    with backend.Queue(capacity=1 << 13) as q, backend.Queue() as results:
        producers = [ctx.Process(target=_producer, args=(q, k * per, per)) for k in range(3)]
        consumers = [ctx.Process(target=_consumer, args=(q, results)) for _ in range(3)]
        for p in producers + consumers:
            p.start()
        try:
            assert [reap(p, 120) for p in producers] == [0, 0, 0]
            for _ in consumers:
                q.put(None)
            lists = [results.get(timeout=120) for _ in consumers]
        finally:
            codes = [reap(p) for p in consumers]
        assert codes == [0, 0, 0]
        everything = sorted(i for got in lists for i in got)
        assert everything == list(range(3 * per))
        for got in lists:
            for k in range(3):
                mine = [i for i in got if k * per <= i < (k + 1) * per]
                assert mine == sorted(mine), "one producer's messages arrive in order"


def test_forked_child_uses_the_inherited_queue(backend):
    with backend.Queue() as to_child, backend.Queue() as to_parent:
        to_child.put("ping")
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child
            code = 1
            try:
                item = to_child.get(timeout=30)
                to_parent.put(("pong", item, os.getpid()))
                with to_child.reserve(4) as view:
                    view[:] = b"view"
                code = 0
            finally:
                os._exit(code)
        try:
            assert to_parent.get(timeout=30) == ("pong", "ping", pid)
            assert to_child.get_bytes(timeout=30) == b"view"
        finally:
            _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0


# ------------------------------------------------------------------------------------------
# JoinableQueue


def test_joinable_queue_counts_unfinished_tasks(backend):
    with backend.JoinableQueue() as q:
        assert isinstance(q, backend.Queue)
        assert q.join(timeout=0) is True
        q.put(1)
        q.put_bytes(b"2")
        assert q.join(timeout=0.02) is False
        q.get()
        q.task_done()
        assert q.join(timeout=0.02) is False
        q.get_bytes()
        q.task_done()
        assert q.join(timeout=1) is True
        with pytest.raises(ValueError):
            q.task_done()


def test_join_waits_for_another_thread(backend):
    with backend.JoinableQueue() as q:
        q.put_many(range(5))

        def worker():
            for _ in range(5):
                q.get(timeout=10)
                q.task_done()

        t = threading.Thread(target=worker)
        t.start()
        assert q.join(timeout=30) is True
        t.join(10)
        assert q.qsize() == 0


# ------------------------------------------------------------------------------------------
# readiness descriptors


def test_fileno_polls_readable_when_a_message_waits(backend):
    with backend.Queue(1) as q:
        fd = q.fileno()
        assert fd == q.fileno(), "one descriptor per queue handle"
        t = threading.Thread(target=lambda: q.put("x"))
        t.start()
        readable, _, _ = select.select([fd], [], [], 30)
        t.join(10)
        assert readable == [fd]
        assert q.get_nowait() == "x"
        space = q.space_fileno()
        _, _, _ = select.select([space], [], [], 0)
        q.put("full now")
        t = threading.Thread(target=q.get)
        t.start()
        readable, _, _ = select.select([space], [], [], 30)
        t.join(10)
        assert readable == [space]
        q.put_nowait("fits again")
        assert q.get_nowait() == "fits again"


# ------------------------------------------------------------------------------------------
# interrupts and crashes


def test_ctrl_c_interrupts_a_blocked_get_and_loses_nothing(backend, names, spawn):
    name = names()
    with backend.Queue(name=name) as q:
        try:
            child = spawn(
                """
                import time
                q = B.Queue.open(ARGS["name"])
                report(waiting=True)
                try:
                    q.get()
                    report(outcome="returned")
                except KeyboardInterrupt:
                    report(outcome="interrupted", at=time.monotonic())
                report(after=q.get(timeout=30))
                q.close()
                """,
                args={"name": name},
            )
            child.expect("waiting")
            wait_blocked_in_futex(child.pid, mapped=shm_path(name), timeout=30)
            sent = time.monotonic()
            child.kill(signal.SIGINT)
            result = child.expect("outcome")
            assert result["outcome"] == "interrupted"
            assert result["at"] - sent < 1.0
            q.put("kept")
            assert child.expect("after") == {"after": "kept"}
            child.finish()
            assert q.empty()
        finally:
            q.unlink()


def test_killed_producers_never_deliver_half_a_message(backend, names, spawn):
    """Producers killed with SIGKILL at random points: every message that arrives is whole, and
    the queue keeps working for everyone else."""
    name = names()
    rng = random.Random(3)
    with backend.Queue(name=name, capacity=1 << 14) as q:
        try:
            for round_ in range(4):
                child = spawn(
                    """
                    q = B.Queue.open(ARGS["name"])
                    i = ARGS["base"]
                    report(started=True)
                    while True:
                        data = (i.to_bytes(8, "little")
                                + bytes((i * 31 + k) & 0xFF for k in range(ARGS["size"] - 16))
                                + i.to_bytes(8, "little"))
                        q.put_bytes(data)
                        i += 1
                    """,
                    args={"name": name, "base": round_ * 1_000_000, "size": 1000 + round_ * 700},
                )
                child.expect("started")
                # let it run into a full ring and wait there, or die mid-put
                deadline = time.monotonic() + rng.random() * 0.05
                while time.monotonic() < deadline:
                    pass
                child.kill()
                child.wait_dead()
                seen = []
                while True:
                    try:
                        seen.append(intact(q.get_bytes(timeout=0)))
                    except queue.Empty:
                        break
                base = round_ * 1_000_000
                assert seen == list(range(base, base + len(seen)))
            q.put_bytes(b"still works")
            assert q.get_bytes(timeout=5) == b"still works"
        finally:
            q.unlink()


def test_hostile_bytes_over_the_segment_never_crash_a_reader(backend, backend_name, names):
    """Random bytes written over a named queue's segment, 20,000 times, while it is used:
    ``get_bytes`` and ``get_view`` give messages within the ring's bounds, ``IPCError("corrupt
    channel ...")`` or ``queue.Empty``; nothing else, no hang past the timeout, no crash. The
    pure-Python backend's whole segment is fair game but its identification; for the Rust
    backend the ring's bytes (the end of the segment), whose robust mutexes are trusted
    (``tests/test_channel.py`` corrupts its indices)."""
    name = names()
    rng = random.Random(11)
    capacity = 1 << 12
    outcomes = {"message": 0, "corrupt": 0, "empty": 0}
    with backend.Queue(name=name, capacity=capacity) as q:
        try:
            with backend.SharedMemory(name) as seg:
                buf = seg.buf
                size = len(buf)
                low = 8 if backend_name == "python" else size - capacity
                pristine = bytes(buf)
                for i in range(20_000):
                    if i % 16 == 0:  # repaired now and then: new states to hit
                        buf[low:] = pristine[low:]
                    with contextlib.suppress(queue.Full, fastipc.IPCError):
                        q.put_bytes(b"m" * rng.randrange(0, 300), block=False)
                    at = rng.randrange(low, size - 8)
                    buf[at : at + 8] = rng.randbytes(8)
                    start = time.monotonic()
                    try:
                        if i % 2:
                            assert len(q.get_bytes(timeout=0)) <= capacity
                        else:
                            with q.get_view(timeout=0) as view:
                                assert len(view) <= capacity
                        outcomes["message"] += 1
                    except fastipc.IPCError as exc:
                        assert "corrupt" in str(exc)
                        outcomes["corrupt"] += 1
                    except queue.Empty:
                        outcomes["empty"] += 1
                    assert time.monotonic() - start < 5
                del buf
        finally:
            q.close()
            q.unlink()
    assert sum(outcomes.values()) == 20_000
    assert outcomes["message"] >= 100 and outcomes["corrupt"] >= 100, outcomes


def test_a_consumer_killed_holding_a_view_loses_nothing(backend, names, spawn):
    """A consumer SIGKILLed while it holds a message in place: the others go on, and the
    message, never released, is delivered again."""
    name = names()
    with backend.Queue(name=name, capacity=1 << 14) as q:
        try:
            q.put_bytes(b"held by the victim")
            q.put_bytes(b"second")
            child = spawn(
                """
                q = B.Queue.open(ARGS["name"])
                view = q.get_view(timeout=30)
                with view as mv:
                    report(holding=bytes(mv).decode())
                    wait_parent()
                """,
                args={"name": name},
            )
            assert child.expect("holding") == {"holding": "held by the victim"}
            child.kill()
            child.wait_dead()
            assert q.get_bytes(timeout=30) == b"held by the victim"
            assert q.get_bytes(timeout=30) == b"second"
            q.put_bytes(b"after")
            assert q.get_bytes(timeout=5) == b"after"
        finally:
            q.unlink()


def test_a_producer_killed_holding_a_reservation_delivers_nothing(backend, names, spawn):
    name = names()
    with backend.Queue(name=name, capacity=1 << 14) as q:
        try:
            child = spawn(
                """
                q = B.Queue.open(ARGS["name"])
                r = q.reserve(100, timeout=30)
                with r as mv:
                    mv[:50] = b"h" * 50
                    report(reserved=True)
                    wait_parent()
                """,
                args={"name": name},
            )
            assert child.expect("reserved") == {"reserved": True}
            child.kill()
            child.wait_dead()
            with pytest.raises(queue.Empty):
                q.get_bytes(timeout=0.05)
            q.put_bytes(b"next producer")
            assert q.get_bytes(timeout=5) == b"next producer"
            assert q.empty()
        finally:
            q.unlink()


def test_ctrl_c_interrupts_a_blocked_put(backend, names, spawn):
    name = names()
    with backend.Queue(1, name=name) as q:
        try:
            q.put("fills it")
            child = spawn(
                """
                q = B.Queue.open(ARGS["name"])
                report(waiting=True)
                try:
                    q.put("refused")
                    report(outcome="returned")
                except KeyboardInterrupt:
                    report(outcome="interrupted")
                q.close()
                """,
                args={"name": name},
            )
            child.expect("waiting")
            wait_blocked_in_futex(child.pid, mapped=shm_path(name), timeout=30)
            child.kill(signal.SIGINT)
            assert child.expect("outcome") == {"outcome": "interrupted"}
            child.finish()
            assert q.get(timeout=5) == "fills it"
            assert q.empty(), "the interrupted put left nothing behind"
        finally:
            q.unlink()


def test_close_from_another_thread_ends_a_blocked_get(backend):
    q = backend.Queue()
    started = threading.Event()
    outcome = []

    def getter():
        started.set()
        try:
            q.get(timeout=5)
        except OSError as exc:
            outcome.append(exc.errno)
        except queue.Empty:
            outcome.append("the get ran into its timeout: close() did not end it")

    t = threading.Thread(target=getter)
    t.start()
    started.wait(5)
    q.close()
    t.join(20)  # past the get's own timeout: a failure here leaves no thread behind
    assert not t.is_alive()
    assert outcome == [errno.EBADF]


def test_close_refuses_while_a_view_is_held(backend):
    q = backend.Queue()
    q.put_bytes(b"held")
    view = q.get_view(timeout=5)
    with pytest.raises(BufferError):
        q.close()
    view.release()
    q.close()
    assert q.closed
