"""What the fallback's rings carry: objects through pickle protocol 5 with out-of-band buffers,
and messages too large for the ring in a segment of their own.

* ``DATA``: the bytes of ``put_bytes``, or a pickle without out-of-band buffers.
* ``OOB``: ``aux`` buffers; the payload is their lengths and the pickle's (u64 each, pickle
  first), then the pickle, then each buffer's bytes (one copy in, one copy out).
* ``EXTERNAL``: a reference to a segment of its own (``/fastipc-<16 hex>``, recorded in the
  registry, so ``fastipc ls`` and ``fastipc clean`` know it) holding the payload of a record of
  the kind and aux it names; the receiver unlinks it.
"""

from __future__ import annotations

import contextlib
import pickle
import re
import struct
from collections.abc import Sequence
from typing import Any

from .._errors import IPCError, UnpicklingError
from ._ring import REC_DATA, REC_EXTERNAL, REC_OOB, corrupt
from ._shm import SharedMemory

__all__ = ["Message", "encode", "external_ref", "open_external", "take_message"]

_REF = struct.Struct("<QHHI")
_EXTERNAL_NAME = re.compile(r"/fastipc-[0-9a-f]{16}")
_MAX_BUFFERS = 0xFFFF


def encode(obj: object) -> tuple[int, int, list[Any], int]:
    """``obj`` pickled: record kind, aux, the parts to write in order and their total length."""
    buffers: list[pickle.PickleBuffer] = []
    data = pickle.dumps(obj, protocol=5, buffer_callback=buffers.append)
    if not buffers:
        return REC_DATA, 0, [data], len(data)
    try:
        raws = [b.raw() for b in buffers]
    except BufferError:  # a non-contiguous buffer: in band, then
        raws = []
    if not raws or len(raws) > _MAX_BUFFERS:
        data = pickle.dumps(obj, protocol=5)
        return REC_DATA, 0, [data], len(data)
    prefix = struct.pack(f"<{1 + len(raws)}Q", len(data), *(r.nbytes for r in raws))
    parts: list[Any] = [prefix, data, *raws]
    return REC_OOB, len(raws), parts, len(prefix) + len(data) + sum(r.nbytes for r in raws)


class Message:
    """A message copied out of the ring: its pickle (or bytes) and out-of-band buffers."""

    __slots__ = ("buffers", "data", "kind")

    def __init__(self, kind: int, data: bytes, buffers: list[bytearray] | None) -> None:
        self.kind, self.data, self.buffers = kind, data, buffers

    def load(self) -> Any:
        try:
            return pickle.loads(self.data, buffers=self.buffers)
        except Exception as exc:
            raise UnpicklingError(f"the message does not unpickle: {exc!r}") from exc


def _split_oob(aux: int, payload: memoryview, what: str) -> tuple[memoryview, list[memoryview]]:
    head = 8 * (1 + aux)
    if aux == 0 or len(payload) < head:
        raise corrupt(what, "an out-of-band message without its lengths")
    lengths = struct.unpack_from(f"<{1 + aux}Q", payload, 0)
    if sum(lengths) != len(payload) - head:
        raise corrupt(what, "out-of-band lengths that do not add up")
    parts, at = [], head
    for n in lengths:
        parts.append(payload[at : at + n])
        at += n
    return parts[0], parts[1:]


def copy_message(kind: int, aux: int, payload: memoryview, what: str) -> Message:
    """Copies a DATA or OOB payload out (the one copy out)."""
    if kind == REC_OOB:
        data, bufs = _split_oob(aux, payload, what)
        return Message(kind, bytes(data), [bytearray(b) for b in bufs])
    return Message(kind, bytes(payload), None)


def take_message(
    kind: int, aux: int, payload: memoryview, what: str, done: list[SharedMemory]
) -> Message:
    """The message of any record. An external one is copied from its segment, which goes into
    ``done``: the caller frees it once the record is consumed (a consumer killed in between
    leaves a segment for ``fastipc clean``, never a reference to a segment that is gone)."""
    if kind != REC_EXTERNAL:
        return copy_message(kind, aux, payload, what)
    inner, inner_aux, seg, length = open_external(payload, what)
    try:
        view = seg.buf[:length]
        try:
            return copy_message(inner, inner_aux, view, what)
        finally:
            view.release()
    finally:
        done.append(seg)


def external_ref(name: str, kind: int, aux: int, length: int) -> bytes:
    raw = name.encode()
    return _REF.pack(length, kind, aux, len(raw)) + raw


def make_external(parts: Sequence[Any], length: int) -> SharedMemory:
    """A new registered segment holding ``parts``; the caller closes it."""
    seg = SharedMemory(None, create=True, size=max(length, 1))
    try:
        at = 0
        for part in parts:
            n = len(part)
            seg.buf[at : at + n] = part
            at += n
    except BaseException:
        free_external(seg)
        raise
    return seg


def open_external(payload: memoryview, what: str) -> tuple[int, int, SharedMemory, int]:
    """The segment an EXTERNAL payload names, checked: inner kind, aux, segment, length."""
    if len(payload) < _REF.size:
        raise corrupt(what, "a short reference to a message segment")
    length, kind, aux, name_len = _REF.unpack_from(payload, 0)
    raw = bytes(payload[_REF.size : _REF.size + name_len])
    name = raw.decode("ascii", "replace")
    if _REF.size + name_len != len(payload) or not _EXTERNAL_NAME.fullmatch(name):
        raise corrupt(what, "a reference to a message segment with a malformed name")
    if kind not in (REC_DATA, REC_OOB):
        raise corrupt(what, f"a message segment of kind {kind}")
    try:
        seg = SharedMemory(name)
    except FileNotFoundError:
        raise IPCError(
            f"corrupt channel {what}: the segment {name} of a large message is gone "
            "(removed by `fastipc clean` or another process); the message is lost"
        ) from None
    if length > seg.size:
        free_external(seg)
        raise corrupt(what, f"a message segment smaller than its message ({name})")
    return kind, aux, seg, length


def free_external(seg: SharedMemory) -> None:
    """Close and unlink a message's segment (its registry entry goes too)."""
    with contextlib.suppress(BufferError):
        seg.close()
    with contextlib.suppress(FileNotFoundError):
        seg.unlink()
