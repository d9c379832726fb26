"""fastipc.aio's shared-memory Queue, JoinableQueue and Channel: awaited on both loops and both
backends, against blocking peers in other processes, with exact results."""

from __future__ import annotations

import asyncio
import errno
import queue
import random
import signal

import pytest


def test_queue_items_from_another_process(aio, run, spawn, names):
    name = names()

    async def main() -> list[object]:
        async with aio.Queue(name=name) as q:
            child = spawn(
                """
                q = fastipc.Queue.open(ARGS["name"])
                for i in range(300):
                    q.put({"i": i, "pad": b"x" * (i * 7)})
                q.put_bytes(b"\\xff" * 5000)
                q.close()
                report(done=True)
                """,
                args={"name": name},
            )
            got = [await q.get(timeout=30) for _ in range(300)]
            got.append(await q.get_bytes(timeout=30))
            assert child.expect("done") == {"done": True}
            child.finish()
            q.queue.unlink()
            return got

    got = run(main())
    assert got[:300] == [{"i": i, "pad": b"x" * (i * 7)} for i in range(300)]
    assert got[300] == b"\xff" * 5000


def test_queue_put_waits_for_space_without_blocking_the_loop(aio, run):
    async def main() -> list[int]:
        async with aio.Queue(maxsize=2) as q:
            taken: list[int] = []

            async def consumer() -> None:
                for _ in range(50):
                    taken.append(await q.get(timeout=30))

            task = asyncio.ensure_future(consumer())
            for i in range(50):  # the third put waits until the consumer task took one
                await q.put(i, timeout=30)
            await asyncio.wait_for(task, 30)
            return taken

    assert run(main()) == list(range(50))


def test_queue_timeouts_and_cancellation_lose_nothing(aio, run):
    async def main() -> tuple[object, ...]:
        async with aio.Queue() as q:
            with pytest.raises(queue.Empty):
                await q.get(timeout=0.01)
            with pytest.raises(TimeoutError):
                async with asyncio.timeout(0.01):
                    await q.get()
            waiting = asyncio.ensure_future(q.get())
            await asyncio.sleep(0)
            waiting.cancel()
            with pytest.raises(asyncio.CancelledError):
                await waiting
            q.put_nowait("kept")
            return await q.get(timeout=5), q.qsize()

    assert run(main()) == ("kept", 0)


def test_queue_views_reservations_and_batches(aio, run):
    async def main() -> tuple[object, ...]:
        async with aio.Queue(capacity=4096) as q:
            reservation = await q.reserve(5, timeout=5)
            with reservation as memory:
                memory[:] = b"hello"
            view = await q.get_view(timeout=5)
            with view as memory:
                seen = bytes(memory)
            assert await q.put_many(range(10), timeout=5) == 10
            batch = await q.get_many(4, timeout=5)
            rest = await q.get_many(100, timeout=5)
            buffer = bytearray(16)
            await q.put_bytes(b"into", timeout=5)
            n = await q.get_bytes_into(buffer, timeout=5)
            return seen, batch, rest, bytes(buffer[:n])

    assert run(main()) == (b"hello", [0, 1, 2, 3], [4, 5, 6, 7, 8, 9], b"into")


def test_put_many_timeout_bounds_the_call_and_counts(aio, run):
    async def main() -> tuple[object, ...]:
        async with aio.Queue(maxsize=3) as q:
            with pytest.raises(queue.Full) as info:
                await q.put_many(range(10), timeout=0.05)
            return info.value.args, q.qsize()

    assert run(main()) == ((3,), 3)


def test_close_ends_a_waiting_get(aio, run):
    async def main() -> int | None:
        q = aio.Queue()
        waiting = asyncio.ensure_future(q.get())
        await asyncio.sleep(0.01)
        q.close()
        try:
            await asyncio.wait_for(waiting, 5)
        except OSError as exc:
            return exc.errno
        return None

    assert run(main()) == errno.EBADF


def test_joinable_queue_join_waits_for_task_done(aio, run, spawn, names):
    name = names()

    async def main() -> bool:
        async with aio.JoinableQueue(name=name) as q:
            for i in range(20):
                await q.put(i)
            child = spawn(
                """
                q = fastipc.JoinableQueue.open(ARGS["name"])
                for _ in range(20):
                    q.get(timeout=30)
                    q.task_done()
                q.close()
                report(done=True)
                """,
                args={"name": name},
            )
            done = await q.join(timeout=30)
            child.expect("done")
            child.finish()
            q.queue.unlink()
            return done

    assert run(main()) is True


ECHO = """
ch = fastipc.Channel.open(ARGS["name"])
report(ready=True)
while True:
    try:
        data = ch.recv_bytes()
    except EOFError:
        break
    ch.send_bytes(data[::-1])
ch.close()
"""


def test_channel_echo_across_processes_then_eof(aio, run, spawn, names):
    name = names()
    rng = random.Random(7)
    sizes = [rng.choice([0, 1, 64, 4096, 70_000, 300_000]) for _ in range(60)]

    async def main() -> list[bytes]:
        end = aio.Channel.create(name, capacity=1 << 16)
        try:
            child = spawn(ECHO, args={"name": name})
            child.expect("ready")
            end.unlink()  # both ends are open: the name is not needed any more
            replies = []
            for i, size in enumerate(sizes):
                await end.send_bytes(bytes([i % 251]) * size + b"|" + str(i).encode())
                replies.append(await end.recv_bytes(timeout=30))
            end.detach().close()
            child.finish()
            return replies
        finally:
            end.close()

    replies = run(main())
    assert replies == [
        (bytes([i % 251]) * size + b"|" + str(i).encode())[::-1] for i, size in enumerate(sizes)
    ]


def test_channel_peer_killed_is_eof(aio, run, spawn, names):
    name = names()

    async def main() -> type[BaseException]:
        async with aio.Channel.create(name) as end:
            child = spawn(ECHO, args={"name": name})
            child.expect("ready")
            end.unlink()
            await end.send_bytes(b"ping")
            assert await end.recv_bytes(timeout=30) == b"gnip"
            waiting = asyncio.ensure_future(end.recv_bytes())
            await asyncio.sleep(0.01)
            child.proc.send_signal(signal.SIGKILL)
            child.proc.wait(30)
            try:
                await asyncio.wait_for(waiting, 5)
            except EOFError as exc:
                return type(exc)
            return type(None)

    assert run(main()) is EOFError


def test_channel_pair_in_one_loop_and_detach(aio, run):
    async def main() -> tuple[object, ...]:
        a, b = aio.channel()
        with a, b:
            waiting = asyncio.ensure_future(b.recv())
            await asyncio.sleep(0)
            await a.send({"n": 1})
            got = await asyncio.wait_for(waiting, 5)
            blocking = b.detach()
            await a.send_bytes(b"direct")
            return got, blocking.recv_bytes(), blocking.gettimeout()

    assert run(main()) == ({"n": 1}, b"direct", None)
