"""fastipc: fast, safe interprocess communication for Python on a Rust core.

``listen("127.0.0.1:5000")`` is a Unix domain socket on Unix and TCP loopback on Windows; other
hosts are plain TCP. See the README for the tour and the capability table.
"""

import typing as _typing

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

__version__ = "0.1.0"

# The one list of fastipc's public names. Those not defined in this module are the backend's
# (the names of ``_fastipc.pyi``), taken from the backend chosen at import time.
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

if _typing.TYPE_CHECKING:
    from ._fastipc import *
    from ._fastipc import Address
else:
    from ._backend import export as _export

    Address = str | tuple[str, int]
    _export(globals(), __all__)
    del _export
