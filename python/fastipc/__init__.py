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
from ._types import Credentials

if TYPE_CHECKING:
    from ._fastipc import (
        BACKEND,
        DEFAULT_MAX_MESSAGE,
        SCM_MAX_FD,
        Address,
        Connection,
        DatagramSocket,
        Listener,
        Lock,
        Semaphore,
        SharedMemory,
        connect,
        default_socket_dir,
        fromfd,
        listen,
        resolve,
        socketpair,
    )
else:
    from ._backend import load as _load

    _impl = _load()
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
    connect = _impl.connect
    default_socket_dir = _impl.default_socket_dir
    fromfd = _impl.fromfd
    listen = _impl.listen
    resolve = _impl.resolve
    socketpair = _impl.socketpair
    del _load, _impl

__version__ = "0.1.0"

__all__ = [
    "BACKEND",
    "DEFAULT_MAX_MESSAGE",
    "SCM_MAX_FD",
    "Address",
    "BufferTooShort",
    "Connection",
    "Credentials",
    "DatagramSocket",
    "IPCError",
    "Listener",
    "Lock",
    "MessageTooLarge",
    "NotSupportedError",
    "Semaphore",
    "SharedMemory",
    "SharedSocketDirWarning",
    "TruncatedMessage",
    "__version__",
    "connect",
    "default_socket_dir",
    "fromfd",
    "listen",
    "resolve",
    "socketpair",
]
