"""The processes of ``fastipc bench --async`` (``python -m fastipc.bench.aio_peer ROLE JSON``).

Echo sides, one per mechanism, each on the event loop the parent names; and the two sides of the
many-connections row: the asyncio listener, and a client process holding a share of the
connections. Each prints one JSON line when ready and answers the parent's lines on stdin.
"""

from __future__ import annotations

import asyncio
import json
import os
import resource
import struct
import sys
from collections.abc import Callable, Coroutine
from typing import Any

from .affinity import pin

__all__ = ["main", "new_loop", "raise_file_limit", "rss_bytes"]

_HDR = struct.Struct("!i")


def report(**fields: object) -> None:
    sys.stdout.write(json.dumps(fields) + "\n")
    sys.stdout.flush()


def new_loop(name: str) -> asyncio.AbstractEventLoop:
    """A new event loop: ``"asyncio"`` (the default one) or ``"uvloop"``."""
    if name == "uvloop":
        import uvloop

        return uvloop.new_event_loop()
    return asyncio.new_event_loop()


def run(loop_name: str, main: Callable[[], Coroutine[Any, Any, None]]) -> None:
    with asyncio.Runner(loop_factory=lambda: new_loop(loop_name)) as runner:
        runner.run(main())


def raise_file_limit(want: int) -> int:
    """Raises this process's descriptor limit to ``want`` within the hard limit; the new soft
    limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = want if hard == resource.RLIM_INFINITY else min(want, hard)
    if target > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        return target
    return soft


def rss_bytes() -> int:
    with open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


# -- echo sides --------------------------------------------------------------------------------


async def echo_fastipc(path: str, max_message: int) -> None:
    from fastipc import aio

    listener = await aio.listen(f"unix:{path}", max_message=max_message)
    report(ready=True)
    conn = await listener.accept()
    listener.close()
    try:
        while True:
            await conn.send_bytes(await conn.recv_bytes())
    except EOFError:
        pass
    finally:
        conn.close()


async def echo_streams(path: str, max_message: int) -> None:
    done = asyncio.Event()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readexactly(4)
                data = await reader.readexactly(_HDR.unpack(head)[0])
                writer.write(head + data)
                await writer.drain()
        except asyncio.IncompleteReadError:
            pass
        finally:
            writer.close()
            done.set()

    server = await asyncio.start_unix_server(handle, path, limit=max_message + 8)
    report(ready=True)
    await done.wait()
    server.close()


async def echo_zmq(path: str, max_message: int) -> None:
    import zmq  # type: ignore[import-not-found, unused-ignore]
    import zmq.asyncio  # type: ignore[import-not-found, unused-ignore]

    ctx = zmq.asyncio.Context()
    sock = ctx.socket(zmq.PAIR)
    sock.bind(f"ipc://{path}")
    report(ready=True)
    try:
        while True:
            data = await sock.recv(copy=False)
            if len(data) == 0:
                break
            await sock.send(data, copy=False)
    finally:
        sock.close(linger=0)
        ctx.term()


def echo_blocking(path: str, max_message: int) -> None:
    import fastipc

    listener = fastipc.listen(f"unix:{path}", max_message=max_message)
    report(ready=True)
    conn = listener.accept()
    listener.close()
    try:
        while True:
            conn.send_bytes(conn.recv_bytes())
    except EOFError:
        pass
    finally:
        conn.close()


ECHOES = {"fastipc-aio": echo_fastipc, "asyncio-streams": echo_streams, "zmq-asyncio": echo_zmq}


# -- many connections ----------------------------------------------------------------------------


async def many_server(path: str, count: int) -> None:
    """Accepts ``count`` connections, answers one message on each, then keeps them idle until the
    parent asks for the figures; then waits until every client has gone."""
    from fastipc import aio

    base_rss, base_fds = rss_bytes(), open_fds()
    listener = await aio.listen(f"unix:{path}", backlog=4096)
    served = 0
    conns: list[aio.Connection] = []
    tasks: set[asyncio.Task[None]] = set()
    all_gone = asyncio.Event()

    async def serve(conn: aio.Connection) -> None:
        nonlocal served
        try:
            await conn.send_bytes(await conn.recv_bytes())
            served += 1
            await conn.recv_bytes()  # idle until the client closes: EOFError
        except EOFError:
            pass
        finally:
            conn.close()
            conns.remove(conn)
            if not conns and served == count:
                all_gone.set()

    report(ready=True, rss=base_rss, fds=base_fds)
    for _ in range(count):
        conn = await listener.accept()
        conns.append(conn)
        task = asyncio.get_running_loop().create_task(serve(conn))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    listener.close()
    line = await _stdin_line()
    assert line == "stats", line
    report(served=served, open=len(conns), rss=rss_bytes(), fds=open_fds())
    await all_gone.wait()
    await asyncio.sleep(0)
    report(served=served, open=len(conns), rss=rss_bytes(), fds=open_fds())


async def _stdin_line() -> str:
    loop = asyncio.get_running_loop()
    future: asyncio.Future[str] = loop.create_future()
    buf = bytearray()

    def readable() -> None:
        chunk = os.read(0, 4096)
        buf.extend(chunk)
        if (b"\n" in buf or not chunk) and not future.done():
            loop.remove_reader(0)
            future.set_result(buf.decode().strip())

    loop.add_reader(0, readable)
    return await future


def many_client(path: str, count: int) -> None:
    """Opens ``count`` connections (blocking API), one message each way on every one, then holds
    them until the parent's next line."""
    import fastipc

    raise_file_limit(count + 64)
    conns = [fastipc.connect(f"unix:{path}") for _ in range(count)]
    payload = b"x" * 64
    for conn in conns:
        conn.send_bytes(payload)
    ok = sum(conn.recv_bytes() == payload for conn in conns)
    report(connected=len(conns), answered=ok)
    sys.stdin.readline()
    for conn in conns:
        conn.close()
    report(closed=True)


def main(argv: list[str]) -> int:
    role, config = argv[0], json.loads(argv[1])
    pin(config.get("cpu"))
    loop_name = config.get("loop", "asyncio")
    path = config["path"]
    if role == "echo-blocking":
        echo_blocking(path, config["max_message"])
    elif role == "echo":
        echo = ECHOES[config["mechanism"]]
        run(loop_name, lambda: echo(path, config["max_message"]))
    elif role == "many-server":
        raise_file_limit(config["count"] + 256)
        run(loop_name, lambda: many_server(path, config["count"]))
    elif role == "many-client":
        many_client(path, config["count"])
    else:
        raise SystemExit(f"unknown role {role!r}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
