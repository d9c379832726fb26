"""fastipc: fast, safe interprocess communication for Python on a Rust core.

``listen("127.0.0.1:5000")`` is a Unix domain socket on Unix and TCP loopback on Windows; other
hosts are plain TCP. See the README for the tour and the capability table.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._errors import (
    BufferTooShort,
    IPCError,
    MessageTooLarge,
    NotSupportedError,
    SharedSocketDirWarning,
    TruncatedMessage,
)
from ._records import LockHolder, SignalInfo
from ._types import Credentials

if TYPE_CHECKING:
    __version__: str  # from the package metadata, by __getattr__ below

    from ._fastipc import (
        BACKEND,
        DEFAULT_MAX_MESSAGE,
        FIFO,
        SCM_MAX_FD,
        Address,
        Connection,
        DatagramSocket,
        FileLock,
        Listener,
        Lock,
        MessageQueue,
        PipeReader,
        PipeWriter,
        Semaphore,
        SharedMemory,
        SignalReceiver,
        SysVMessageQueue,
        build_info,
        connect,
        default_socket_dir,
        fromfd,
        ftok,
        kill_and_wait,
        listen,
        pipe,
        resolve,
        socketpair,
        unlink_message_queue,
    )
else:
    from ._backend import load as _load
    from ._records import unsupported as _unsupported

    _impl = _load()
    _LINUX_ONLY = "not available on this platform (Linux only)"
    BACKEND = _impl.BACKEND
    DEFAULT_MAX_MESSAGE = _impl.DEFAULT_MAX_MESSAGE
    SCM_MAX_FD = _impl.SCM_MAX_FD
    Address = str | tuple[str, int]
    Connection = _impl.Connection
    DatagramSocket = _impl.DatagramSocket
    Listener = _impl.Listener
    Lock = _impl.Lock
    Semaphore = _impl.Semaphore
    SharedMemory = _impl.SharedMemory
    build_info = _impl.build_info
    connect = _impl.connect
    default_socket_dir = _impl.default_socket_dir
    fromfd = _impl.fromfd
    listen = _impl.listen
    resolve = _impl.resolve
    socketpair = _impl.socketpair
    FIFO = _impl.FIFO
    FileLock = _impl.FileLock
    MessageQueue = getattr(_impl, "MessageQueue", None) or _unsupported("MessageQueue", _LINUX_ONLY)
    PipeReader = _impl.PipeReader
    PipeWriter = _impl.PipeWriter
    SignalReceiver = getattr(_impl, "SignalReceiver", None) or _unsupported(
        "SignalReceiver", _LINUX_ONLY
    )
    SysVMessageQueue = getattr(_impl, "SysVMessageQueue", None) or _unsupported(
        "SysVMessageQueue", _LINUX_ONLY
    )
    ftok = getattr(_impl, "ftok", None) or _unsupported("ftok", _LINUX_ONLY)
    kill_and_wait = _impl.kill_and_wait
    pipe = _impl.pipe
    unlink_message_queue = getattr(_impl, "unlink_message_queue", None) or _unsupported(
        "unlink_message_queue", _LINUX_ONLY
    )
    del _load, _impl, _unsupported, _LINUX_ONLY


def __getattr__(name: str) -> object:
    """``__version__``, read from the package metadata on first use (``_version.py``)."""
    if name == "__version__":
        from ._version import version

        return version()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "BACKEND",
    "DEFAULT_MAX_MESSAGE",
    "FIFO",
    "SCM_MAX_FD",
    "Address",
    "BufferTooShort",
    "Connection",
    "Credentials",
    "DatagramSocket",
    "FileLock",
    "IPCError",
    "Listener",
    "Lock",
    "LockHolder",
    "MessageQueue",
    "MessageTooLarge",
    "NotSupportedError",
    "PipeReader",
    "PipeWriter",
    "Semaphore",
    "SharedMemory",
    "SharedSocketDirWarning",
    "SignalInfo",
    "SignalReceiver",
    "SysVMessageQueue",
    "TruncatedMessage",
    "__version__",
    "build_info",
    "connect",
    "default_socket_dir",
    "fromfd",
    "ftok",
    "kill_and_wait",
    "listen",
    "pipe",
    "resolve",
    "socketpair",
    "unlink_message_queue",
]
