"""POSIX and System V message queues through ctypes (Linux); NotSupportedError elsewhere."""

from __future__ import annotations

import ctypes
import errno
import functools
import os
import struct
import sys
import threading
import time
from collections.abc import Callable

from typing_extensions import Buffer

from .._errors import MessageTooLarge, NotSupportedError
from . import _libc
from ._closing import Closing, closed_error
from ._waits import SLICE, backoff, deadline_of, read_proc_number, timed_out

__all__ = ["MessageQueue", "SysVMessageQueue", "ftok", "unlink_message_queue"]

LINUX = sys.platform.startswith("linux")
PRIO_MAX = 32768
NAME_MAX = 255
IPC_CREAT = 0o1000
IPC_EXCL = 0o2000
IPC_NOWAIT = 0o4000
IPC_RMID = 0
IPC_STAT = 2


@functools.cache
def _lib() -> ctypes.CDLL:
    if not LINUX:
        raise NotSupportedError("message queues of this kind exist on Linux only in the fallback")
    lib = _libc.load("mq_open", "rt")
    lib.mq_open.restype = ctypes.c_int
    lib.mq_timedsend.argtypes = [
        ctypes.c_int,
        ctypes.c_char_p,
        ctypes.c_size_t,
        ctypes.c_uint,
        ctypes.POINTER(_libc.Timespec),
    ]
    lib.mq_timedreceive.argtypes = [
        ctypes.c_int,
        ctypes.c_void_p,
        ctypes.c_size_t,
        ctypes.POINTER(ctypes.c_uint),
        ctypes.POINTER(_libc.Timespec),
    ]
    lib.mq_timedreceive.restype = ctypes.c_ssize_t
    lib.mq_unlink.argtypes = [ctypes.c_char_p]
    lib.ftok.argtypes = [ctypes.c_char_p, ctypes.c_int]
    lib.msgget.argtypes = [ctypes.c_int, ctypes.c_int]
    lib.msgsnd.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    lib.msgrcv.argtypes = [
        ctypes.c_int,
        ctypes.c_void_p,
        ctypes.c_size_t,
        ctypes.c_long,
        ctypes.c_int,
    ]
    lib.msgrcv.restype = ctypes.c_ssize_t
    lib.msgctl.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_void_p]
    return lib


class _MqAttr(ctypes.Structure):
    _fields_ = [
        ("mq_flags", ctypes.c_long),
        ("mq_maxmsg", ctypes.c_long),
        ("mq_msgsize", ctypes.c_long),
        ("mq_curmsgs", ctypes.c_long),
        ("pad", ctypes.c_long * 4),
    ]


def _normalize(name: str) -> str:
    bare = name[1:] if name.startswith("/") else name
    if not bare or len(bare.encode()) > NAME_MAX or "/" in bare or "\0" in bare:
        raise ValueError(
            f"invalid message queue name {name!r}: a POSIX queue name is 1 to {NAME_MAX} bytes "
            "without '/' or NUL, with an optional leading '/'"
        )
    return "/" + bare


def _limit(name: str) -> str:
    value = read_proc_number(f"/proc/sys/fs/mqueue/{name}")
    return "unknown" if value is None else str(value)


def unlink_message_queue(name: str) -> None:
    """Removes the POSIX message queue ``name``."""
    lib = _lib()
    name = _normalize(name)
    if lib.mq_unlink(name.encode()) < 0:
        raise _libc.errno_error(name)


class MessageQueue(Closing):
    """A POSIX message queue (Linux)."""

    def __init__(
        self,
        name: str,
        create: bool = False,
        *,
        max_messages: int | None = None,
        max_message_size: int | None = None,
        mode: int = 0o600,
    ) -> None:
        self._fd = -1
        lib = _lib()
        self._name = _normalize(name)
        oflag = os.O_RDWR | os.O_CLOEXEC
        attr = None
        if create:
            oflag |= os.O_CREAT | os.O_EXCL
            if max_messages is not None or max_message_size is not None:
                maxmsg = max_messages or read_proc_number("/proc/sys/fs/mqueue/msg_default") or 10
                msgsize = (
                    max_message_size
                    or read_proc_number("/proc/sys/fs/mqueue/msgsize_default")
                    or 8192
                )
                if maxmsg <= 0 or msgsize <= 0:
                    raise ValueError(
                        f"max_messages and max_message_size must be positive ({self._name})"
                    )
                attr = _MqAttr(0, maxmsg, msgsize, 0)
        elif max_messages is not None or max_message_size is not None:
            raise ValueError(
                "max_messages and max_message_size apply only when creating the queue "
                f"({self._name})"
            )
        fd = lib.mq_open(
            self._name.encode(),
            ctypes.c_int(oflag),
            ctypes.c_uint(mode & 0o777),
            ctypes.byref(attr) if attr is not None else None,
        )
        if fd < 0:
            code = ctypes.get_errno()
            if code == errno.EINVAL and attr is not None:
                raise OSError(
                    code,
                    f"cannot create a queue of {attr.mq_maxmsg} messages of {attr.mq_msgsize} "
                    f"bytes: the limits are /proc/sys/fs/mqueue/msg_max = {_limit('msg_max')} "
                    f"and msgsize_max = {_limit('msgsize_max')} (root may exceed them up to "
                    "the hard limits)",
                    self._name,
                )
            if code == errno.ENOSPC:
                raise OSError(
                    code,
                    f"too many message queues: /proc/sys/fs/mqueue/queues_max = "
                    f"{_limit('queues_max')}",
                    self._name,
                )
            if code == errno.EMFILE:
                raise OSError(
                    code,
                    "too many open descriptors, or the queues of this user would exceed "
                    "RLIMIT_MSGQUEUE (ulimit -q)",
                    self._name,
                )
            raise OSError(code, os.strerror(code), self._name)
        self._fd = fd
        if create:
            os.fchmod(fd, mode & 0o777)
        got = _MqAttr()
        if lib.mq_getattr(fd, ctypes.byref(got)) < 0:
            err = _libc.errno_error(self._name)
            os.close(fd)
            self._fd = -1
            raise err
        self._max_messages = int(got.mq_maxmsg)
        self._max_message_size = int(got.mq_msgsize)
        self._buf = ctypes.create_string_buffer(max(1, self._max_message_size))
        self._lock = threading.Lock()

    @property
    def name(self) -> str:
        return self._name

    @property
    def max_messages(self) -> int:
        return self._max_messages

    @property
    def max_message_size(self) -> int:
        return self._max_message_size

    @property
    def current_messages(self) -> int:
        got = _MqAttr()
        if _lib().mq_getattr(self._check(), ctypes.byref(got)) < 0:
            raise _libc.errno_error(self._name)
        return int(got.mq_curmsgs)

    @property
    def closed(self) -> bool:
        return self._fd < 0

    def _check(self) -> int:
        if self._fd < 0:
            raise closed_error(self._name)
        return self._fd

    def send(self, data: Buffer, priority: int = 0, timeout: float | None = None) -> None:
        fd = self._check()
        if not 0 <= priority < PRIO_MAX:
            raise ValueError(f"priority must be from 0 to {PRIO_MAX - 1} ({self._name})")
        payload = bytes(data)
        if len(payload) > self._max_message_size:
            raise MessageTooLarge(
                f"message of {len(payload)} bytes is larger than the limit of "
                f"{self._max_message_size} bytes ({self._name})"
            )
        lib = _lib()
        self._sliced(
            timeout,
            lambda at: lib.mq_timedsend(fd, payload, len(payload), priority, ctypes.byref(at)),
        )

    def receive(self, timeout: float | None = None) -> tuple[bytes, int]:
        fd = self._check()
        lib = _lib()
        prio = ctypes.c_uint(0)
        with self._lock:
            n = self._sliced(
                timeout,
                lambda at: lib.mq_timedreceive(
                    fd, self._buf, len(self._buf), ctypes.byref(prio), ctypes.byref(at)
                ),
            )
            return self._buf.raw[:n], int(prio.value)

    def _sliced(self, timeout: float | None, op: Callable[[_libc.Timespec], int]) -> int:
        """The timed call in slices of at most 50 ms on the blocking descriptor; Python runs
        signal handlers between slices (an EINTR ends the slice early)."""
        deadline = deadline_of(timeout)
        while True:
            self._check()
            left = None if deadline is None else deadline - time.monotonic()
            rc = op(_libc.realtime_after(SLICE if left is None else min(left, SLICE)))
            if rc >= 0:
                return rc
            code = ctypes.get_errno()
            if code not in (errno.ETIMEDOUT, errno.EAGAIN, errno.EINTR):
                self._check()  # closed by another thread meanwhile: the closed error
                raise OSError(code, os.strerror(code), self._name)
            if deadline is not None and deadline - time.monotonic() <= 0:
                raise timed_out(self._name)

    def fileno(self) -> int:
        return self._check()

    def unlink(self) -> None:
        unlink_message_queue(self._name)

    def close(self) -> None:
        fd, self._fd = self._fd, -1
        if fd >= 0:
            os.close(fd)

    def __del__(self) -> None:
        if getattr(self, "_fd", -1) >= 0:
            self.close()

    def __repr__(self) -> str:
        if self._fd < 0:
            return f"<fastipc.MessageQueue {self._name} closed>"
        return (
            f"<fastipc.MessageQueue {self._name} max_messages={self._max_messages} "
            f"max_message_size={self._max_message_size} fd={self._fd}>"
        )


def ftok(path: str | os.PathLike[str], project_id: int) -> int:
    """``ftok(path, project_id)``: the System V key a C program computes from the same arguments."""
    if not 1 <= project_id <= 255:
        raise ValueError(
            "project_id must be from 1 to 255 (ftok uses its low 8 bits, and 0 is reserved), "
            f"not {project_id}"
        )
    lib = _lib()
    raw = os.fsencode(path)
    if b"\0" in raw:
        raise ValueError(f"NUL byte in path {os.fsdecode(raw)!r}")
    key = lib.ftok(raw, project_id)
    if key == -1:
        raise _libc.errno_error(os.fsdecode(raw))
    return int(key)


def _msgmax() -> int:
    return read_proc_number("/proc/sys/kernel/msgmax") or 8192


_LONG = struct.calcsize("l")


class SysVMessageQueue(Closing):
    """A System V message queue with typed retrieval (Linux)."""

    def __init__(
        self,
        key: int | None = None,
        *,
        path: str | os.PathLike[str] | None = None,
        project_id: int | None = None,
        create: bool = False,
        mode: int = 0o600,
    ) -> None:
        self._closed = True
        lib = _lib()
        if key is not None and path is None and project_id is None:
            pass
        elif key is None and path is not None and project_id is not None:
            key = ftok(path, project_id)
        elif key is None and path is None and project_id is None:
            pass
        else:
            raise ValueError(
                "give either a key, or a path and a project_id (for ftok), or none of them for "
                "a new private queue"
            )
        what = "IPC_PRIVATE" if key is None else f"key 0x{key & 0xFFFFFFFF:08x}"
        if key is None and not create:
            raise ValueError(
                "a private queue (no key, path or project_id) must be created: pass create=True"
            )
        if key == 0 and not create:
            raise ValueError("key 0 is IPC_PRIVATE: it cannot name an existing queue")
        flags = mode & 0o777
        if create:
            flags |= IPC_CREAT | IPC_EXCL
        qid = lib.msgget(0 if key is None else key, flags)
        if qid < 0:
            code = ctypes.get_errno()
            if code == errno.ENOSPC:
                raise OSError(
                    code,
                    "too many System V message queues: /proc/sys/kernel/msgmni = "
                    f"{read_proc_number('/proc/sys/kernel/msgmni')}",
                    what,
                )
            raise OSError(code, os.strerror(code), what)
        self._key = 0 if key is None else key
        self._id = int(qid)
        self._what = f"{what} (id {qid})"
        self._closed = False
        self._lock = threading.Lock()
        self._rxbuf = ctypes.create_string_buffer(_LONG + _msgmax())

    @property
    def key(self) -> int:
        return self._key

    @property
    def id(self) -> int:
        return self._id

    @property
    def closed(self) -> bool:
        return self._closed

    def _check(self) -> int:
        if self._closed:
            raise closed_error(self._what)
        return self._id

    def _stat(self) -> tuple[int, int, int, int, int]:
        """(messages, max_bytes, last_send_pid, last_receive_pid, mode) from IPC_STAT."""
        qid = self._check()
        if ctypes.sizeof(ctypes.c_long) != 8:
            raise NotSupportedError("queue statistics need a 64-bit Linux in the fallback")
        buf = ctypes.create_string_buffer(256)
        if _lib().msgctl(qid, IPC_STAT, buf) < 0:
            raise _libc.errno_error(self._what)
        # struct msqid_ds of 64-bit Linux: ipc_perm (48 bytes, mode at offset 20), three times,
        # __msg_cbytes, msg_qnum, msg_qbytes, msg_lspid, msg_lrpid.
        mode = struct.unpack_from("I", buf, 20)[0] & 0o777
        _cbytes, qnum, qbytes, lspid, lrpid = struct.unpack_from("QQQii", buf, 72)
        return qnum, qbytes, lspid, lrpid, mode

    @property
    def current_messages(self) -> int:
        return self._stat()[0]

    @property
    def max_bytes(self) -> int:
        return self._stat()[1]

    @property
    def last_send_pid(self) -> int:
        return self._stat()[2]

    @property
    def last_receive_pid(self) -> int:
        return self._stat()[3]

    @property
    def mode(self) -> int:
        return self._stat()[4]

    def send(self, data: Buffer, type: int = 1, timeout: float | None = None) -> None:
        self._check()
        if type <= 0:
            raise ValueError(f"the message type must be positive, not {type} ({self._what})")
        payload = bytes(data)
        limit = _msgmax()
        if len(payload) > limit:
            raise MessageTooLarge(
                f"message of {len(payload)} bytes is larger than the limit of {limit} bytes "
                f"({self._what} (/proc/sys/kernel/msgmax))"
            )
        lib = _lib()
        buf = ctypes.create_string_buffer(struct.pack("l", type) + payload, _LONG + len(payload))

        def attempt() -> bool | None:
            qid = self._check()
            if lib.msgsnd(qid, buf, len(payload), IPC_NOWAIT) == 0:
                return True
            code = ctypes.get_errno()
            if code in (errno.EAGAIN, errno.EINTR):
                return None
            raise OSError(code, os.strerror(code), self._what)

        backoff(deadline_of(timeout), self._what, attempt)

    def receive(self, type: int = 0, timeout: float | None = None) -> tuple[bytes, int]:
        self._check()
        lib = _lib()
        deadline = deadline_of(timeout)

        def attempt() -> tuple[bytes, int] | None:
            qid = self._check()
            size = len(self._rxbuf) - _LONG
            n = lib.msgrcv(qid, self._rxbuf, size, type, IPC_NOWAIT)
            if n >= 0:
                raw = self._rxbuf.raw
                return raw[_LONG : _LONG + n], struct.unpack_from("l", raw, 0)[0]
            code = ctypes.get_errno()
            if code in (errno.ENOMSG, errno.EAGAIN, errno.EINTR):
                return None
            if code == errno.E2BIG:
                self._rxbuf = ctypes.create_string_buffer(_LONG + 2 * size)
                return None
            raise OSError(code, os.strerror(code), self._what)

        with self._lock:
            return backoff(deadline, self._what, attempt)

    def remove(self) -> None:
        if _lib().msgctl(self._check(), IPC_RMID, None) < 0:
            raise _libc.errno_error(self._what)

    def close(self) -> None:
        self._closed = True

    def __repr__(self) -> str:
        state = " closed" if self._closed else ""
        return f"<fastipc.SysVMessageQueue key=0x{self._key & 0xFFFFFFFF:08x} id={self._id}{state}>"
