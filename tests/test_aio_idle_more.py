"""The idle wait of the other ``fastipc.aio`` receives: shared-memory queue and channel gets,
pipe reads, datagram receives and message-queue receives.

They wait as a ``Connection`` receive does (``tests/test_aio_idle.py``, whose helpers these
tests use): on asyncio's own loop with nothing else to do, in a ``poll`` of their descriptor and
the loop's epoll descriptor, and anything else for the loop to do ends that wait at once.
``IDLE_MAX`` is raised to 30 s here, and for the shared-memory calls the slice after which they
look again without a report (``SLICE``) too, except where that slice is what is tested (a peer
that dies wakes no descriptor): a loop held up by the idle wait fails the test (``GUARD``).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import queue
import signal
import sys

import fastipc
import pytest
from _classic import unique
from fastipc.aio import _ready, _shm
from test_aio_idle import GUARD, LONG_IDLE, bounded, ctrl_c_ends_idle_wait, when_waiting

linux_only = pytest.mark.skipif(sys.platform != "linux", reason="Linux only")


@pytest.fixture
def long_idle(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_ready, "IDLE_MAX", LONG_IDLE)


@pytest.fixture
def long_slice(monkeypatch: pytest.MonkeyPatch, long_idle: None) -> None:
    """The shared-memory calls look again without a report only every 30 s."""
    monkeypatch.setattr(_shm, "SLICE", LONG_IDLE)


# -- shared-memory Queue ---------------------------------------------------------------------


def test_queue_get_timer_fires_during_idle_wait(aio, run, long_slice):
    async def main() -> list[object]:
        async with aio.Queue() as q:
            order: list[object] = []

            async def later() -> None:
                await asyncio.sleep(0.01)
                order.append("timer")
                q.queue.put("put after the timer")

            task = asyncio.create_task(later())
            await asyncio.sleep(0)  # its timer is set; nothing else is ready
            order.append(await q.get())
            await task
            return order

    assert run(bounded(main())) == ["timer", "put after the timer"]


def test_queue_get_other_descriptor_served_during_idle_wait(
    aio, backend, run, loop_name, long_slice
):
    async def main() -> list[object]:
        peer, mine = backend.socketpair()
        other = aio.Connection.from_connection(mine)
        async with aio.Queue() as q:
            with peer, other:
                order: list[object] = []

                async def second() -> None:
                    got = await other.recv_bytes()
                    order.append(got)
                    q.queue.put_bytes(b"after " + got)

                task = asyncio.create_task(second())
                await asyncio.sleep(0)  # it waits on the loop for its descriptor
                with when_waiting(loop_name, lambda: peer.send_bytes(b"the other")):
                    order.append(await q.get_bytes())
                await task
                return order

    assert run(bounded(main())) == [b"the other", b"after the other"]


def test_queue_get_from_another_thread_during_idle_wait(aio, run, loop_name, long_slice):
    """The message itself ends the idle wait (on asyncio, the loop's thread is seen in it). A
    queue each: after a get, the queue's descriptor may stay readable a moment (its thread has
    yet to see the ring empty), and the next get may wait in the loop once meanwhile."""

    async def main() -> list[object]:
        got: list[object] = []
        async with aio.Queue() as q:
            with when_waiting(loop_name, lambda: q.queue.put({"n": 1})):
                got.append(await q.get())
        async with aio.Queue() as q:
            with when_waiting(loop_name, lambda: q.queue.put_bytes(b"bytes")):
                got.append(await q.get_bytes())
        async with aio.Queue() as q:
            with when_waiting(loop_name, lambda: q.queue.put(2)):
                got.append(await q.get_many(10))  # (a put_many would race with it)
        return got

    assert run(bounded(main())) == [{"n": 1}, b"bytes", [2]]


def test_queue_get_timeout_during_idle_wait(aio, run, long_slice):
    """A timeout ends an idle get on time (``timeout=`` and ``asyncio.timeout()``), and nothing
    put afterwards is lost."""

    async def main() -> tuple[float, float, list[object], int]:
        loop = asyncio.get_running_loop()
        async with aio.Queue() as q:
            start = loop.time()
            with pytest.raises(queue.Empty):
                await q.get(timeout=0.05)
            by_argument = loop.time() - start
            start = loop.time()
            with pytest.raises(TimeoutError):
                async with asyncio.timeout(0.05):
                    await q.get_bytes()
            by_timer = loop.time() - start
            q.queue.put("first")
            q.queue.put_bytes(b"second")
            got = [await q.get(), await q.get_bytes()]
            return by_argument, by_timer, got, q.qsize()

    by_argument, by_timer, got, left = run(bounded(main()))
    assert 0.04 < by_argument < 1.0, f"queue.Empty after {by_argument * 1000:.0f} ms, not 50"
    assert 0.04 < by_timer < 1.0, f"TimeoutError after {by_timer * 1000:.0f} ms, not 50"
    assert got == ["first", b"second"]
    assert left == 0


def test_queue_put_waits_in_the_loop(aio, run, long_slice):
    """A put waiting for room has no idle wait: the loop's thread sleeps in the loop's own
    wait (epoll_wait), and the put goes once a get from another thread made room."""

    async def main() -> list[object]:
        async with aio.Queue(1) as q:
            await q.put("first")
            taken: list[object] = []
            # The loop's own wait (epoll_wait), whatever the loop.
            with when_waiting("uvloop", lambda: taken.append(q.queue.get())):
                await q.put("second")
            return [*taken, await q.get()]

    assert run(bounded(main())) == ["first", "second"]


CHANNEL_PEER = """
ch = fastipc.Channel.open(ARGS["name"])
ch.send_bytes(b"hello")
report(ready=True)
wait_parent()
"""


def test_channel_peer_killed_during_idle_wait(aio, run, loop_name, spawn, names, long_idle):
    """A peer killed while a receive waits idle (IDLE_MAX 30 s, the slice as shipped): EOFError
    within the slice, not when the idle wait would end."""
    name = names()

    async def main() -> tuple[type[BaseException] | None, float]:
        loop = asyncio.get_running_loop()
        async with aio.Channel.create(name) as end:
            child = spawn(CHANNEL_PEER, args={"name": name})
            child.expect("ready")
            end.unlink()
            assert await end.recv_bytes(timeout=30) == b"hello"
            killed: list[float] = []

            def kill() -> None:
                child.proc.send_signal(signal.SIGKILL)
                child.proc.wait(30)
                killed.append(loop.time())

            try:
                with when_waiting(loop_name, kill):
                    await end.recv_bytes()
            except EOFError as exc:
                return type(exc), loop.time() - killed[0]
            return None, loop.time() - killed[0]

    error, delay = run(bounded(main()))
    assert error is EOFError
    assert delay < GUARD / 5, f"EOFError {delay * 1000:.0f} ms after the peer died"


# -- pipes -----------------------------------------------------------------------------------


def test_pipe_read_during_idle_wait(aio, backend, run, loop_name, long_idle):
    """A pipe read waits idle: the bytes end it; so does a timer, and another descriptor,
    whose callback writes what the read gets."""

    async def main() -> list[object]:
        reader, writer = aio.pipe()
        peer, mine = backend.socketpair()
        other = aio.Connection.from_connection(mine)
        async with reader, writer:
            with peer, other:
                order: list[object] = []
                with when_waiting(loop_name, lambda: os.write(writer.fileno(), b"direct")):
                    order.append(await reader.read())

                async def later() -> None:
                    await asyncio.sleep(0.01)
                    order.append("timer")
                    await writer.write(b"after the timer")

                task = asyncio.create_task(later())
                await asyncio.sleep(0)
                order.append(await reader.read())
                await task

                async def second() -> None:
                    got = await other.recv_bytes()
                    order.append(got)
                    await writer.write_all(b"after " + got)

                task = asyncio.create_task(second())
                await asyncio.sleep(0)
                with when_waiting(loop_name, lambda: peer.send_bytes(b"the other")):
                    order.append(await reader.read_exact(len(b"after the other")))
                await task
                return order

    assert run(bounded(main())) == [
        b"direct",
        "timer",
        b"after the timer",
        b"the other",
        b"after the other",
    ]


def test_pipe_read_exact_in_pieces_during_idle_wait(aio, run, loop_name, long_idle):
    """read_exact waits idle for each piece; cancelled by a timeout meanwhile it keeps the bytes
    it had for the next read."""

    async def main() -> tuple[bytes, bytes]:
        reader, writer = aio.pipe()
        async with reader, writer:
            with when_waiting(loop_name, lambda: os.write(writer.fileno(), b"abc")):
                with pytest.raises(TimeoutError):
                    async with asyncio.timeout(0.2):
                        await reader.read_exact(6)
            with when_waiting(loop_name, lambda: os.write(writer.fileno(), b"defgh")):
                whole = await reader.read_exact(6)
            return whole, await reader.read()

    assert run(bounded(main())) == (b"abcdef", b"gh")


# -- datagrams and message queues ------------------------------------------------------------


def test_datagram_receive_during_idle_wait(aio, backend, run, loop_name, long_idle):
    async def main() -> list[object]:
        a, b = aio.socketpair("datagram")
        peer, mine = backend.socketpair()
        other = aio.Connection.from_connection(mine)
        async with a, b:
            with peer, other:
                order: list[object] = []
                blocking = a.detach()
                with when_waiting(loop_name, lambda: blocking.send(b"direct")):
                    order.append(await b.recv(100))

                async def second() -> None:
                    got = await other.recv_bytes()
                    order.append(got)
                    blocking.send(b"after " + got)

                task = asyncio.create_task(second())
                await asyncio.sleep(0)
                with when_waiting(loop_name, lambda: peer.send_bytes(b"the other")):
                    order.append((await b.recvfrom(100))[0])
                await task
                loop = asyncio.get_running_loop()
                start = loop.time()
                with pytest.raises(TimeoutError):
                    async with asyncio.timeout(0.05):
                        await b.recv(100)
                elapsed = loop.time() - start
                blocking.send(b"the next")
                order.append(await b.recv(100))
                blocking.close()
                return [*order, 0.04 < elapsed < 1.0]

    assert run(bounded(main())) == [b"direct", b"the other", b"after the other", b"the next", True]


@linux_only
def test_message_queue_receive_during_idle_wait(aio, run, loop_name, long_idle):
    name = "/" + unique("aioidle")

    async def main() -> list[object]:
        q = aio.MessageQueue(name, create=True, max_messages=2, max_message_size=64)
        sender = fastipc.MessageQueue(name)
        try:
            async with q:
                with sender, when_waiting(loop_name, lambda: sender.send(b"direct", 3)):
                    return [await q.receive()]
        finally:
            with contextlib.suppress(FileNotFoundError):
                fastipc.unlink_message_queue(name)

    assert run(bounded(main())) == [(b"direct", 3)]


def test_ctrl_c_during_queue_idle_wait(backend, loop_name, spawn):
    """Ctrl-C while ``Queue.get`` waits idle (the idle bound and the slice 30 s there)."""
    body = """
    async with aio.Queue() as q:
        report(blocking=1, tid=threading.get_native_id())
        await q.get()
"""
    ctrl_c_ends_idle_wait(spawn, loop_name, body)
