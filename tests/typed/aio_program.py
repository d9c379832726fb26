"""A user's asyncio program: it must pass ``mypy --strict`` without a cast, and run."""

from __future__ import annotations

import asyncio

import fastipc
from fastipc import aio


async def serve(listener: aio.Listener) -> None:
    async for conn in listener:
        async with conn:
            request: bytes = await conn.recv_bytes()
            await conn.send_bytes(request.upper())
        break


async def main() -> None:
    async with await aio.listen("127.0.0.1:0") as listener:
        server = asyncio.create_task(serve(listener))
        conn: aio.Connection = await aio.connect(listener.address, timeout=5.0)
        async with conn:
            await conn.send_bytes(b"typed")
            assert await conn.recv_bytes() == b"TYPED"
        await server
    a, b = aio.socketpair()
    with a, b:
        await a.send({"n": 1})
        data, fds = await b.recv_bytes_and_fds()
        assert fds == [] and len(data) > 0
        buf = bytearray(8)
        await a.send_bytes(b"abc")
        assert await b.recv_bytes_into(buf) == 3
    d1, d2 = aio.socketpair("datagram")
    with d1, d2:
        await d1.send(b"datagram")
        assert await d2.recv(100) == b"datagram"
    reader, writer = aio.pipe()
    with reader, writer:
        await writer.write_all(b"pipe")
        assert await reader.read_exact(4) == b"pipe"
    plain: fastipc.Connection = aio.Connection.from_connection(fastipc.socketpair()[0]).detach()
    plain.close()


if __name__ == "__main__":
    asyncio.run(main())
