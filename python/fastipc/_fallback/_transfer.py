"""Messages in and out of a ring port, for both ``Queue`` and ``Channel``: records written whole
or in a segment of their own, copied out into new objects or the caller's buffer, held in place
(views) or reserved in place (reservations). Timeouts surface as ``Expired``; the callers turn it
into ``queue.Full``/``queue.Empty`` or ``TimeoutError``."""

from __future__ import annotations

import contextlib
from typing import Any

from .._errors import BufferTooShort, IPCError, MessageTooLarge
from . import _codec
from ._ring import REC_DATA, REC_EXTERNAL, record_size
from ._ringhandle import RingHandle
from ._ringops import Port, as_bytes_view
from ._shm import SharedMemory
from ._views import MessageView, Reservation

__all__ = ["hold", "put_bytes", "put_object", "put_record", "reserve", "take_bytes", "take_into"]

_MAX_INLINE = 0xFFFFFFFF


def fits(port: Port, length: int) -> bool:
    return length <= _MAX_INLINE and record_size(length) <= port.ring.capacity


def put_record(
    port: Port,
    kind: int,
    aux: int,
    parts: list[Any],
    length: int,
    *,
    maxsize: int,
    deadline: float | None,
) -> None:
    if fits(port, length):
        port.put(parts, length, kind=kind, aux=aux, maxsize=maxsize, deadline=deadline)
        return
    seg = _codec.make_external(parts, length)
    name = seg.name
    assert name is not None
    seg.close()
    ref = _codec.external_ref(name, kind, aux, length)
    try:
        port.put([ref], len(ref), kind=REC_EXTERNAL, aux=0, maxsize=maxsize, deadline=deadline)
    except BaseException:
        with contextlib.suppress(OSError):
            seg.unlink()
        raise


def put_object(port: Port, obj: object, maxsize: int, deadline: float | None) -> None:
    kind, aux, parts, length = _codec.encode(obj)
    put_record(port, kind, aux, parts, length, maxsize=maxsize, deadline=deadline)


def put_bytes(port: Port, buf: Any, maxsize: int, deadline: float | None) -> None:
    view = as_bytes_view(buf)
    put_record(port, REC_DATA, 0, [view], len(view), maxsize=maxsize, deadline=deadline)


def take_message(port: Port, deadline: float | None) -> _codec.Message:
    what = port.ring.what
    done: list[SharedMemory] = []
    try:
        return port.take(deadline, lambda k, a, p: _codec.take_message(k, a, p, what, done))
    finally:
        _free(done)


def _free(done: list[SharedMemory]) -> None:
    for seg in done:
        _codec.free_external(seg)


def take_bytes(port: Port, deadline: float | None, maxlength: int | None = None) -> bytes:
    """The next message's bytes; ``MessageTooLarge`` (the message consumed) past ``maxlength``."""
    msg = take_message(port, deadline)
    if maxlength is not None and len(msg.data) > maxlength:
        raise MessageTooLarge(
            f"a message of {len(msg.data)} bytes is longer than maxlength={maxlength}"
        )
    return msg.data


def take_into(port: Port, dest: Any, offset: int, deadline: float | None) -> int:
    """Copies the next message into ``dest[offset:]``; ``BufferTooShort`` if it does not fit."""
    view = memoryview(dest)
    if view.readonly:
        raise TypeError("the buffer to receive into must be writable")
    target = view.cast("B") if view.format != "B" or view.ndim != 1 else view
    what = port.ring.what
    room = len(target) - offset
    done: list[SharedMemory] = []

    def consume(kind: int, aux: int, payload: memoryview) -> tuple[int, bytes | None]:
        if kind == REC_EXTERNAL or len(payload) > room:
            data = _codec.take_message(kind, aux, payload, what, done).data
            if len(data) > room:
                return len(data), data
            target[offset : offset + len(data)] = data
            return len(data), None
        target[offset : offset + len(payload)] = payload
        return len(payload), None

    try:
        n, too_long = port.take(deadline, consume)
    finally:
        _free(done)
    if too_long is not None:
        raise BufferTooShort(too_long)
    return n


def hold(handle: RingHandle, port: Port, deadline: float | None) -> MessageView:
    kind, _aux, payload, done = port.hold(deadline)
    if kind != REC_EXTERNAL:
        return MessageView(payload, handle._held(done))
    try:
        _inner, _aux, seg, length = _codec.open_external(payload, port.ring.what)
    except IPCError:
        done()  # a malformed reference is dropped
        raise
    except BaseException:
        port.release(port.b_cons)  # interrupted: the message stays for the next consumer
        raise
    finally:
        payload.release()

    def free() -> None:
        # consumed first, then freed: a consumer killed while it holds the view loses nothing
        try:
            done()
        finally:
            _codec.free_external(seg)

    return MessageView(seg.buf[:length], handle._held(free))


def reserve(
    handle: RingHandle, port: Port, n: int, maxsize: int, deadline: float | None
) -> Reservation:
    if isinstance(n, bool) or not isinstance(n, int):
        raise TypeError(f"n must be an int, not {type(n).__name__}")
    if n < 0:
        raise ValueError(f"cannot reserve a negative number of bytes ({n})")
    if fits(port, n):
        view, finish = port.reserve(n, maxsize, deadline)
        return Reservation(view, n, handle._held(finish))
    seg = _codec.make_external([], n)

    def finish_external(size: int | None) -> None:
        if size is None:
            _codec.free_external(seg)
            return
        name = seg.name
        assert name is not None
        seg.close()
        ref = _codec.external_ref(name, REC_DATA, 0, size)
        try:
            port.put([ref], len(ref), kind=REC_EXTERNAL, aux=0, maxsize=maxsize, deadline=None)
        except BaseException:
            with contextlib.suppress(OSError):
                seg.unlink()
            raise

    return Reservation(seg.buf[:n], n, handle._held(finish_external))
