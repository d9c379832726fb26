"""fastipc.aio listeners and datagram sockets across real processes: accept, ``async for``,
timeouts, the authkey handshake on the loop, closing."""

from __future__ import annotations

import asyncio
import errno
import os

import fastipc
import pytest

CLIENTS = """
for i in range(ARGS["count"]):
    conn = fastipc.connect(ARGS["address"], authkey=ARGS.get("key", "").encode() or None)
    conn.send_bytes(b"client %d" % i)
    assert conn.recv_bytes() == b"reply %d" % i
    conn.close()
report(done=ARGS["count"])
"""


def test_async_for_serves_every_client(aio, run, spawn):
    async def main() -> list[bytes]:
        got = []
        async with await aio.listen("127.0.0.1:0") as listener:
            child = spawn(CLIENTS, args={"address": listener.address, "count": 5})
            async for conn in listener:
                async with conn:
                    message = await conn.recv_bytes()
                    got.append(message)
                    await conn.send_bytes(b"reply" + message[len(b"client") :])
                if len(got) == 5:
                    break
        assert await asyncio.to_thread(child.expect, "done") == {"done": 5}
        child.finish()
        return got

    assert run(main()) == [b"client %d" % i for i in range(5)]


def test_accept_timeout_and_closed(aio, run):
    async def main() -> None:
        listener = await aio.listen("127.0.0.1:0")
        path = listener.path
        with pytest.raises(TimeoutError):
            await listener.accept(timeout=0.02)
        async with listener:
            pass
        assert listener.closed
        assert path is None or not os.path.exists(path)
        with pytest.raises(OSError) as info:
            await listener.accept()
        assert info.value.errno == errno.EBADF

    run(main())


def test_authkey_handshake_on_the_loop(aio, run, spawn):
    async def main() -> int:
        async with await aio.listen("127.0.0.1:0", authkey=b"secret") as listener:
            accepting = asyncio.ensure_future(listener.accept(timeout=20))
            wrong = spawn(
                """
try:
    fastipc.connect(ARGS["address"], authkey=b"wrong")
except fastipc.AuthenticationError:
    report(refused=True)
""",
                args={"address": listener.address},
            )
            # The loop runs the refused peer's handshake while this waits for its report.
            assert await asyncio.to_thread(wrong.expect, "refused") == {"refused": True}
            assert not accepting.done()
            good = spawn(CLIENTS, args={"address": listener.address, "count": 1, "key": "secret"})
            conn = await accepting
            async with conn:
                assert await conn.recv_bytes() == b"client 0"
                await conn.send_bytes(b"reply 0")
            assert await asyncio.to_thread(good.expect, "done") == {"done": 1}
            good.finish()
            wrong.finish()
            return listener.refused

    assert run(main()) == 1


def test_connect_with_authkey(aio, run):
    async def main() -> bytes:
        async with await aio.listen("127.0.0.1:0", authkey=b"k") as listener:
            client = asyncio.ensure_future(aio.connect(listener.address, authkey=b"k"))
            server = await listener.accept(timeout=10)
            conn = await client
            with conn, server:
                await conn.send_bytes(b"authenticated")
                return await server.recv_bytes()

    assert run(main()) == b"authenticated"


def test_connect_wrong_key(aio, run):
    async def main() -> int:
        async with await aio.listen("127.0.0.1:0", authkey=b"right") as listener:
            client = asyncio.ensure_future(aio.connect(listener.address, authkey=b"wrong"))
            with pytest.raises(TimeoutError):
                await listener.accept(timeout=0.5)
            with pytest.raises(fastipc.AuthenticationError):
                await client
            return listener.refused

    assert run(main()) == 1


def test_datagrams_across_processes(aio, run, spawn):
    async def main() -> tuple[bytes, str | None]:
        async with await aio.listen("127.0.0.1:0", kind="datagram") as sock:
            child = spawn(
                """
s = fastipc.connect(ARGS["address"], kind="datagram")
s.send(b"datagram from the child")
s.close()
report(sent=True)
""",
                args={"address": sock.address},
            )
            data, _sender = await sock.recvfrom(1024)
            assert await asyncio.to_thread(child.expect, "sent") == {"sent": True}
            child.finish()
            with pytest.raises(TimeoutError):
                async with asyncio.timeout(0.01):
                    await sock.recvfrom(1024)
            return data, sock.address

    data, _ = run(main())
    assert data == b"datagram from the child"


def test_datagram_pair_sendto(aio, run):
    async def main() -> list[bytes]:
        a, b = aio.socketpair("datagram")
        async with a, b:
            await a.send(b"one")
            await a.send(b"two")
            return [await b.recv(100), await b.recv(100)]

    assert run(main()) == [b"one", b"two"]


def test_close_ends_async_for(aio, run):
    async def main() -> list[object]:
        listener = await aio.listen("127.0.0.1:0")
        got: list[object] = []

        async def serve() -> None:
            async for conn in listener:
                got.append(conn)

        serving = asyncio.ensure_future(serve())
        await asyncio.sleep(0)
        assert not serving.done()
        listener.close()
        await serving
        return got

    assert run(main()) == []
