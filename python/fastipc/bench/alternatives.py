"""The alternatives a Python user would reach for instead of fastipc, as mechanisms of
``fastipc bench``: ``multiprocessing.Queue`` (standard library), and the optional packages of the
``fastipc-rs[bench]`` extra, pyzmq over ``ipc://`` and faster-fifo. A package that is not installed
makes its rows ``unavailable`` with a note on how to install it, never an error.

All are connected pairs (:class:`~fastipc.bench.base.PairMechanism`): the client process makes
the channel and forks the echo side. A queue has no end of file, so the client ends the echo side
with a sentinel (``None``, or an empty ZeroMQ message) when it closes.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import functools
import importlib
import itertools
import os
import time
from collections.abc import Callable
from typing import Any

from .._version import BENCH_EXTRA
from .base import Client, Echo, Env, PairMechanism, drain_loop, register
from .batching import BATCH, BatchClient, BatchEcho, batch_for

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


class _FasterFifo(PairMechanism):
    """The faster-fifo rows: two of its queues, one each way."""

    family = "optional"

    def unavailable(self) -> str | None:
        return missing("faster_fifo", "faster-fifo") or super().unavailable()

    @staticmethod
    def queues(env: Env) -> tuple[Any, Any]:
        import faster_fifo  # type: ignore[import-not-found, unused-ignore]

        # room for a few messages of the largest size, pickled
        capacity = max(1 << 20, 4 * (env.max_size + 1024))
        return faster_fifo.Queue(max_size_bytes=capacity), faster_fifo.Queue(
            max_size_bytes=capacity
        )


@register
class FasterFifo(_FasterFifo):
    name = "faster-fifo"
    summary = "two faster_fifo.Queue: put, get (pickled, a shared-memory ring)"
    counterpart = None

    def pair(self, env: Env) -> tuple[Client, Echo]:
        there, back = self.queues(env)

        def close() -> None:
            for q in (there, back):
                q.close()

        pair = _QueuePair(_Blocking(there), _Blocking(back), close)
        return _QueueClient(pair), _QueueEcho(pair)


@register
class FasterFifoMany(_FasterFifo):
    name = "faster-fifo-many"
    summary = f"two faster_fifo.Queue: put_many, get_many, batches of up to {BATCH} messages"

    def pair(self, env: Env) -> tuple[Client, Echo]:
        there, back = self.queues(env)
        batch = batch_for(env.max_size)
        forever = _Blocking._FOREVER

        def put_many(items: list[Any], queue: Any) -> None:
            queue.put_many(items, True, forever)

        def get_many(most: int, queue: Any) -> list[Any]:
            items: list[Any] = queue.get_many(True, forever, most)
            return items

        def close() -> None:
            for q in (there, back):
                q.close()

        return (
            BatchClient(
                functools.partial(put_many, queue=there),
                functools.partial(get_many, queue=back),
                batch,
                close,
            ),
            BatchEcho(
                functools.partial(get_many, queue=there),
                functools.partial(put_many, queue=back),
                batch,
            ),
        )


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


_IOX_COUNTER = itertools.count()
_IOX_READY_TIMEOUT = 10.0
_SHM = "/dev/shm"
_IOX_DATA = 4
"""The offset of the bytes in the payload, after the 4-byte length."""


def _iox_message(capacity: int) -> Any:
    """The payload type of the iceoryx2 rows: a length and ``capacity`` bytes (``ctypes``)."""

    class Message(ctypes.Structure):
        _fields_ = (("length", ctypes.c_uint32), ("data", ctypes.c_uint8 * capacity))

    Message.__name__ = Message.__qualname__ = f"FastipcBenchMessage{capacity}"
    return Message


class _IoxPrivate:
    """Where the iceoryx2 rows of one cell keep what iceoryx2 creates: its files under the run's
    private directory, its shared memory under ``/dev/shm/<prefix>...``. iceoryx2 leaves a
    management segment there when its last node ends (it expects to reuse it): the client process
    unlinks every entry of the prefix when it exits, after its echo processes."""

    def __init__(self, env: Env) -> None:
        tag = f"{os.getpid()}-{next(_IOX_COUNTER)}"
        self.prefix = f"iox2-fastipc-bench-{tag}-"
        self.root = os.path.join(env.socket_dir, f"iox2-{tag}") + os.sep
        atexit.register(self.remove)

    def remove(self) -> None:
        with contextlib.suppress(OSError):
            for name in os.listdir(_SHM):
                if name.startswith(self.prefix):
                    with contextlib.suppress(OSError):
                        os.unlink(os.path.join(_SHM, name))


class _IoxEnd:
    """One process's ports of the two iceoryx2 publish-subscribe services (there, back), made on
    first use in the process that uses them: a publisher on one, a subscriber on the other."""

    def __init__(self, private: _IoxPrivate, max_size: int, publish: str, subscribe: str) -> None:
        self.private, self.max_size = private, max_size
        self.names = (publish, subscribe)
        self.node: Any = None
        self.ports: Any = None

    def open(self) -> tuple[Any, Any, Any, Any]:
        """(publisher, subscriber, the published service, the subscribed service). Both
        processes open or create the services at about the same time: if iceoryx2 refuses one
        of them (a service still being created by the other), it tries again until the
        timeout."""
        if self.ports is None:
            deadline = time.monotonic() + _IOX_READY_TIMEOUT
            while self.ports is None:
                try:
                    self.ports = self._ports()
                except Exception:
                    self.node = None
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.002)
        ports: tuple[Any, Any, Any, Any] = self.ports
        return ports

    def _ports(self) -> tuple[Any, Any, Any, Any]:
        import iceoryx2 as iox2  # type: ignore[import-not-found, import-untyped, unused-ignore]

        iox2.set_log_level(iox2.LogLevel.Fatal)
        message = _iox_message(self.max_size)
        depth = max(2, min(64, (16 << 20) // (self.max_size + 64)))
        config = iox2.config.default()
        config.global_cfg.prefix = iox2.FileName.new(self.private.prefix)
        config.global_cfg.root_path = iox2.Path.new(self.private.root)
        self.node = (
            iox2.NodeBuilder.new()
            .config(config)
            .signal_handling_mode(iox2.SignalHandlingMode.Disabled)
            .create(iox2.ServiceType.Ipc)
        )

        def service(suffix: str) -> Any:
            name = iox2.ServiceName.new(f"fastipc-bench/{suffix}")
            builder = self.node.service_builder(name).publish_subscribe(message)
            # nothing lost: a full subscriber buffer makes the publisher retry
            return (
                builder.enable_safe_overflow(False)
                .subscriber_max_buffer_size(depth)
                .history_size(0)
                .open_or_create()
            )

        out, into = service(self.names[0]), service(self.names[1])
        publisher = (
            out.publisher_builder()
            .backpressure_strategy(iox2.BackpressureStrategy.RetryUntilDelivered)
            .create()
        )
        return publisher, into.subscriber_builder().create(), out, into

    def wait_for_peer(self) -> None:
        """Until the other process's subscriber and publisher are there."""
        _, _, out, into = self.open()
        deadline = time.monotonic() + _IOX_READY_TIMEOUT
        while (
            out.dynamic_config.number_of_subscribers < 1
            or into.dynamic_config.number_of_publishers < 1
        ):
            if time.monotonic() > deadline:
                raise TimeoutError("the other side did not open its iceoryx2 ports")
            time.sleep(0.001)

    def sender(self) -> Callable[[bytes], None]:
        publisher = self.open()[0]
        loan, memmove, offset = publisher.loan_uninit, ctypes.memmove, _IOX_DATA
        length = ctypes.c_uint32.from_address

        def send(data: bytes) -> None:
            sample = loan()
            ptr = sample.payload_ptr
            length(ptr).value = len(data)
            memmove(ptr + offset, data, len(data))
            sample.assume_init().send()

        return send

    def poller(self) -> Callable[[], Any]:
        """A callable that busy-polls for the next sample, yielding the CPU every 256 empty polls
        (so that both sides can share one CPU); ``EOFError`` when the other process's publisher
        is gone (checked every 4096 empty polls)."""
        _, subscriber, _, into = self.open()
        receive, sched_yield = subscriber.receive, os.sched_yield

        def poll() -> Any:
            sample = receive()
            empty = 0
            while sample is None:
                empty += 1
                if not empty & 0xFF:
                    sched_yield()
                    if not empty & 0xFFF and into.dynamic_config.number_of_publishers < 1:
                        raise EOFError("the other side closed its publisher")
                sample = receive()
            return sample

        return poll

    def receiver(self) -> Callable[[], bytes]:
        poll = self.poller()
        length, string_at, offset = ctypes.c_uint32.from_address, ctypes.string_at, _IOX_DATA

        def recv() -> bytes:
            sample = poll()
            ptr = sample.payload_ptr
            data: bytes = string_at(ptr + offset, length(ptr).value)
            sample.delete()
            return data

        return recv

    def close(self) -> None:
        if self.ports is not None:
            publisher, subscriber, _, _ = self.ports
            self.ports = None
            publisher.delete()
            subscriber.delete()
            self.node = None


class _IoxClient:
    def __init__(self, end: _IoxEnd) -> None:
        self.end = end
        self.creator = os.getpid()

    def sender(self) -> Callable[[bytes], object]:
        self.end.wait_for_peer()
        return self.end.sender()

    def receiver(self) -> Callable[[], object]:
        return self.end.receiver()

    def received(self, result: object) -> bytes:
        assert isinstance(result, bytes)
        return result

    def close(self) -> None:
        if os.getpid() != self.creator:
            return
        end = self.end
        if end.ports is not None:
            with contextlib.suppress(Exception):
                end.sender()(b"")  # the sentinel: an empty message
                into = end.ports[3]
                deadline = time.monotonic() + 2.0
                while into.dynamic_config.number_of_publishers and time.monotonic() < deadline:
                    time.sleep(0.001)  # the echo side closes its ports
        end.close()
        end.private.remove()


class _IoxEcho:
    def __init__(self, end: _IoxEnd) -> None:
        self.end = end

    def serve(self) -> None:
        self.end.wait_for_peer()  # before the poll takes a missing publisher for the end
        poll, loan = self.end.poller(), self.end.open()[0].loan_uninit
        memmove, length = ctypes.memmove, ctypes.c_uint32.from_address
        try:
            while True:
                sample = poll()
                ptr = sample.payload_ptr
                n = length(ptr).value
                if not n:
                    return
                out = loan()
                memmove(out.payload_ptr, ptr, _IOX_DATA + n)
                sample.delete()
                out.assume_init().send()
        except EOFError:
            return
        finally:
            self.end.close()

    def drain(self) -> None:
        self.end.wait_for_peer()
        recv, send = self.end.receiver(), self.end.sender()

        def first() -> bytes | None:
            try:
                data = recv()
            except EOFError:
                return None
            return data or None

        try:
            drain_loop(first, lambda: len(recv()), send)
        finally:
            self.end.close()

    def close(self) -> None:
        pass  # nothing was made in the creating process


@register
class Iceoryx2(PairMechanism):
    name = "iceoryx2"
    summary = (
        "iceoryx2 publish-subscribe, a service each way: a ctypes payload (length + bytes) "
        "loaned, written, sent; receive busy-polled"
    )
    family = "optional"

    def unavailable(self) -> str | None:
        return missing("iceoryx2", "iceoryx2") or super().unavailable()

    def pair(self, env: Env) -> tuple[Client, Echo]:
        private = _IoxPrivate(env)
        size = max(env.max_size, 1)
        return (
            _IoxClient(_IoxEnd(private, size, "there", "back")),
            _IoxEcho(_IoxEnd(private, size, "back", "there")),
        )
