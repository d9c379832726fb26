"""Pickling with descriptors: sockets, files and fastipc connections handed to another process.

``Connection.send(obj)`` pickles ``obj``; where ``obj`` holds a ``socket.socket``, a file object
(``open()``'s ``FileIO``, ``BufferedReader``/``Writer``/``Random``, ``TextIOWrapper``) or a
``fastipc.Connection``, its descriptor travels with the message (SCM_RIGHTS) and ``recv()`` on
the other side rebuilds an object of the same kind on the received descriptor. The sender keeps
its own object open; both then share the socket or open file (and a file's position).

Plain objects take the fast path: ``pickle.dumps`` refuses exactly the objects above (they are
not picklable), and only then is the descriptor-aware pickler used. Descriptors that arrive but
are not claimed by the unpickled object are closed: nothing leaks.
"""

from __future__ import annotations

import copyreg
import functools
import io
import os
import pickle
import socket
import sys
import threading
from collections.abc import Callable
from typing import Any

from ._errors import UnpicklingError

__all__ = ["dumps", "loaded_connection_types", "loads", "register_with_multiprocessing"]

_local = threading.local()


def _out() -> list[int]:
    out: list[int] | None = getattr(_local, "out", None)
    if out is None:  # pragma: no cover - only reachable through misuse of the reducers
        raise pickle.PicklingError("descriptor-carrying objects pickle only through fastipc")
    return out


def _add(fd: int) -> int:
    out = _out()
    out.append(fd)
    return len(out) - 1


def _take(index: int) -> int:
    slots: list[int | None] | None = getattr(_local, "slots", None)
    if slots is None or not 0 <= index < len(slots) or slots[index] is None:
        raise pickle.UnpicklingError("message refers to a descriptor that did not arrive")
    fd = slots[index]
    slots[index] = None
    assert fd is not None
    return fd


def _rebuild_socket(index: int, family: int, type_: int, proto: int) -> socket.socket:
    return socket.socket(family, type_, proto, fileno=_take(index))


def _rebuild_file(
    index: int, mode: str, buffering: int, encoding: str | None, errors: str | None
) -> Any:
    fd = _take(index)
    try:
        if "b" in mode:
            return os.fdopen(fd, mode, buffering=buffering)
        return os.fdopen(fd, mode, buffering=buffering, encoding=encoding, errors=errors)
    except BaseException:
        os.close(fd)
        raise


def _rebuild_connection(index: int, address: str) -> Any:
    import fastipc

    fd = _take(index)
    try:
        return fastipc.fromfd(fd, address=address)
    finally:
        os.close(fd)  # fromfd works on a duplicate


def _reduce_socket(s: socket.socket) -> tuple[Callable[..., Any], tuple[Any, ...]]:
    return _rebuild_socket, (_add(s.fileno()), int(s.family), int(s.type), s.proto)


def _reduce_raw(f: io.FileIO) -> tuple[Callable[..., Any], tuple[Any, ...]]:
    return _rebuild_file, (_add(f.fileno()), f.mode, 0, None, None)


def _reduce_buffered(f: Any) -> tuple[Callable[..., Any], tuple[Any, ...]]:
    if f.writable():
        f.flush()
    return _rebuild_file, (_add(f.fileno()), f.mode, -1, None, None)


def _reduce_text(f: io.TextIOWrapper) -> tuple[Callable[..., Any], tuple[Any, ...]]:
    if f.writable():
        f.flush()
    return _rebuild_file, (_add(f.fileno()), f.mode, -1, f.encoding, f.errors)


def _reduce_connection(c: Any) -> tuple[Callable[..., Any], tuple[Any, ...]]:
    return _rebuild_connection, (_add(c.fileno()), c.address)


def _connection_types() -> list[type]:
    found: list[type] = []
    try:
        from . import _fastipc

        found.append(_fastipc.Connection)
    except ImportError:
        pass
    from . import _fallback

    found.append(_fallback.Connection)
    return found


@functools.cache
def _dispatch_table() -> dict[type, Any]:
    table: dict[type, Any] = dict(copyreg.dispatch_table)
    table[socket.socket] = _reduce_socket
    table[io.FileIO] = _reduce_raw
    buffered: tuple[type, ...] = (io.BufferedReader, io.BufferedWriter, io.BufferedRandom)
    for cls in buffered:
        table[cls] = _reduce_buffered
    table[io.TextIOWrapper] = _reduce_text
    for cls in _connection_types():
        table[cls] = _reduce_connection
    return table


class _SentFd:
    """A descriptor that travels with the message (its index among the message's descriptors):
    what ``multiprocessing.reduction.DupFd`` gives while :class:`_SendingPopen` stands in."""

    def __init__(self, index: int) -> None:
        self.index = index

    def detach(self) -> int:
        """The received descriptor, now the caller's."""
        return _take(self.index)


class _SendingPopen:
    """Stands in for ``multiprocessing``'s spawning process while a message is pickled: objects
    that hand their descriptors to a child through ``multiprocessing.reduction.DupFd`` (the
    shared-memory ``Queue`` and ``Channel`` of both backends, ``multiprocessing``'s own
    connections) hand them to the message instead, as descriptor passing."""

    @staticmethod
    def duplicate_for_child(fd: int) -> int:
        return _add(fd)

    @staticmethod
    def DupFd(index: int) -> _SentFd:  # the name multiprocessing calls
        return _SentFd(index)


def dumps(obj: object) -> tuple[bytes, list[int]]:
    """Pickles ``obj``; returns the bytes and the descriptors to send with them (borrowed from
    the objects, which stay open)."""
    try:
        return pickle.dumps(obj), []
    except (TypeError, pickle.PicklingError):
        pass
    from multiprocessing import context

    out: list[int] = []
    buf = io.BytesIO()
    pickler = pickle.Pickler(buf)
    pickler.dispatch_table = _dispatch_table()
    _local.out = out
    spawning = context.get_spawning_popen()
    context.set_spawning_popen(_SendingPopen)  # type: ignore[arg-type]  # duck-typed
    try:
        pickler.dump(obj)
    finally:
        context.set_spawning_popen(spawning)
        _local.out = None
    return buf.getvalue(), out


def loads(data: bytes, fds: list[int]) -> object:
    """Unpickles ``data`` with the received descriptors ``fds`` (owned by this call: the ones
    the object does not take are closed). Whatever unpickling raises (an ``Exception``) comes
    out as ``fastipc.UnpicklingError`` with the original as ``__cause__``."""
    if not fds:
        return _unpickle(data)
    slots: list[int | None] = list(fds)
    _local.slots = slots
    try:
        return _unpickle(data)
    finally:
        _local.slots = None
        for fd in slots:
            if fd is not None:
                os.close(fd)


def _unpickle(data: bytes) -> object:
    """``pickle.loads``; a failure (garbage, a truncated pickle, a class that is not there, an
    object whose ``__setstate__`` raises ...) is one ``UnpicklingError``, the cause chained."""
    try:
        return pickle.loads(data)
    except Exception as e:
        raise UnpicklingError(
            f"cannot unpickle the received message of {len(data)} bytes: {type(e).__name__}: {e}"
        ) from e


# ---------------------------------------------------------------------------------------------
# multiprocessing: connections as arguments of a Process, and in its queues


def loaded_connection_types() -> tuple[type, ...]:
    """The ``Connection`` classes of the backends imported so far (a connection of a backend
    that is not imported cannot exist), without importing the other one."""
    found: list[type] = []
    for name in ("fastipc._fastipc", "fastipc._fallback"):
        cls = getattr(sys.modules.get(name), "Connection", None)
        if isinstance(cls, type):
            found.append(cls)
    return tuple(found)


def _reduce_for_process(conn: Any) -> tuple[Callable[..., Any], tuple[Any, ...]]:
    """How ``multiprocessing`` pickles a fastipc connection: a duplicate of its descriptor that
    ``multiprocessing.reduction.DupFd`` hands to the other process (passed to a spawned or
    forkserver child with its start, or through the resource sharer otherwise), as it does for
    its own connections."""
    from multiprocessing import reduction

    backend = "python" if type(conn).__module__.startswith("fastipc._fallback") else "rust"
    dup = reduction.DupFd(conn.fileno())
    return _rebuild_for_process, (dup, backend, conn.address, conn.max_message)


def _rebuild_for_process(dup: Any, backend: str, address: str, max_message: int) -> Any:
    if backend == "python":
        from . import _fallback as module
    else:
        from . import _fastipc as module  # type: ignore[no-redef]
    fd = dup.detach()
    try:
        return module.fromfd(fd, address=address, max_message=max_message)
    finally:
        os.close(fd)  # fromfd works on a duplicate


def register_with_multiprocessing(cls: type) -> None:
    """Lets ``multiprocessing`` pickle the connections of class ``cls`` (``Process`` arguments
    under the spawn and forkserver start methods, ``multiprocessing`` queues and connections).
    Each backend registers its own class when it is imported."""
    from multiprocessing import reduction

    reduction.register(cls, _reduce_for_process)
