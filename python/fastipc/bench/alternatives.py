"""The alternatives a Python user would reach for instead of fastipc, as mechanisms of
``fastipc bench``: ``multiprocessing.Queue`` (standard library), and the optional packages of the
``fastipc-rs[bench]`` extra, pyzmq over ``ipc://`` and faster-fifo. A package that is not installed
makes its rows ``unavailable`` with a note on how to install it, never an error.

All are connected pairs (:class:`~fastipc.bench.base.PairMechanism`): the client process makes
the channel and forks the echo side. A queue has no end of file, so the client ends the echo side
with a sentinel (``None``, or an empty ZeroMQ message) when it closes.
"""

from __future__ import annotations

import contextlib
import importlib
import itertools
import os
from collections.abc import Callable
from typing import Any

from .._version import BENCH_EXTRA
from .base import Client, Echo, Env, PairMechanism, drain_loop, register

__all__ = ["missing"]


def missing(module: str, package: str) -> str | None:
    """Why ``module`` cannot be used (a note for the table), or ``None`` if it imports."""
    try:
        importlib.import_module(module)
    except ImportError:
        return f"{package} is not installed ({BENCH_EXTRA}, or pip install {package})"
    return None


class _QueuePair:
    """Two queues (there, back); the pid that made them, which alone sends the sentinel."""

    def __init__(self, there: Any, back: Any, on_close: Callable[[], None]) -> None:
        self.there, self.back = there, back
        self.creator = os.getpid()
        self.on_close = on_close
        self.closed = False


class _QueueClient:
    def __init__(self, pair: _QueuePair) -> None:
        self.pair = pair

    def sender(self) -> Callable[[bytes], object]:
        put: Callable[[bytes], object] = self.pair.there.put
        return put

    def receiver(self) -> Callable[[], object]:
        get: Callable[[], object] = self.pair.back.get
        return get

    def received(self, result: object) -> bytes:
        assert isinstance(result, bytes)
        return result

    def close(self) -> None:
        pair = self.pair
        if os.getpid() != pair.creator or pair.closed:
            return
        pair.closed = True
        with contextlib.suppress(OSError, ValueError):
            pair.there.put(None)
        pair.on_close()


class _QueueEcho:
    def __init__(self, pair: _QueuePair) -> None:
        self.pair = pair

    def serve(self) -> None:
        get, put = self.pair.there.get, self.pair.back.put
        while True:
            data = get()
            if data is None:
                return
            put(data)

    def drain(self) -> None:
        get = self.pair.there.get
        drain_loop(get, lambda: len(get()), self.pair.back.put)

    def close(self) -> None:
        pass  # the queues are the client's too: it closes them


@register
class MultiprocessingQueue(PairMechanism):
    name = "mp-queue"
    summary = "two multiprocessing.Queue: put, get (pickled, a feeder thread)"

    def pair(self, env: Env) -> tuple[Client, Echo]:
        import multiprocessing

        ctx = multiprocessing.get_context("fork")
        there, back = ctx.Queue(), ctx.Queue()

        def close() -> None:
            for q in (there, back):
                q.close()
                q.join_thread()

        pair = _QueuePair(there, back, close)
        return _QueueClient(pair), _QueueEcho(pair)


@register
class FasterFifo(PairMechanism):
    name = "faster-fifo"
    summary = "two faster_fifo.Queue: put, get (pickled, a shared-memory ring)"
    family = "optional"
    counterpart = None

    def unavailable(self) -> str | None:
        return missing("faster_fifo", "faster-fifo") or super().unavailable()

    def pair(self, env: Env) -> tuple[Client, Echo]:
        import faster_fifo  # type: ignore[import-not-found, unused-ignore]

        # room for a few messages of the largest size, pickled
        capacity = max(1 << 20, 4 * (env.max_size + 1024))
        there = faster_fifo.Queue(max_size_bytes=capacity)
        back = faster_fifo.Queue(max_size_bytes=capacity)

        def close() -> None:
            for q in (there, back):
                q.close()

        pair = _QueuePair(_Blocking(there), _Blocking(back), close)
        return _QueueClient(pair), _QueueEcho(pair)


class _Blocking:
    """A faster_fifo.Queue whose put and get wait as long as it takes (their default timeout is
    10 s), like multiprocessing.Queue's."""

    _FOREVER = 1e9

    def __init__(self, queue: Any) -> None:
        self.put: Callable[[object], None] = lambda x: queue.put(x, True, self._FOREVER)
        self.get: Callable[[], Any] = lambda: queue.get(True, self._FOREVER)
        self.close: Callable[[], None] = queue.close


_ZMQ_COUNTER = itertools.count()


class _ZmqEnd:
    """A ZeroMQ PAIR socket made on first use, in the process that uses it (a ZeroMQ context
    must not cross a fork)."""

    def __init__(self, address: str, bind: bool, max_size: int) -> None:
        self.address, self.bind, self.max_size = address, bind, max_size
        self.ctx: Any = None
        self.sock: Any = None

    def socket(self) -> Any:
        if self.sock is None:
            import zmq  # type: ignore[import-not-found, unused-ignore]

            self.ctx = zmq.Context(1)
            self.sock = self.ctx.socket(zmq.PAIR)
            # bound queues: a stream of large messages must not pile up in memory
            hwm = max(4, min(1000, (16 << 20) // max(self.max_size, 1)))
            self.sock.setsockopt(zmq.SNDHWM, hwm)
            self.sock.setsockopt(zmq.RCVHWM, hwm)
            if self.bind:
                self.sock.bind(self.address)
            else:
                self.sock.connect(self.address)
        return self.sock

    def close(self, linger: int) -> None:
        if self.sock is not None:
            self.sock.close(linger=linger)
            self.ctx.term()
            self.sock = self.ctx = None


class _ZmqClient:
    def __init__(self, end: _ZmqEnd) -> None:
        self.end = end
        self.creator = os.getpid()

    def sender(self) -> Callable[[bytes], object]:
        send: Callable[[bytes], object] = self.end.socket().send
        return send

    def receiver(self) -> Callable[[], object]:
        recv: Callable[[], object] = self.end.socket().recv
        return recv

    def received(self, result: object) -> bytes:
        assert isinstance(result, bytes)
        return result

    def close(self) -> None:
        if os.getpid() != self.creator:
            return
        if self.end.sock is not None:
            with contextlib.suppress(Exception):
                self.end.sock.send(b"")  # the sentinel: an empty message
        self.end.close(linger=2000)


class _ZmqEcho:
    def __init__(self, end: _ZmqEnd) -> None:
        self.end = end

    def serve(self) -> None:
        sock = self.end.socket()
        recv, send = sock.recv, sock.send
        try:
            while True:
                frame = recv(copy=False)
                if not len(frame):
                    return
                send(frame, copy=False)
        finally:
            self.end.close(linger=2000)

    def drain(self) -> None:
        sock = self.end.socket()
        recv = sock.recv

        def first() -> bytes | None:
            data: bytes = recv()
            return data or None

        try:
            drain_loop(first, lambda: len(recv(copy=False)), sock.send)
        finally:
            self.end.close(linger=2000)

    def close(self) -> None:
        pass  # nothing was made in the creating process


@register
class ZmqIpc(PairMechanism):
    name = "zmq-ipc"
    summary = "pyzmq PAIR sockets over ipc://: send, recv"
    family = "optional"

    def unavailable(self) -> str | None:
        return missing("zmq", "pyzmq") or super().unavailable()

    def pair(self, env: Env) -> tuple[Client, Echo]:
        path = os.path.join(env.socket_dir, f"zmq-{os.getpid()}-{next(_ZMQ_COUNTER)}.ipc")
        address = f"ipc://{path}"
        return (
            _ZmqClient(_ZmqEnd(address, False, env.max_size)),
            _ZmqEcho(_ZmqEnd(address, True, env.max_size)),
        )
