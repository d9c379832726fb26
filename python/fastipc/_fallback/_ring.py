"""The segment of the fallback's queues and channels: its layout, and the validated reads of it.

The layout is this backend's own (``docs/channel-fallback.md``); the Rust extension has another.
All integers are little-endian.

``[0, 64)`` segment header: magic ``b"FIPCPYRG"``, layout version (u32), kind (u32: 1 queue,
2 channel), capacity of each ring in bytes (u64), maxsize in items (u64), number of rings (u32),
flags (u32).

``[256 + 256 i, 512 + 256 i)`` control block of ring ``i``: a selector (u64, 0 or 1) naming the
current one of two state slots at +8 and +48, each five u64 (head, tail, items put, items taken,
tasks done; head and tail are byte counters that never wrap); at +128 three wait words (u32:
data, space, done) each followed by a u32 "someone sleeps on it" flag.

``[4096 + capacity i, 4096 + capacity (i + 1))`` the bytes of ring ``i``: records of an 8-byte
header (payload length u32, kind u16, count of out-of-band buffers u16) and the payload, padded
to 8 bytes. A record never straddles the end: a ``WRAP`` header fills the rest of the ring.

A state changes by writing the other slot, then the selector (one aligned 8-byte store): a
process killed at any point leaves the old state or the new one whole. Every read is checked:
anything out of bounds is ``IPCError("corrupt channel ...")``.
"""

from __future__ import annotations

import contextlib
import ctypes
import mmap
import os
import struct
import sys

from .. import _registry
from .._errors import IPCError, NotSupportedError
from . import _names, _ringsync

__all__ = [
    "HEADER",
    "KIND_CHANNEL",
    "KIND_QUEUE",
    "Ring",
    "Segment",
    "State",
    "corrupt",
]

MAGIC = b"FIPCPYRG"
VERSION = 1
KIND_QUEUE, KIND_CHANNEL = 1, 2
_KIND_NAMES = {KIND_QUEUE: "queue", KIND_CHANNEL: "channel"}
_SEG_HEADER = struct.Struct("<8sIIQQII")
HEADER = 4096
_CONTROL = 256
_CONTROL_SIZE = 256
MAX_RINGS = (HEADER - _CONTROL) // _CONTROL_SIZE
MIN_CAPACITY = 64
MAX_CAPACITY = 1 << 40

_SELECTOR = struct.Struct("<Q")
_SLOT = struct.Struct("<5Q")
_SLOTS = (8, 48)
WORD_DATA, WORD_SPACE, WORD_DONE = 128, 136, 144
_WORD = struct.Struct("<I")

REC = struct.Struct("<IHH")
REC_DATA, REC_OOB, REC_EXTERNAL, REC_WRAP = 1, 2, 3, 4
_REC_KINDS = (REC_DATA, REC_OOB, REC_EXTERNAL)

_LINUX = sys.platform.startswith("linux")

if sys.platform != "win32":
    import _posixshmem  # type: ignore[import-not-found]


def corrupt(what: str, detail: str) -> IPCError:
    return IPCError(f"corrupt channel {what}: {detail}")


def align8(n: int) -> int:
    return (n + 7) & ~7


def record_size(length: int) -> int:
    return REC.size + align8(length)


class State:
    """One state slot, read under the state lock and checked."""

    __slots__ = ("head", "n_done", "n_got", "n_put", "tail")

    def __init__(self, head: int, tail: int, n_put: int, n_got: int, n_done: int) -> None:
        self.head, self.tail, self.n_put, self.n_got, self.n_done = head, tail, n_put, n_got, n_done

    @property
    def count(self) -> int:
        return self.n_put - self.n_got


class Segment:
    """A mapped queue or channel segment: its descriptor, mapping and header fields."""

    def __init__(self, fd: int, name: str | None, what: str) -> None:
        self.fd = fd
        self.name = name
        self.what = what
        self.size = os.fstat(fd).st_size
        self.mm: mmap.mmap | None = mmap.mmap(fd, self.size) if self.size else None
        self.buf = memoryview(self.mm) if self.mm is not None else memoryview(b"")
        self._anchor: ctypes.Array[ctypes.c_char] | None = None
        self.base = 0
        self.kind = self.nrings = self.capacity = self.maxsize = 0
        self.shrunk_to: int | None = None

    # -- making and opening ---------------------------------------------------------------
    @classmethod
    def create(
        cls, kind: int, nrings: int, capacity: int, *, maxsize: int, name: str | None, mode: int
    ) -> Segment:
        _require()
        size = HEADER + nrings * capacity
        if name is None:
            fd = _anonymous(size)
            posix = None
        else:
            posix = _names.posix_name(name, "shm")
            with _registry.creating("shm", posix, size):
                fd = _create_named(posix, size, mode)
        try:
            seg = cls(fd, posix, posix or f"anonymous {_KIND_NAMES[kind]}")
            seg._init_header(kind, nrings, capacity, maxsize)
            return seg
        except BaseException:
            os.close(fd)
            if posix is not None:
                with contextlib.suppress(OSError):
                    _posixshmem.shm_unlink(posix)
                _registry.forget("shm", posix)
            raise

    @classmethod
    def open(cls, name: str, kind: int) -> Segment:
        _require()
        posix = _names.posix_name(name, "shm")
        fd = _posixshmem.shm_open(posix, os.O_RDWR, mode=0)
        return cls._checked(fd, posix, posix, kind)

    @classmethod
    def adopt(cls, fd: int, name: str | None, kind: int) -> Segment:
        """A segment from a descriptor (passed to a process); ``fd`` is now the segment's."""
        _require()
        return cls._checked(fd, name, name or f"anonymous {_KIND_NAMES[kind]}", kind)

    @classmethod
    def _checked(cls, fd: int, name: str | None, what: str, kind: int) -> Segment:
        try:
            seg = cls(fd, name, what)
        except BaseException:
            os.close(fd)
            raise
        try:
            seg._check_header(kind)
        except BaseException:
            seg.close()
            raise
        return seg

    def _init_header(self, kind: int, nrings: int, capacity: int, maxsize: int) -> None:
        # the magic goes last: an opener never takes a half-made header for a whole one
        _SEG_HEADER.pack_into(self.buf, 0, b"\0" * 8, VERSION, kind, capacity, maxsize, nrings, 0)
        self.buf[:8] = MAGIC
        self._adopt_header(kind, nrings, capacity, maxsize)

    def _check_header(self, kind: int) -> None:
        noun = _KIND_NAMES[kind]
        if self.size < HEADER:
            raise IPCError(f"{self.what}: not a fastipc {noun} (a segment of {self.size} bytes)")
        magic, version, got_kind, capacity, maxsize, nrings, _flags = _SEG_HEADER.unpack_from(
            self.buf, 0
        )
        if magic != MAGIC:
            raise IPCError(
                f"{self.what}: not a fastipc {noun} of the pure-Python backend's layout "
                f"(magic {magic!r}; the Rust extension's segments are opened by it alone)"
            )
        if version != VERSION:
            raise IPCError(f"{self.what}: layout version {version}, expected {VERSION}")
        if got_kind != kind:
            other = _KIND_NAMES.get(got_kind, f"kind {got_kind}")
            raise IPCError(f"{self.what}: not a fastipc {noun} (a {other})")
        want_rings = 1 if kind == KIND_QUEUE else 2
        if (
            nrings != want_rings
            or capacity % 8
            or not MIN_CAPACITY <= capacity <= MAX_CAPACITY
            or self.size != HEADER + nrings * capacity
            or maxsize >= 1 << 62
        ):
            raise corrupt(self.what, "its header does not match its size")
        self._adopt_header(kind, nrings, capacity, maxsize)

    def _adopt_header(self, kind: int, nrings: int, capacity: int, maxsize: int) -> None:
        self.kind, self.nrings, self.capacity, self.maxsize = kind, nrings, capacity, maxsize
        assert self.mm is not None
        self._anchor = (ctypes.c_char * self.size).from_buffer(self.mm)
        self.base = ctypes.addressof(self._anchor)

    def check_size(self) -> None:
        """``IPCError`` once a named segment is shorter than its mapping: another process
        truncated it, and touching the pages past its new end would kill this process with
        ``SIGBUS``, which Python cannot catch. One ``os.fstat`` per call (anonymous segments are
        memfds sealed against shrinking: not checked). The check cannot cover a truncation
        between it and the access that follows (docs/channel-fallback.md)."""
        if self.name is None:
            return
        if self.shrunk_to is None:
            now = os.fstat(self.fd).st_size
            if now >= self.size:
                return
            self.shrunk_to = now
        raise IPCError(
            f"corrupt channel: the segment {self.name} was truncated by another process while "
            f"mapped here ({self.size} bytes mapped, {self.shrunk_to} left); its contents are "
            "lost, close this handle"
        )

    @property
    def lock_path(self) -> str:
        """A path whose opening gives a new open file description of the segment."""
        return f"/proc/self/fd/{self.fd}"

    def ring(self, index: int) -> Ring:
        return Ring(self, index)

    def close(self) -> None:
        """Unmap and close; ``BufferError`` while a view of the ring is exported elsewhere."""
        self._anchor = None
        if self.mm is not None:
            self.buf.release()
            try:
                self.mm.close()
            except BufferError:
                self.buf = memoryview(self.mm)
                raise
            self.mm = None
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def unlink(self) -> None:
        if self.name is None:
            raise ValueError(f"an anonymous {_KIND_NAMES[self.kind]} has no name to unlink")
        _posixshmem.shm_unlink(self.name)
        _registry.forget("shm", self.name)


class Ring:
    """Ring ``index`` of a segment: its state slots, wait words and bytes."""

    def __init__(self, seg: Segment, index: int) -> None:
        self.seg = seg
        self.what = seg.what
        self.capacity = seg.capacity
        self.control = _CONTROL + _CONTROL_SIZE * index
        self.data = HEADER + seg.capacity * index
        self.index = index

    @property
    def buf(self) -> memoryview:
        return self.seg.buf

    def read_state(self) -> State:
        self.seg.check_size()
        buf = self.seg.buf
        (selector,) = _SELECTOR.unpack_from(buf, self.control)
        if selector > 1:
            raise corrupt(self.what, f"state selector {selector}")
        st = State(*_SLOT.unpack_from(buf, self.control + _SLOTS[selector]))
        used = st.tail - st.head
        if (
            not 0 <= used <= self.capacity
            or st.head % 8
            or st.tail % 8
            or not 0 <= st.count <= used // 8
            or st.n_done > st.n_put
        ):
            raise corrupt(self.what, "its indices are out of bounds")
        return st

    def commit(self, st: State) -> None:
        """Writes ``st`` into the slot not in use, then selects it (one 8-byte store)."""
        buf = self.seg.buf
        (selector,) = _SELECTOR.unpack_from(buf, self.control)
        other = 1 - (selector & 1)
        _SLOT.pack_into(
            buf, self.control + _SLOTS[other], st.head, st.tail, st.n_put, st.n_got, st.n_done
        )
        _SELECTOR.pack_into(buf, self.control, other)

    # -- wait words ---------------------------------------------------------------------------
    def word(self, which: int) -> int:
        (value,) = _WORD.unpack_from(self.seg.buf, self.control + which)
        return int(value)

    def announce(self, which: int) -> int:
        """A sleeper is coming (under the state lock): the word's value to sleep on."""
        _WORD.pack_into(self.seg.buf, self.control + which + 4, 1)
        return self.word(which)

    def bump(self, which: int) -> bool:
        """Advances the word (under the state lock); True if a sleeper must be woken."""
        buf, at = self.seg.buf, self.control + which
        _WORD.pack_into(buf, at, (self.word(which) + 1) & 0xFFFFFFFF)
        (sleeper,) = _WORD.unpack_from(buf, at + 4)
        if sleeper:
            _WORD.pack_into(buf, at + 4, 0)
        return bool(sleeper)

    def address(self, which: int) -> int:
        return self.seg.base + self.control + which

    # -- records ------------------------------------------------------------------------------
    def place(self, st: State, need: int) -> int | None:
        """Where a record of ``need`` bytes goes at the tail: the bytes skipped before it (a wrap
        marker), or None if it does not fit now. An empty ring restarts at its beginning."""
        cap = self.capacity
        off = st.tail % cap
        room = cap - off
        if need <= room:
            skip = 0
        elif st.head == st.tail:
            st.head = st.tail = st.tail + room
            skip = 0
        else:
            skip = room
        return skip if skip + need <= cap - (st.tail - st.head) else None

    def write_header(self, pos: int, length: int, kind: int, aux: int) -> None:
        REC.pack_into(self.seg.buf, self.data + pos % self.capacity, length, kind, aux)

    def payload(self, pos: int, length: int) -> memoryview:
        start = self.data + pos % self.capacity + REC.size
        return self.seg.buf[start : start + length]

    def next_record(self, st: State) -> tuple[int, int, int, int]:
        """The record at the head (``st.head`` moved past a wrap marker): position, length,
        kind, aux. The state must hold at least one item."""
        cap = self.capacity
        for _ in range(2):
            off = st.head % cap
            length, kind, aux = REC.unpack_from(self.seg.buf, self.data + off)
            if kind == REC_WRAP and off:
                if st.head + (cap - off) >= st.tail:
                    raise corrupt(self.what, "a wrap marker at the end of the data")
                st.head += cap - off
                continue
            size = record_size(length)
            if kind not in _REC_KINDS:
                raise corrupt(self.what, f"a record of unknown kind {kind}")
            if length > cap - REC.size or off + size > cap or st.head + size > st.tail:
                raise corrupt(self.what, f"a record of {length} bytes past the data")
            return st.head, length, kind, aux
        raise corrupt(self.what, "two wrap markers in a row")


def _require() -> None:
    if not _ringsync.AVAILABLE:
        raise NotSupportedError(_ringsync.UNAVAILABLE_REASON)


def _anonymous(size: int) -> int:
    import fcntl

    fd = os.memfd_create("fastipc-ring", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
    try:
        os.ftruncate(fd, size)
        os.posix_fallocate(fd, 0, size)
        fcntl.fcntl(
            fd, fcntl.F_ADD_SEALS, fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW | fcntl.F_SEAL_SEAL
        )
    except BaseException:
        os.close(fd)
        raise
    return fd


def _create_named(posix: str, size: int, mode: int) -> int:
    fd = _posixshmem.shm_open(posix, os.O_CREAT | os.O_EXCL | os.O_RDWR, mode=mode)
    try:
        os.fchmod(fd, mode)  # exactly the mode asked for, whatever the umask
        os.ftruncate(fd, size)
        if _LINUX:
            os.posix_fallocate(fd, 0, size)
    except BaseException:
        os.close(fd)
        _posixshmem.shm_unlink(posix)
        raise
    return int(fd)
