"""fastipc: fast, safe interprocess communication for Python on a Rust core.

``listen("127.0.0.1:5000")`` is a Unix domain socket on Unix and TCP loopback on Windows; other
hosts are plain TCP. See the README for the tour and the capability table.
"""

import typing as _typing

from ._errors import (
    AuthenticationError,
    BufferTooShort,
    IPCError,
    MessageTooLarge,
    NotSupportedError,
    SharedSocketDirWarning,
    TruncatedMessage,
    UnpicklingError,
)
from ._records import LockHolder, SignalInfo
from ._types import Credentials

if _typing.TYPE_CHECKING:
    __version__: str  # from the package metadata, by __getattr__ below


def __getattr__(name: str) -> object:
    """``__version__``, read from the package metadata on first use (``_version.py``)."""
    if name == "__version__":
        from ._version import version

        return version()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# The one list of fastipc's public names. Those not defined in this module are the backend's
# (the names of ``_fastipc.pyi``), taken from the backend chosen at import time.
__all__ = [
    "BACKEND",
    "DEFAULT_MAX_MESSAGE",
    "FIFO",
    "SCM_MAX_FD",
    "Address",
    "AuthenticationError",
    "BufferTooShort",
    "Channel",
    "Connection",
    "Credentials",
    "DatagramSocket",
    "FileLock",
    "IPCError",
    "JoinableQueue",
    "Listener",
    "Lock",
    "LockHolder",
    "MessageQueue",
    "MessageTooLarge",
    "MessageView",
    "NotSupportedError",
    "PipeReader",
    "PipeWriter",
    "Queue",
    "Reservation",
    "Semaphore",
    "SharedMemory",
    "SharedSocketDirWarning",
    "SignalInfo",
    "SignalReceiver",
    "SysVMessageQueue",
    "TruncatedMessage",
    "UnpicklingError",
    "__version__",
    "build_info",
    "channel",
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
    # __version__ is this module's own (read on first use), not the backend's.
    _export(globals(), [name for name in __all__ if name != "__version__"])
    del _export

    from ._handles import register_with_multiprocessing as _register

    # multiprocessing pickles fastipc connections as it does its own (Process arguments); the
    # fallback registers its class itself, when it is imported.
    _register(Connection)
    del _register
