"""Pure-Python backend of fastipc: the same API as the extension, on the standard library alone.

It is the implementation on Windows and wherever the extension cannot load; ``docs/sockets.md``
and ``docs/shm.md`` describe the behaviour both backends share.
"""

from ._addr import default_socket_dir, resolve
from ._api import DEFAULT_MAX_MESSAGE, connect, fromfd, listen, socketpair
from ._build import build_info
from ._channel import Channel, channel
from ._conn import Connection
from ._dgram import DatagramSocket
from ._fds import SCM_MAX_FD
from ._filelock import FileLock
from ._listener import Listener
from ._lock import Lock
from ._mq import MessageQueue, SysVMessageQueue, ftok, unlink_message_queue
from ._pipes import FIFO, PipeReader, PipeWriter, pipe
from ._queue import JoinableQueue, Queue
from ._sem import Semaphore
from ._shm import SharedMemory
from ._signals import SignalReceiver, kill_and_wait
from ._views import MessageView, Reservation

BACKEND = "python"

# The names of _fastipc.pyi, as the extension's __all__ has them (tests/test_api_surface.py).
__all__ = [
    "BACKEND",
    "DEFAULT_MAX_MESSAGE",
    "FIFO",
    "SCM_MAX_FD",
    "Channel",
    "Connection",
    "DatagramSocket",
    "FileLock",
    "JoinableQueue",
    "Listener",
    "Lock",
    "MessageQueue",
    "MessageView",
    "PipeReader",
    "PipeWriter",
    "Queue",
    "Reservation",
    "Semaphore",
    "SharedMemory",
    "SignalReceiver",
    "SysVMessageQueue",
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

# multiprocessing pickles this backend's connections as it does its own (Process arguments).
from .._handles import register_with_multiprocessing as _register  # noqa: E402

_register(Connection)
del _register
