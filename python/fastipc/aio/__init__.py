"""fastipc on asyncio: every channel awaitable, on the standard event loop and on uvloop.

``await aio.connect(address)``, ``await aio.listen(address)``, ``aio.socketpair()``, and the
awaited forms of the datagram sockets, pipes, FIFOs, POSIX message queues, signal receivers, and
of the shared-memory ``Queue``, ``JoinableQueue`` and ``channel()``.
Built on the loop's readiness callbacks (``add_reader``/``add_writer``), never a thread per
call: when the descriptor is ready, one call into the backend does the non-blocking work. The
arguments, errors and limits are those of the blocking API (``docs/aio.md``).
"""

from __future__ import annotations

from ._classic import FIFO, MessageQueue, PipeReader, PipeWriter, SignalReceiver, pipe
from ._conn import Connection
from ._dgram import DatagramSocket
from ._listener import Listener, connect, listen, socketpair
from ._shm import Channel, JoinableQueue, Queue, channel

__all__ = [
    "FIFO",
    "Channel",
    "Connection",
    "DatagramSocket",
    "JoinableQueue",
    "Listener",
    "MessageQueue",
    "PipeReader",
    "PipeWriter",
    "Queue",
    "SignalReceiver",
    "channel",
    "connect",
    "listen",
    "pipe",
    "socketpair",
]
