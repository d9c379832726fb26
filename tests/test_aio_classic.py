"""fastipc.aio pipes, FIFOs (opened without blocking the loop), POSIX message queues and signal
receivers, across real processes where there are two sides."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys

import fastipc
import pytest
from _classic import unique
from _helpers import pattern

linux_only = pytest.mark.skipif(sys.platform != "linux", reason="Linux only")


def test_pipe_backpressure_and_eof(aio, run):
    data = pattern(1 << 20, 2)  # more than a pipe holds: the writer waits for the reader

    async def main() -> tuple[bytes, bytes]:
        reader, writer = aio.pipe()
        async with reader:
            async with writer:
                writing = asyncio.ensure_future(writer.write_all(data))
                got = await reader.read_exact(len(data))
                await writing
            return got, await reader.read()

    assert run(main()) == (data, b"")


def test_read_exact_cancelled_keeps_the_bytes(aio, run):
    async def main() -> bytes:
        reader, writer = aio.pipe()
        async with reader, writer:
            await writer.write(b"0123456789")
            with pytest.raises(TimeoutError):
                async with asyncio.timeout(0.01):
                    await reader.read_exact(20)
            await writer.write(b"abcdefghij")
            return await reader.read_exact(20)

    assert run(main()) == b"0123456789abcdefghij"


def test_write_all_cancelled_part_way_finishes(aio, run):
    data = pattern(1 << 20, 5)

    async def main() -> bytes:
        reader, writer = aio.pipe()
        async with reader, writer:
            writing = asyncio.ensure_future(writer.write_all(data))
            for _ in range(3):
                await asyncio.sleep(0)
            assert not writing.done()
            writing.cancel()
            with pytest.raises(asyncio.CancelledError):
                await writing
            after = asyncio.ensure_future(writer.write(b"after"))
            got = await reader.read_exact(len(data) + 5)
            await after
            return got

    assert run(main()) == data + b"after"


def test_read_exact_truncated(aio, run):
    async def main() -> None:
        reader, writer = aio.pipe()
        async with reader:
            await writer.write(b"abc")
            writer.close()
            with pytest.raises(fastipc.TruncatedMessage):
                await reader.read_exact(10)
            with pytest.raises(EOFError):
                await reader.read_exact(1)

    run(main())


def test_fifo_reader_opens_before_any_writer(aio, run, spawn, tmp_path):
    path = str(tmp_path / "fifo")

    async def main() -> list[bytes]:
        with aio.FIFO(path, create=True) as fifo:
            reader = await fifo.open_reader()  # at once: no writer yet
            async with reader:
                child = spawn(
                    """
w = fastipc.FIFO(ARGS["path"]).open_writer(timeout=20)
w.write_all(b"through the fifo")
w.close()
report(written=True)
""",
                    args={"path": path},
                )
                got = [await reader.read_exact(16), await reader.read()]
            assert await asyncio.to_thread(child.expect, "written") == {"written": True}
            child.finish()
            fifo.unlink()
        return got

    assert run(main()) == [b"through the fifo", b""]


def test_fifo_writer_waits_for_a_reader(aio, run, spawn, tmp_path):
    path = str(tmp_path / "fifo")

    async def main() -> None:
        with aio.FIFO(path, create=True) as fifo:
            with pytest.raises(TimeoutError):
                await fifo.open_writer(timeout=0.02)
            child = spawn(
                """
r = fastipc.FIFO(ARGS["path"]).open_reader(timeout=20)
report(data=r.read_exact(5).decode())
r.close()
""",
                args={"path": path},
            )
            writer = await fifo.open_writer(timeout=20)
            async with writer:
                await writer.write_all(b"hello")
            assert await asyncio.to_thread(child.expect, "data") == {"data": "hello"}
            child.finish()
            fifo.unlink()

    run(main())


@linux_only
def test_message_queue(aio, run):
    name = "/" + unique("aiomq")

    async def main() -> list[tuple[bytes, int]]:
        q = aio.MessageQueue(name, create=True, max_messages=2, max_message_size=64)
        try:
            async with q:
                receiving = asyncio.ensure_future(q.receive())
                await asyncio.sleep(0)
                assert not receiving.done()
                await q.send(b"first", 1)
                got = [await receiving]
                await q.send(b"low", 0)
                await q.send(b"high", 5)
                # The queue is full now: the next send waits until a receive makes room.
                sending = asyncio.ensure_future(q.send(b"third", 2))
                await asyncio.sleep(0)
                assert not sending.done()
                got += [await q.receive(), await q.receive()]
                await sending
                got.append(await q.receive())
                return got
        finally:
            with contextlib.suppress(FileNotFoundError):
                fastipc.unlink_message_queue(name)

    # Both receives find a message at once: the waiting send goes only after them.
    assert run(main()) == [(b"first", 1), (b"high", 5), (b"low", 0), (b"third", 2)]


SIGNAL_CHILD = """
import asyncio, signal
from fastipc import aio
async def main():
    with aio.SignalReceiver([signal.SIGUSR2]) as rx:
        report(ready=1)
        return await rx.receive()
if ARGS["loop"] == "uvloop":
    import uvloop
    info = asyncio.Runner(loop_factory=uvloop.new_event_loop).run(main())
else:
    info = asyncio.run(main())
report(signal=int(info.signal))
"""


@linux_only
def test_signal_receiver(loop_name, spawn):
    child = spawn(SIGNAL_CHILD, args={"loop": loop_name})
    child.expect("ready")
    os.kill(child.pid, signal.SIGUSR2)
    assert child.expect("signal") == {"signal": signal.SIGUSR2}
    child.finish()
