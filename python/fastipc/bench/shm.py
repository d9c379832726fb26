"""Semaphore and shared memory benchmarks between two processes: the measurements behind
``benches/test_shm.py``, as functions, and the shared-memory mechanisms of ``fastipc bench``.

Both functions fork a peer, pin both processes to the CPUs given (the same one for the stable
"same-core" figure), run a warm-up and then time every round on the parent's side with
``time.perf_counter_ns``. They return the samples in nanoseconds, one per round:

* :func:`semaphore_pingpong`: parent posts A, peer waits A and posts B, parent waits B.
* :func:`segment_handoff`: the memwriter/memreader pattern with a ``size``-byte segment: the
  parent fills it and posts "full", the peer waits, copies it all out and posts "empty".

Implementations (``impl``): ``"fastipc"`` (the active backend, or ``module=``), ``"posix_ipc"``,
``"multiprocessing"`` (``multiprocessing.Semaphore``, and ``multiprocessing.shared_memory`` for
the segment). Unix only (fork).
"""

from __future__ import annotations

import contextlib
import importlib
import os
import signal
import struct
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from types import FrameType, ModuleType
from typing import Any

from .affinity import pin, pinned
from .base import Client, Echo, Env, PairMechanism, drain_loop, register

__all__ = [
    "IMPLS",
    "BenchTimeout",
    "segment_handoff",
    "semaphore_pingpong",
    "semaphores",
    "unavailable",
]

IMPLS = ("fastipc", "posix_ipc", "multiprocessing")


class BenchTimeout(RuntimeError):
    """The peer stopped answering (it died, or the machine is stalled)."""


def unavailable(impl: str) -> str | None:
    """Why ``impl`` cannot run here, or None."""
    if not hasattr(os, "fork"):
        return "the benchmarks fork a peer process (Unix only)"
    if impl == "posix_ipc":
        try:
            importlib.import_module("posix_ipc")
        except ImportError:
            return "posix_ipc is not installed (pip install posix_ipc)"
    elif impl not in IMPLS:
        return f"unknown implementation {impl!r}; choose from {', '.join(IMPLS)}"
    return None


@dataclass
class _Sem:
    acquire: Callable[[], Any]
    release: Callable[[], Any]
    close: Callable[[], None]


def _fastipc_module(module: ModuleType | None) -> ModuleType:
    if module is not None:
        return module
    import fastipc

    return fastipc


def semaphores(impl: str, module: ModuleType | None, n: int, value: int = 0) -> list[_Sem]:
    """``n`` new semaphores of ``impl`` with ``value``, unlinked where they have a name (the
    handles a forked peer inherits are all it needs)."""
    sems: list[_Sem] = []
    for _ in range(n):
        if impl == "fastipc":
            s = _fastipc_module(module).Semaphore(None, create=True, value=value)
            s.unlink()  # the handles inherited by the peer are all that is needed
            sems.append(_Sem(s.acquire, s.release, s.close))
        elif impl == "posix_ipc":
            posix_ipc: Any = importlib.import_module("posix_ipc")
            p = posix_ipc.Semaphore(None, posix_ipc.O_CREX, mode=0o600, initial_value=value)
            p.unlink()
            sems.append(_Sem(p.acquire, p.release, p.close))
        elif impl == "multiprocessing":
            import multiprocessing

            m = multiprocessing.get_context("fork").Semaphore(value)
            sems.append(_Sem(m.acquire, m.release, lambda: None))
        else:
            raise ValueError(unavailable(impl))
    return sems


@contextlib.contextmanager
def _watchdog(seconds: int) -> Iterator[None]:
    def expired(signum: int, frame: FrameType | None) -> None:
        raise BenchTimeout(f"the benchmark peer did not answer within {seconds} s")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def _fork(peer: Callable[[], None], cpu: int | None) -> int:
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the peer
        status = 0
        try:
            pin(cpu)
            peer()
        except BaseException:
            status = 1
        finally:
            os._exit(status)
    return pid


def _reap(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, 0)


def semaphore_pingpong(
    impl: str,
    rounds: int = 20_000,
    *,
    warmup: int = 2_000,
    cpus: tuple[int | None, int | None] = (None, None),
    module: ModuleType | None = None,
    timeout: int = 120,
) -> list[int]:
    """Round trips of a semaphore ping-pong between this process and a forked peer, in ns.

    ``cpus`` is (this process's CPU, the peer's CPU); the same number for both is the same-core
    measurement. ``module`` picks a fastipc backend module for ``impl="fastipc"``.
    """
    ping, pong = semaphores(impl, module, 2)
    total = warmup + rounds

    def peer() -> None:
        wait, post = ping.acquire, pong.release
        for _ in range(total):
            wait()
            post()

    samples = [0] * rounds
    pid = _fork(peer, cpus[1])
    try:
        with pinned(cpus[0]), _watchdog(timeout):
            post, wait, now = ping.release, pong.acquire, time.perf_counter_ns
            for _ in range(warmup):
                post()
                wait()
            for i in range(rounds):
                start = now()
                post()
                wait()
                samples[i] = now() - start
        os.waitpid(pid, 0)
        pid = 0
    finally:
        if pid:
            _reap(pid)
        ping.close()
        pong.close()
    return samples


def _segment(impl: str, module: ModuleType | None, size: int) -> Any:
    """A new named segment of ``impl`` (its name stays until ``unlink``)."""
    if impl == "fastipc":
        return _fastipc_module(module).SharedMemory(None, create=True, size=size)
    if impl == "multiprocessing":
        from multiprocessing import shared_memory

        return shared_memory.SharedMemory(create=True, size=size)
    raise ValueError(f"segment_handoff compares 'fastipc' and 'multiprocessing', not {impl!r}")


def segment_handoff(
    impl: str,
    size: int = 1 << 20,
    rounds: int = 500,
    *,
    warmup: int = 50,
    cpus: tuple[int | None, int | None] = (None, None),
    module: ModuleType | None = None,
    timeout: int = 120,
) -> list[int]:
    """Rounds of the memwriter/memreader pattern through a ``size``-byte segment, in ns: this
    process fills the segment and posts "full"; the peer waits, copies the whole segment out
    and posts "empty". Throughput is ``size / sample``.

    ``impl`` is ``"fastipc"`` (its SharedMemory and Semaphore) or ``"multiprocessing"``
    (``multiprocessing.shared_memory`` and ``multiprocessing.Semaphore``).
    """
    seg = _segment(impl, module, size)
    full, empty = semaphores(impl, module, 2)
    buf = seg.buf
    payload = bytes(range(256)) * (size // 256) + bytes(size % 256)
    total = warmup + rounds

    def peer() -> None:
        # memoryview assignment is one memcpy (bytearray slice assignment from a foreign buffer
        # would first copy it into a temporary bytearray)
        sink = memoryview(bytearray(size))
        wait, post = full.acquire, empty.release
        for _ in range(total):
            wait()
            sink[:] = buf
            post()

    samples = [0] * rounds
    pid = _fork(peer, cpus[1])
    try:
        with pinned(cpus[0]), _watchdog(timeout):
            post, wait, now = full.release, empty.acquire, time.perf_counter_ns
            for _ in range(warmup):
                buf[:] = payload
                post()
                wait()
            for i in range(rounds):
                start = now()
                buf[:] = payload
                post()
                wait()
                samples[i] = now() - start
        os.waitpid(pid, 0)
        pid = 0
    finally:
        if pid:
            _reap(pid)
        full.close()
        empty.close()
        seg.close()
        seg.unlink()
    return samples


# -- as a mechanism of ``fastipc bench``: a one-slot channel each way -----------------------------

_LENGTH = struct.Struct("q")
_END = -1


class _Slot:
    """One direction: a length and a message in ``view``, handed over by two semaphores (``full``
    posted by the writer, ``empty`` by the reader once it has copied the message out)."""

    def __init__(self, view: memoryview, full: _Sem, empty: _Sem) -> None:
        self.view = view
        self.data = view[_LENGTH.size :]
        self.full, self.empty = full, empty

    def send(self, payload: Any) -> None:
        n = len(payload)
        self.empty.acquire()
        _LENGTH.pack_into(self.view, 0, n)
        self.data[:n] = payload
        self.full.release()

    def send_end(self) -> None:
        self.empty.acquire()
        _LENGTH.pack_into(self.view, 0, _END)
        self.full.release()

    def recv(self) -> bytes:
        """A new ``bytes`` per message, as ``recv_bytes`` gives; ``EOFError`` at the end."""
        self.full.acquire()
        (n,) = _LENGTH.unpack_from(self.view)
        data = bytes(self.data[:n]) if n >= 0 else None
        self.empty.release()
        if data is None:
            raise EOFError("the other side ended")
        return data

    def recv_into(self, sink: memoryview) -> int:
        self.full.acquire()
        (n,) = _LENGTH.unpack_from(self.view)
        if n >= 0:
            sink[:n] = self.data[:n]
        self.empty.release()
        if n < 0:
            raise EOFError("the other side ended")
        return int(n)


class _ShmPair:
    """A segment holding two slots (there and back) and their four semaphores."""

    def __init__(self, impl: str, module: ModuleType | None, max_size: int) -> None:
        self.impl = impl
        slot = _LENGTH.size + max_size
        self.seg = _segment(impl, module, 2 * slot)
        try:
            self.seg.unlink()  # the mappings (this process's and the forked one's) live on
            fulls = semaphores(impl, module, 2, 0)
            empties = semaphores(impl, module, 2, 1)
        except BaseException:
            self.seg.close()
            raise
        self.sems = fulls + empties
        self.buf: memoryview = self.seg.buf
        self.there = _Slot(self.buf[:slot], fulls[0], empties[0])
        self.back = _Slot(self.buf[slot : 2 * slot], fulls[1], empties[1])
        self.max_size = max_size
        self.creator = os.getpid()
        self.closed = False

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        for slot in (self.there, self.back):
            slot.data.release()
            slot.view.release()
        self.buf.release()
        for sem in self.sems:
            sem.close()
        self.seg.close()


class _ShmClient:
    def __init__(self, pair: _ShmPair) -> None:
        self.pair = pair

    def sender(self) -> Callable[[bytes], object]:
        return self.pair.there.send

    def receiver(self) -> Callable[[], object]:
        return self.pair.back.recv

    def received(self, result: object) -> bytes:
        assert isinstance(result, bytes)
        return result

    def close(self) -> None:
        pair = self.pair
        if os.getpid() != pair.creator:
            return  # the forked echo keeps the pair; it leaves with os._exit
        if not pair.closed:
            with contextlib.suppress(OSError, ValueError):
                pair.there.send_end()
        pair.close()


class _ShmEcho:
    def __init__(self, pair: _ShmPair) -> None:
        self.pair = pair

    def serve(self) -> None:
        there, back = self.pair.there, self.pair.back
        t_full, t_empty, b_full, b_empty = there.full, there.empty, back.full, back.empty
        t_view, t_data, b_view, b_data = there.view, there.data, back.view, back.data
        unpack_from, pack_into = _LENGTH.unpack_from, _LENGTH.pack_into
        while True:
            t_full.acquire()
            (n,) = unpack_from(t_view)
            if n < 0:
                return
            # the message goes straight from one slot to the other: one copy
            b_empty.acquire()
            b_data[:n] = t_data[:n]
            pack_into(b_view, 0, n)
            t_empty.release()
            b_full.release()

    def drain(self) -> None:
        there, back = self.pair.there, self.pair.back
        sink = memoryview(bytearray(self.pair.max_size))
        recv_into = there.recv_into

        def first() -> bytes | None:
            try:
                return there.recv()
            except EOFError:
                return None

        drain_loop(first, lambda: recv_into(sink), back.send)

    def close(self) -> None:
        if os.getpid() != self.pair.creator:
            self.pair.close()
        # in the creating process the client closes the shared pair


class _Shm(PairMechanism):
    impl: str = "fastipc"

    def pair(self, env: Env) -> tuple[Client, Echo]:
        module = env.impl if self.impl == "fastipc" else None
        shared = _ShmPair(self.impl, module, max(env.max_size, 1))
        return _ShmClient(shared), _ShmEcho(shared)


@register
class FastipcShm(_Shm):
    name = "fastipc-shm"
    summary = "fastipc.SharedMemory + fastipc.Semaphore: one slot each way, copied in and out"
    uses_fastipc = True
    counterpart = "mp-shm"


@register
class MultiprocessingShm(_Shm):
    name = "mp-shm"
    summary = "multiprocessing.shared_memory + multiprocessing.Semaphore, the same slots"
    impl = "multiprocessing"
