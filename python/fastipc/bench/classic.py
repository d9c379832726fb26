"""Round-trip mechanisms of the classic IPC kinds, for ``benches/test_classic.py`` and
``fastipc bench`` (they are in its registry).

Each is a :class:`~fastipc.bench.base.PairMechanism`: the client process makes two one-way
channels (there and back), forks the echo side, and times ``send(payload)`` then ``recv()``.
Pipes and FIFOs carry a 4-byte length prefix and the payload in one write; a message queue
carries one message per queue message. Every baseline does the same work with the standard
library (``os.pipe``) or ``posix_ipc``, so that the ratios compare like with like.

:func:`measure` runs one mechanism without pytest and returns the samples (nanoseconds per
round trip), with both processes pinned to one CPU when asked.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import struct
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from typing import Any

from .. import NotSupportedError
from .._version import BENCH_EXTRA
from .affinity import pinned
from .base import (
    REGISTRY,
    Client,
    Echo,
    Env,
    Mechanism,
    PairMechanism,
    drain_loop,
    fork_echo,
    register,
)

__all__ = ["CLASSIC", "measure"]

_HEADER = struct.Struct("!i")

CLASSIC: dict[str, Mechanism] = {}


def _classic(cls: type[Mechanism]) -> type[Mechanism]:
    register(cls)
    CLASSIC[cls.name] = REGISTRY[cls.name]
    return cls


class _Owned:
    """Closes the descriptors it was given once; knows the process that made them."""

    def __init__(self, closers: list[Callable[[], object]]) -> None:
        self.closers = closers
        self.creator = os.getpid()

    def close(self) -> None:
        closers, self.closers = self.closers, []
        for close in closers:
            with contextlib.suppress(OSError):
                close()


# -- pipes and FIFOs: fastipc PipeReader/PipeWriter ------------------------------------------------


class _EndsClient(_Owned):
    def __init__(self, r: Any, w: Any, closers: list[Callable[[], object]]) -> None:
        super().__init__(closers)
        self.r, self.w = r, w

    def sender(self) -> Callable[[bytes], object]:
        write_all = self.w.write_all
        pack = _HEADER.pack
        return lambda payload: write_all(pack(len(payload)) + payload)

    def receiver(self) -> Callable[[], object]:
        read_exact = self.r.read_exact
        unpack = _HEADER.unpack

        def recv() -> bytes:
            (n,) = unpack(read_exact(4))
            data: bytes = read_exact(n) if n else b""
            return data

        return recv

    def received(self, result: object) -> bytes:
        assert isinstance(result, bytes)
        return result


class _EndsEcho(_Owned):
    def __init__(self, r: Any, w: Any, closers: list[Callable[[], object]]) -> None:
        super().__init__(closers)
        self.r, self.w = r, w

    def serve(self) -> None:
        read_exact, write_all = self.r.read_exact, self.w.write_all
        while True:
            try:
                header = read_exact(4)
            except EOFError:
                return
            (n,) = _HEADER.unpack(header)
            write_all(header + (read_exact(n) if n else b""))

    def drain(self) -> None:
        read_exact, readinto = self.r.read_exact, self.r.readinto
        buf = bytearray(1 << 16)
        view = memoryview(buf)
        unpack = _HEADER.unpack

        def first() -> bytes | None:
            try:
                (n,) = unpack(read_exact(4))
            except EOFError:
                return None
            data: bytes = read_exact(n)
            return data

        def receive() -> int:
            # read the whole message into one reused buffer: no new object per message
            (n,) = unpack(read_exact(4))
            left = n
            while left:
                left -= readinto(view, min(left, len(view)))
            return int(n)

        drain_loop(first, receive, lambda data: self.w.write_all(_HEADER.pack(len(data)) + data))


@_classic
class FastipcPipe(PairMechanism):
    name = "fastipc-pipe"
    summary = "fastipc.pipe() twice: write_all of prefix+payload, read_exact"
    uses_fastipc = True
    counterpart = "os-pipe"

    def pair(self, env: Env) -> tuple[Client, Echo]:
        b = env.fastipc()
        r1, w1 = b.pipe()
        r2, w2 = b.pipe()
        client = _EndsClient(r2, w1, [r2.close, w1.close])
        echo = _EndsEcho(r1, w2, [r1.close, w2.close])
        return client, echo


@_classic
class FastipcFifo(PairMechanism):
    name = "fastipc-fifo"
    summary = "two fastipc.FIFO: write_all of prefix+payload, read_exact"
    uses_fastipc = True
    counterpart = "os-pipe"

    def unavailable(self) -> str | None:
        return super().unavailable() or (None if hasattr(os, "mkfifo") else "no FIFOs here")

    def pair(self, env: Env) -> tuple[Client, Echo]:
        b = env.fastipc()
        ends: dict[str, Any] = {}
        paths = [os.path.join(env.socket_dir, f"fifo-{os.getpid()}-{i}") for i in (1, 2)]
        fifos = [b.FIFO(p, create=True) for p in paths]
        try:
            for fifo, key in zip(fifos, ("r1", "r2"), strict=True):
                t = threading.Thread(
                    target=lambda f=fifo, k=key: ends.setdefault(k, f.open_reader(10))
                )
                t.start()
                ends["w" + key[1]] = fifo.open_writer(10)
                t.join(10)
        finally:
            for fifo in fifos:
                fifo.unlink()  # the open ends live on; nothing stays in the directory
        client = _EndsClient(ends["r2"], ends["w1"], [ends["r2"].close, ends["w1"].close])
        echo = _EndsEcho(ends["r1"], ends["w2"], [ends["r1"].close, ends["w2"].close])
        return client, echo


# -- os.pipe, as a careful user writes it ------------------------------------------------------


def _read_exact(fd: int, n: int) -> bytes:
    data = os.read(fd, n)
    if len(data) == n or not data:
        return data
    parts = [data]
    got = len(data)
    while got < n:
        more = os.read(fd, n - got)
        if not more:
            raise EOFError("pipe closed inside a message")
        parts.append(more)
        got += len(more)
    return b"".join(parts)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


class _OsPipeClient(_Owned):
    def __init__(self, r: int, w: int) -> None:
        super().__init__([lambda: os.close(r), lambda: os.close(w)])
        self.r, self.w = r, w

    def sender(self) -> Callable[[bytes], object]:
        w, pack = self.w, _HEADER.pack
        return lambda payload: _write_all(w, pack(len(payload)) + payload)

    def receiver(self) -> Callable[[], object]:
        r, unpack = self.r, _HEADER.unpack

        def recv() -> bytes:
            header = _read_exact(r, 4)
            if len(header) < 4:
                raise EOFError("pipe closed")
            (n,) = unpack(header)
            return _read_exact(r, n) if n else b""

        return recv

    def received(self, result: object) -> bytes:
        assert isinstance(result, bytes)
        return result


class _OsPipeEcho(_Owned):
    def __init__(self, r: int, w: int) -> None:
        super().__init__([lambda: os.close(r), lambda: os.close(w)])
        self.r, self.w = r, w

    def serve(self) -> None:
        while True:
            header = _read_exact(self.r, 4)
            if len(header) < 4:
                return
            (n,) = _HEADER.unpack(header)
            _write_all(self.w, header + (_read_exact(self.r, n) if n else b""))

    def drain(self) -> None:
        r = self.r
        buf = bytearray(1 << 16)
        view = memoryview(buf)
        unpack = _HEADER.unpack

        def first() -> bytes | None:
            header = _read_exact(r, 4)
            if len(header) < 4:
                return None
            return _read_exact(r, unpack(header)[0])

        def receive() -> int:
            (n,) = unpack(_read_exact(r, 4))
            left = n
            while left:
                got = os.readv(r, [view[: min(left, len(view))]])
                if not got:
                    raise EOFError("pipe closed inside a message")
                left -= got
            return int(n)

        drain_loop(first, receive, lambda data: _write_all(self.w, _HEADER.pack(len(data)) + data))


@_classic
class OsPipe(PairMechanism):
    name = "os-pipe"
    summary = "os.pipe() twice: os.write of prefix+payload, os.read (baseline)"

    def pair(self, env: Env) -> tuple[Client, Echo]:
        r1, w1 = os.pipe()
        r2, w2 = os.pipe()
        return _OsPipeClient(r2, w1), _OsPipeEcho(r1, w2)


# -- POSIX message queues: fastipc and posix_ipc --------------------------------------------------


class _QueueClient(_Owned):
    """send on ``there``, receive on ``back``; closing in the creating process sends an empty
    message, which ends the echo side (a queue has no end of file)."""

    def __init__(self, there: Any, back: Any, send: Callable[[bytes], object]) -> None:
        super().__init__([there.close, back.close])
        self.there, self.back, self._send = there, back, send

    def sender(self) -> Callable[[bytes], object]:
        return self._send

    def receiver(self) -> Callable[[], object]:
        receive: Callable[[], object] = self.back.receive
        return receive

    def received(self, result: object) -> bytes:
        assert isinstance(result, tuple)
        data = result[0]
        assert isinstance(data, bytes)
        return data

    def close(self) -> None:
        if os.getpid() == self.creator and self.closers:
            with contextlib.suppress(OSError):
                self._send(b"")
        super().close()


class _QueueEcho(_Owned):
    def __init__(self, there: Any, back: Any, send: Callable[[bytes], object]) -> None:
        super().__init__([there.close, back.close])
        self.there, self.back, self._send = there, back, send

    def serve(self) -> None:
        receive, send = self.there.receive, self._send
        while True:
            data = receive()[0]
            if not data:
                return
            send(data)

    def drain(self) -> None:
        receive = self.there.receive

        def first() -> bytes | None:
            data: bytes = receive()[0]
            return data or None

        drain_loop(first, lambda: len(receive()[0]), self._send)


def _queue_limits(size: int) -> int:
    """How many messages each of two queues may hold within RLIMIT_MSGQUEUE (1 to 8)."""
    try:
        import resource

        limit = resource.getrlimit(resource.RLIMIT_MSGQUEUE)[0]
    except (ImportError, AttributeError, OSError):
        return 8
    if limit == resource.RLIM_INFINITY:
        return 8
    return max(1, min(8, limit // (2 * (size + 64))))


def _queue_error(size: int, exc: OSError) -> NotSupportedError:
    return NotSupportedError(
        f"the kernel refuses a queue of {size}-byte messages ({exc.strerror or exc}; the limits "
        "are /proc/sys/fs/mqueue/msgsize_max and ulimit -q)"
    )


def _queue_names() -> list[str]:
    return [f"/fastipc-bench-{os.getpid()}-{time.monotonic_ns()}-{i}" for i in (1, 2)]


@_classic
class FastipcQueue(PairMechanism):
    name = "fastipc-mq"
    summary = "two fastipc.MessageQueue: send, receive"
    uses_fastipc = True
    counterpart = "posix_ipc-mq"

    def unavailable(self) -> str | None:
        if not os.path.isdir("/proc/sys/fs/mqueue") and not sys.platform.startswith("linux"):
            return "POSIX message queues are Linux only here"
        return super().unavailable()

    def pair(self, env: Env) -> tuple[Client, Echo]:
        b = env.fastipc()
        size = max(env.max_size, 1)
        count = _queue_limits(size)
        mine: list[Any] = []
        theirs: list[Any] = []
        try:
            for name in _queue_names():
                try:
                    queue = b.MessageQueue(
                        name, create=True, max_messages=count, max_message_size=size
                    )
                except OSError as exc:
                    raise NotSupportedError(str(exc)) from None
                mine.append(queue)
                theirs.append(b.MessageQueue(name))  # the echo side's own descriptor
                queue.unlink()  # the descriptors live on; nothing stays in /dev/mqueue
        except BaseException:
            for q in mine + theirs:
                q.close()
            raise
        client = _QueueClient(mine[0], mine[1], mine[0].send)
        return client, _QueueEcho(theirs[0], theirs[1], theirs[1].send)


@_classic
class PosixIpcQueue(PairMechanism):
    name = "posix_ipc-mq"
    summary = "two posix_ipc.MessageQueue: send, receive (baseline)"
    family = "optional"

    def unavailable(self) -> str | None:
        try:
            import posix_ipc  # type: ignore[import-not-found, unused-ignore]  # noqa: F401
        except ImportError:
            return f"posix_ipc is not installed ({BENCH_EXTRA})"
        return super().unavailable()

    def pair(self, env: Env) -> tuple[Client, Echo]:
        import posix_ipc  # type: ignore[import-not-found, unused-ignore]

        size = max(env.max_size, 1)
        count = _queue_limits(size)
        mine: list[Any] = []
        theirs: list[Any] = []
        try:
            for name in _queue_names():
                try:
                    queue = posix_ipc.MessageQueue(
                        name,
                        posix_ipc.O_CREX,
                        mode=0o600,
                        max_messages=count,
                        max_message_size=size,
                    )
                except (OSError, ValueError, posix_ipc.Error) as exc:
                    raise _queue_error(size, OSError(0, str(exc))) from None
                mine.append(queue)
                theirs.append(posix_ipc.MessageQueue(name))
                queue.unlink()
        except BaseException:
            for q in mine + theirs:
                q.close()
            raise
        client = _QueueClient(mine[0], mine[1], mine[0].send)
        return client, _QueueEcho(theirs[0], theirs[1], theirs[1].send)


# -- running one without pytest -------------------------------------------------------------------


def measure(
    name: str,
    *,
    backend: Any = None,
    size: int = 64,
    rounds: int = 20000,
    warmup: int = 2000,
    cpu: int | None = None,
) -> list[int]:
    """Round trips of ``size`` bytes through mechanism ``name``, the echo side in a forked
    process; both pinned to ``cpu`` when given. Returns nanoseconds per round trip."""
    mechanism = CLASSIC[name]
    reason = mechanism.unavailable()
    if reason is not None:
        raise RuntimeError(f"{name}: {reason}")
    assert isinstance(mechanism, PairMechanism)
    socket_dir = tempfile.mkdtemp(prefix="fastipc-bench-")
    try:
        client, echo = mechanism.pair(Env(socket_dir=socket_dir, max_size=size, impl=backend))
        pid = fork_echo(echo, client, cpu)
        try:
            with pinned(cpu):
                return _time_round_trips(client, size, rounds, warmup)
        finally:
            client.close()
            os.waitpid(pid, 0)
    finally:
        shutil.rmtree(socket_dir, ignore_errors=True)


def _time_round_trips(client: Client, size: int, rounds: int, warmup: int) -> list[int]:
    payload = bytes(range(256)) * (size // 256) + bytes(range(size % 256))
    send, recv = client.sender(), client.receiver()
    for _ in range(warmup):
        send(payload)
        recv()
    send(payload)
    assert client.received(recv()) == payload, "the echo returned different bytes"
    clock = time.perf_counter_ns
    samples = []
    for _ in range(rounds):
        t = clock()
        send(payload)
        recv()
        samples.append(clock() - t)
    return samples
