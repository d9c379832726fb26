"""Cancellation of fastipc.aio sends and receives: a cancelled receive never loses or splits a
message, a cancelled send that had started finishes its frame in the background (the next send
waits for it), one that had not started sends nothing; ``asyncio.timeout()`` the same. The long
streams run with the default kernel buffers and with small ones, where a frame goes in many
pieces and the calls that continue a started frame wait for pieces themselves."""

from __future__ import annotations

import asyncio
import os
import random
import socket

import pytest
from _aio import FRAMED_SRC, check_framed, framed
from _helpers import pattern

#: Sizes of the long streams: empty, small, around the 8 KiB read buffer, and larger than the
#: socket buffers (so that a frame goes in several writes and reads).
STREAM_SIZES = [0, 1, 100, 1000, 8180, 8200, 70_000, 300_000, 1 << 20, 6 << 20]
#: Kernel send buffers of the long streams: fastipc's (None), and a small one asked for on both
#: ends (the kernel doubles it), which cuts a large frame into pieces of about that size.
SEND_BUFFERS = [None, 32 * 1024]

SHRINK_SRC = """
import os, socket

def shrink(conn, size):
    if size:
        with socket.socket(fileno=os.dup(conn.fileno())) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, size)
    return conn
"""

SENDER = (
    FRAMED_SRC
    + SHRINK_SRC
    + """
import random
lst = fastipc.listen(ARGS["address"], max_message=64 << 20)
report(address=lst.address)
conn = shrink(lst.accept(timeout=20), ARGS["sndbuf"])
rng = random.Random(ARGS["seed"])
for i in range(ARGS["count"]):
    conn.send_bytes(framed(i, rng.choice(ARGS["sizes"])))
report(sent=ARGS["count"])
conn.close(); lst.close()
"""
)

RECEIVER = (
    FRAMED_SRC
    + SHRINK_SRC
    + """
lst = fastipc.listen(ARGS["address"], max_message=64 << 20)
report(address=lst.address)
conn = shrink(lst.accept(timeout=20), ARGS["sndbuf"])
got = []
try:
    while True:
        got.append(check_framed(conn.recv_bytes()))
except EOFError:
    pass
report(indices=got)
conn.close(); lst.close()
"""
)


async def _cancelled_soon(rng: random.Random, awaitable) -> tuple[bool, object]:
    """Runs ``awaitable`` with a cancellation at a random point: by ``asyncio.timeout`` after
    up to 2 ms, by ``Task.cancel`` after a few turns of the loop, or none. (cancelled, result)"""
    mode = rng.randrange(3)
    if mode == 0:
        try:
            async with asyncio.timeout(rng.random() * 0.002):
                return False, await awaitable
        except TimeoutError:
            return True, None
    task = asyncio.ensure_future(awaitable)
    if mode == 1:
        for _ in range(rng.randrange(4)):
            await asyncio.sleep(0)
        task.cancel()
    try:
        return False, await task
    except asyncio.CancelledError:
        return True, None


def _shrink(conn, size: int | None):
    if size:
        with socket.socket(fileno=os.dup(conn.fileno())) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, size)
    return conn


@pytest.mark.parametrize("sndbuf", SEND_BUFFERS)
def test_cancelled_receives_lose_nothing(aio, run, spawn, sndbuf):
    count, seed = 400, 7
    args = {"address": "127.0.0.1:0", "count": count, "seed": seed, "sizes": STREAM_SIZES}
    child = spawn(SENDER, args={**args, "sndbuf": sndbuf})
    address = child.expect("address")["address"]

    async def main() -> tuple[list[int], int]:
        rng = random.Random(seed + 1)
        indices, cancelled = [], 0
        async with _shrink(await aio.connect(address, max_message=64 << 20), sndbuf) as conn:
            while len(indices) < count:
                was_cancelled, message = await _cancelled_soon(rng, conn.recv_bytes())
                if was_cancelled:
                    cancelled += 1
                    continue
                indices.append(check_framed(message))
            with pytest.raises(EOFError):
                await conn.recv_bytes()
        return indices, cancelled

    indices, cancelled = run(main())
    assert indices == list(range(count))
    assert cancelled > 0
    assert child.expect("sent") == {"sent": count}
    child.finish()


@pytest.mark.parametrize("sndbuf", SEND_BUFFERS)
def test_cancelled_sends_finish_or_send_nothing(aio, run, spawn, sndbuf):
    count = 200
    child = spawn(RECEIVER, args={"address": "127.0.0.1:0", "sndbuf": sndbuf})
    address = child.expect("address")["address"]

    async def main() -> tuple[list[int], list[int]]:
        rng = random.Random(3)
        completed, cancelled = [], []
        async with _shrink(await aio.connect(address, max_message=64 << 20), sndbuf) as conn:
            for i in range(count):
                message = framed(i, rng.choice(STREAM_SIZES))
                was_cancelled, _ = await _cancelled_soon(rng, conn.send_bytes(message))
                (cancelled if was_cancelled else completed).append(i)
        return completed, cancelled

    completed, cancelled = run(main())
    received = child.expect("indices")["indices"]
    child.finish()
    assert cancelled, "no send was cancelled"
    # Whole messages (checked by the child), in order, every completed send among them, and
    # nothing but what was sent.
    assert received == sorted(set(received))
    assert set(completed) <= set(received) <= set(range(count))
    assert set(received) - set(completed) <= set(cancelled)


def test_started_send_finishes_and_unstarted_sends_nothing(aio, run, backend):
    big = pattern(20 << 20, 4)  # more than the socket buffers take

    async def main() -> list[bytes]:
        a, b = aio.socketpair()
        with a, b:
            first = asyncio.ensure_future(a.send_bytes(big))
            second = asyncio.ensure_future(a.send_bytes(b"second"))
            for _ in range(3):
                await asyncio.sleep(0)
            # The first has written what the socket takes and waits for room; the second waits
            # for its turn and has written nothing.
            assert not first.done() and not second.done()
            first.cancel()
            second.cancel()
            for task in (first, second):
                with pytest.raises(asyncio.CancelledError):
                    await task
            third = asyncio.ensure_future(a.send_bytes(b"third"))
            got = [await b.recv_bytes(64 << 20), await b.recv_bytes()]
            await third
            return got

    assert run(main()) == [big, b"third"]


def test_timeout_on_receive_then_whole_message(aio, run):
    async def main() -> bytes:
        a, b = aio.socketpair()
        with a, b:
            with pytest.raises(TimeoutError):
                async with asyncio.timeout(0.01):
                    await b.recv_bytes()
            await a.send_bytes(b"after the timeout")
            return await b.recv_bytes()

    assert run(main()) == b"after the timeout"


def _read_frame(sock: socket.socket) -> bytes:
    """One frame read from a plain blocking socket (4-byte big-endian length, then payload)."""
    view = bytearray(4)
    sock.recv_into(view, 4, socket.MSG_WAITALL)
    size = int.from_bytes(view, "big")
    data = bytearray(size)
    with memoryview(data) as rest:
        got = 0
        while got < size:
            n = sock.recv_into(rest[got:])
            assert n, "the stream ended inside the frame"
            got += n
    return bytes(data)


def test_frames_part_way_wait_on_the_loop_while_the_peer_stalls(aio, run):
    """A receive whose message stopped arriving part way, and a send whose peer stopped
    reading, leave the loop to other tasks (they wait in the extension only while the data
    flows) and finish, whole, once the peer goes on."""
    payload = pattern(1 << 20, 5)
    big = pattern(20 << 20, 6)  # more than the socket buffers take

    async def main() -> tuple[bytes, bytes]:
        a, b = aio.socketpair()
        with a, b, socket.socket(fileno=os.dup(b.fileno())) as peer:
            # The peer end is driven by hand from here on, blocking, in a thread.
            peer.setblocking(True)
            peer.sendall(len(payload).to_bytes(4, "big") + payload[:100_000])
            receive = asyncio.ensure_future(a.recv_bytes())
            for _ in range(3):
                await asyncio.sleep(0)  # other tasks run meanwhile
            assert not receive.done()
            await asyncio.to_thread(peer.sendall, payload[100_000:])
            received = await receive

            send = asyncio.ensure_future(a.send_bytes(big))
            for _ in range(3):
                await asyncio.sleep(0)
            assert not send.done()
            sent = await asyncio.to_thread(_read_frame, peer)
            await send
            return received, sent

    received, sent = run(main())
    assert received == payload
    assert sent == big
