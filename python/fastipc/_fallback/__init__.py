"""Pure-Python backend of fastipc: the same API as the extension, on the standard library alone.

It is the implementation on Windows and wherever the extension cannot load; ``docs/sockets.md``
and ``docs/shm.md`` describe the behaviour both backends share.
"""

from __future__ import annotations

from ._addr import default_socket_dir, resolve
from ._api import DEFAULT_MAX_MESSAGE, connect, fromfd, listen, socketpair
from ._conn import Connection
from ._dgram import DatagramSocket
from ._fds import SCM_MAX_FD
from ._listener import Listener
from ._lock import Lock
from ._sem import Semaphore
from ._shm import SharedMemory

BACKEND = "python"

__all__ = [
    "BACKEND",
    "DEFAULT_MAX_MESSAGE",
    "SCM_MAX_FD",
    "Connection",
    "DatagramSocket",
    "Listener",
    "Lock",
    "Semaphore",
    "SharedMemory",
    "connect",
    "default_socket_dir",
    "fromfd",
    "listen",
    "resolve",
    "socketpair",
]
