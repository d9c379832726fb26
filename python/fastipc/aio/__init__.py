"""fastipc on asyncio: every channel awaitable, on the standard event loop and on uvloop.

``await aio.connect(address)``, ``await aio.listen(address)``, ``aio.socketpair()``, and the
awaited forms of the datagram sockets, pipes, FIFOs, POSIX message queues and signal receivers.
Built on the loop's readiness callbacks (``add_reader``/``add_writer``), never a thread per
call: when the descriptor is ready, one call into the backend does the non-blocking work. The
arguments, errors and limits are those of the blocking API (``docs/aio.md``).
"""

from __future__ import annotations

from ._classic import FIFO, MessageQueue, PipeReader, PipeWriter, SignalReceiver, pipe
from ._conn import Connection
from ._dgram import DatagramSocket
from ._listener import Listener, connect, listen, socketpair

__all__ = [
    "FIFO",
    "Connection",
    "DatagramSocket",
    "Listener",
    "MessageQueue",
    "PipeReader",
    "PipeWriter",
    "SignalReceiver",
    "connect",
    "listen",
    "pipe",
    "socketpair",
]
