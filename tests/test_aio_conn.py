"""fastipc.aio connections across real processes: messages of every size, descriptors,
credentials, the errors of the blocking API, backpressure, concurrent senders, wrapping."""

from __future__ import annotations

import asyncio
import errno
import gc
import os
import random
import threading

import fastipc
import pytest
from _aio import FRAMED_SRC, framed
from _helpers import pattern

SIZES = [0, 1, 64, 1023, 1024, 1025, 8192, 65536, 1 << 20, 5 << 20]

ECHO_SERVER = """
lst = fastipc.listen(ARGS["address"], max_message=64 << 20)
report(address=lst.address)
conn = lst.accept(timeout=20)
lst.close()
n = 0
try:
    while True:
        conn.send_bytes(conn.recv_bytes())
        n += 1
except EOFError:
    pass
report(echoed=n)
"""


def _echo(spawn):
    child = spawn(ECHO_SERVER, args={"address": "127.0.0.1:0"})
    return child, child.expect("address")["address"]


def test_round_trip_sizes(aio, run, spawn):
    child, address = _echo(spawn)

    async def main() -> list[int]:
        conn = await aio.connect(address, max_message=64 << 20)
        async with conn:
            sizes = []
            for size in SIZES:
                data = pattern(size, seed=size & 0xFF)
                await conn.send_bytes(data)
                got = await conn.recv_bytes()
                assert type(got) is bytes
                assert got == data
                sizes.append(len(got))
            return sizes

    assert run(main()) == SIZES
    assert child.expect("echoed") == {"echoed": len(SIZES)}
    child.finish()


def test_offset_size_and_into(aio, run, spawn):
    child, address = _echo(spawn)

    async def main() -> None:
        async with await aio.connect(address) as conn:
            await conn.send_bytes(bytearray(b"0123456789"), 2, 5)
            buf = bytearray(12)
            assert await conn.recv_bytes_into(buf, 3) == 5
            assert bytes(buf) == b"\0\0\x0023456\0\0\0\0"
            await conn.send_bytes(memoryview(b"abcdef"), 4)
            small = bytearray(1)
            with pytest.raises(fastipc.BufferTooShort) as info:
                await conn.recv_bytes_into(small)
            assert info.value.args[0] == b"ef"
            with pytest.raises(ValueError, match="buffer length < offset"):
                await conn.send_bytes(b"abc", 4)
            with pytest.raises(ValueError, match="offset is negative"):
                await conn.send_bytes(b"abc", -1)
            await conn.send({"key": [1, 2.5, "three"]})
            assert await conn.recv() == {"key": [1, 2.5, "three"]}

    run(main())
    assert child.expect("echoed") == {"echoed": 3}
    child.finish()


def test_eof_and_closed_errors(aio, run):
    async def main() -> None:
        a, b = aio.socketpair()
        await a.send_bytes(b"last")
        a.close()
        assert await b.recv_bytes() == b"last"
        with pytest.raises(EOFError):
            await b.recv_bytes()
        b.close()
        with pytest.raises(OSError) as info:
            await b.recv_bytes()
        assert info.value.errno == errno.EBADF
        with pytest.raises(OSError) as info:
            await a.send_bytes(b"x")
        assert info.value.errno == errno.EBADF

    run(main())


def test_message_too_large_closes_as_blocking(aio, run):
    async def main() -> None:
        a, b = aio.socketpair()
        with a, b:
            await a.send_bytes(b"x" * 100)
            with pytest.raises(fastipc.MessageTooLarge):
                await b.recv_bytes(maxlength=10)
            # As the blocking receive: the stream cannot be resynchronised, so it is closed.
            assert b.closed

    run(main())


def test_broken_pipe(aio, run):
    async def main() -> None:
        a, b = aio.socketpair()
        b.close()
        with pytest.raises(BrokenPipeError):
            for _ in range(100):
                await a.send_bytes(b"x" * 65536)
        a.close()

    run(main())


def test_descriptors_and_credentials(aio, run, spawn):
    child = spawn(
        """
lst = fastipc.listen(ARGS["address"])
report(address=lst.address, pid=os.getpid())
conn = lst.accept(timeout=20)
data, fds = conn.recv_bytes_and_fds()
for fd in fds:
    os.write(fd, data)
    os.close(fd)
conn.send_bytes(b"done")
conn.close(); lst.close()
""",
        args={"address": "127.0.0.1:0"},
    )
    info = child.expect("address")
    r, w = os.pipe()

    async def main() -> tuple[bytes, int]:
        async with await aio.connect(info["address"]) as conn:
            await conn.send_bytes(b"through the pipe", fds=[w])
            os.close(w)
            reply = await conn.recv_bytes()
            return reply, conn.peer_credentials().pid

    try:
        assert run(main()) == (b"done", info["pid"])
        assert os.read(r, 100) == b"through the pipe"
    finally:
        os.close(r)
    child.finish()


def test_recv_bytes_and_fds_maxfds(aio, run):
    async def main() -> None:
        a, b = aio.socketpair()
        r, w = os.pipe()
        with a, b:
            await a.send_bytes(b"one", fds=[r, w])
            data, fds = await b.recv_bytes_and_fds()
            assert data == b"one" and len(fds) == 2
            for fd in fds:
                os.close(fd)
            await a.send_bytes(b"two", fds=[r, w])
            with pytest.raises(OSError) as info:
                await b.recv_bytes_and_fds(maxfds=1)
            assert info.value.errno == errno.EMSGSIZE
        os.close(r)
        os.close(w)

    run(main())


def test_backpressure_does_not_block_the_loop(aio, run, spawn):
    child = spawn(
        """
lst = fastipc.listen(ARGS["address"], max_message=64 << 20)
report(address=lst.address)
conn = lst.accept(timeout=20)
wait_parent()
data = conn.recv_bytes()
report(size=len(data), ok=data == pattern(len(data), 1))
conn.close(); lst.close()
""",
        args={"address": "127.0.0.1:0"},
    )
    address = child.expect("address")["address"]
    size = 32 << 20  # larger than the socket buffers: the send must wait for the reader

    async def main() -> int:
        conn = await aio.connect(address, max_message=64 << 20)
        ticks = 0
        sending = asyncio.ensure_future(conn.send_bytes(pattern(size, 1)))
        while ticks < 20:
            await asyncio.sleep(0)
            ticks += 1
        assert not sending.done(), "the send should be waiting for the reader"
        child.send(go=True)
        await sending
        conn.close()
        return ticks

    assert run(main()) == 20
    assert child.expect("size") == {"size": size, "ok": True}
    child.finish()


def test_concurrent_senders_never_interleave(aio, run, spawn):
    child = spawn(
        FRAMED_SRC
        + """
lst = fastipc.listen(ARGS["address"], max_message=64 << 20)
report(address=lst.address)
conn = lst.accept(timeout=20)
order = {}
try:
    while True:
        i = check_framed(conn.recv_bytes())
        order.setdefault(i // 1000, []).append(i % 1000)
except EOFError:
    pass
report(order={k: v for k, v in sorted(order.items())})
lst.close(); conn.close()
""",
        args={"address": "127.0.0.1:0"},
    )
    address = child.expect("address")["address"]
    rng = random.Random(12)
    plans = {s: [rng.choice([10, 3000, 70000, 400000]) for _ in range(30)] for s in range(8)}

    async def main() -> None:
        conn = await aio.connect(address, max_message=64 << 20)

        async def sender(s: int) -> None:
            for n, size in enumerate(plans[s]):
                await conn.send_bytes(framed(s * 1000 + n, size))

        await asyncio.gather(*(sender(s) for s in plans))
        await conn.aclose()

    run(main())
    got = child.expect("order")["order"]
    assert got == {str(s): list(range(30)) for s in plans}
    child.finish()


def test_wrap_refuses_blocking_calls_until_detach(aio, run, backend):
    a, b = backend.socketpair()
    refused = [
        lambda: a.send_bytes(b"x"),
        lambda: a.recv_bytes(),
        lambda: a.recv_bytes_and_fds(),
        lambda: a.recv_bytes_into(bytearray(4)),
        lambda: a.send(1),
        lambda: a.recv(),
        lambda: a.sendall(b"x"),
        lambda: a.recv_into(bytearray(4)),
        lambda: a.poll(),
        lambda: a.settimeout(1.0),
    ]

    async def main() -> None:
        wrapped = aio.Connection.from_connection(a)
        for call in refused:
            with pytest.raises(RuntimeError, match=r"in use by fastipc\.aio\.Connection"):
                call()
        assert a.fileno() == wrapped.fileno()
        with pytest.raises(RuntimeError, match="already in use"):
            aio.Connection.from_connection(a)
        # A large message half received by the awaited side is finished by the blocking one:
        # its header and the first part go now, the rest after the receive has timed out.
        message = pattern(1 << 20, 9)
        raw = len(message).to_bytes(4, "big") + message
        b.sendall(raw[:100_000])
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.05):
                await wrapped.recv_bytes()
        assert wrapped.detach() is a
        assert wrapped.closed
        rest = threading.Thread(target=b.sendall, args=(raw[100_000:],))
        rest.start()
        assert a.recv_bytes() == message
        rest.join()
        a.send_bytes(b"usable")
        assert b.recv_bytes() == b"usable"

    with a, b:
        run(main())


def test_anyio_asyncio_backend(aio, backend):
    import anyio

    async def main() -> bytes:
        a, b = aio.socketpair()
        async with a, b:
            async with anyio.create_task_group() as tg:
                tg.start_soon(a.send_bytes, b"from anyio")
                got = await b.recv_bytes()
            return got

    assert anyio.run(main, backend="asyncio") == b"from anyio"


def test_close_ends_a_waiting_receive(aio, run):
    async def main() -> int | None:
        a, b = aio.socketpair()
        with a:
            receiving = asyncio.ensure_future(b.recv_bytes())
            await asyncio.sleep(0)
            assert not receiving.done()
            b.close()
            with pytest.raises(OSError) as info:
                await receiving
            return info.value.errno

    assert run(main()) == errno.EBADF


def test_detach_waits_for_no_frame_in_flight(aio, run):
    async def main() -> bytes:
        a, b = aio.socketpair()
        big = pattern(20 << 20, 8)  # more than the socket buffers take
        with b:
            sending = asyncio.ensure_future(a.send_bytes(big))
            await asyncio.sleep(0)
            assert not sending.done()
            with pytest.raises(RuntimeError, match="still being sent"):
                a.detach()
            got = await b.recv_bytes(64 << 20)
            await sending
            a.detach().close()
            return got

    assert run(main()) == pattern(20 << 20, 8)


def test_dropped_without_close_frees_its_descriptor_number(aio, run):
    async def main() -> bytes:
        a, b = aio.socketpair()
        receiving = asyncio.ensure_future(b.recv_bytes())
        await asyncio.sleep(0)  # b's descriptor is watched by the loop now
        await a.send_bytes(b"first")
        assert await receiving == b"first"
        numbers = {a.fileno(), b.fileno()}
        del a, b, receiving
        gc.collect()
        c, d = aio.socketpair()
        with c, d:
            assert {c.fileno(), d.fileno()} == numbers  # the same numbers, reused
            receiving = asyncio.ensure_future(d.recv_bytes())
            await asyncio.sleep(0)
            await c.send_bytes(b"second")
            return await receiving

    assert run(main()) == b"second"


def test_concurrent_receivers_each_get_whole_messages_in_turn(aio, run):
    async def main() -> list[bytes]:
        a, b = aio.socketpair()
        with a, b:
            receivers = [asyncio.ensure_future(b.recv_bytes()) for _ in range(3)]
            await asyncio.sleep(0)
            assert not any(r.done() for r in receivers)
            for i in range(3):
                await a.send_bytes(pattern(100_000 + i, i))
            return list(await asyncio.gather(*receivers))

    assert run(main()) == [pattern(100_000 + i, i) for i in range(3)]


def test_a_turn_handed_to_a_cancelled_receiver_goes_on(run):
    from fastipc.aio._ready import Turns

    async def main() -> list[str]:
        turns = Turns()
        assert turns.take()
        assert not turns.take()
        order: list[str] = []

        async def waiter(name: str) -> None:
            await turns.wait()
            order.append(name)
            turns.done()

        first = asyncio.ensure_future(waiter("first"))
        second = asyncio.ensure_future(waiter("second"))
        await asyncio.sleep(0)
        turns.done()  # hands the turn to `first`, which is cancelled before it runs
        first.cancel()
        await asyncio.wait_for(second, 10)  # hangs if the turn stopped with `first`
        assert first.cancelled()
        assert turns.take()  # free again: nobody holds or waits for it
        turns.done()
        return order

    assert run(main()) == ["second"]


def test_a_waiting_receive_is_woken_once_per_message(aio, run):
    """A ping-pong makes two receive attempts per message (one before waiting, one when woken):
    a stale readiness report does not wake the receiver a second time."""
    count = 200

    async def main() -> int:
        a, b = aio.socketpair()
        calls = 0
        raw = b._raw

        class Counting:
            def __getattr__(self, name: str) -> object:
                return getattr(raw, name)

            def _aio_try_recv(self, *args: object) -> object:
                nonlocal calls
                calls += 1
                return raw._aio_try_recv(*args)

        b._raw = Counting()

        async def echo() -> None:
            for _ in range(count):
                await b.send_bytes(await b.recv_bytes())

        with a, b:
            task = asyncio.ensure_future(echo())
            for i in range(count):
                await a.send_bytes(pattern(64, i))
                assert await a.recv_bytes() == pattern(64, i)
            await task
            b._raw = raw
        return calls

    # The echo's first message is there before it first tries; every later one is tried for
    # before it comes, and once more when the loop says it has come (a stale report: a third).
    assert run(main()) == 2 * count - 1
