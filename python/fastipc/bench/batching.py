"""The client and echo sides of queues used in batches (``put_many``/``get_many``), shared by the
batch rows of ``fastipc bench`` (``fastipc-queue-many``, ``faster-fifo-many``). Nothing here is
registered.

The client's sender adds each message to a list and puts the list with one ``put_many`` when it
holds :data:`BATCH` messages, or before the client waits for a message (its receiver flushes
first), so the order of the messages is kept. The receivers take up to :data:`BATCH` messages per
``get_many`` and hand them out one by one. A queue has no end of file: the client ends the echo
side with ``None`` when it closes.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable
from typing import Any

from .base import drain_loop

__all__ = ["BATCH", "BatchClient", "BatchEcho", "batch_for"]

BATCH = 64
"""Messages per ``put_many`` and at most per ``get_many``, for small messages."""

PutMany = Callable[[list[Any]], object]
GetMany = Callable[[int], list[Any]]


def batch_for(max_size: int) -> int:
    """Messages per batch: :data:`BATCH`, fewer for large messages (a batch stays within 256 KiB
    of payload, a quarter of the smallest queue the rows make), at least one."""
    return max(1, min(BATCH, (256 << 10) // max(max_size, 1)))


class _Reader:
    """One message at a time out of ``get_many`` batches."""

    def __init__(self, get_many: GetMany, batch: int) -> None:
        self.get_many, self.batch = get_many, batch
        self.ready: deque[Any] = deque()

    def get(self) -> Any:
        ready = self.ready
        if not ready:
            ready.extend(self.get_many(self.batch))
        return ready.popleft()


class BatchClient:
    """The client side over two queues' ``put_many`` (there) and ``get_many`` (back)."""

    def __init__(
        self, put_many: PutMany, get_many: GetMany, batch: int, on_close: Callable[[], None]
    ) -> None:
        self.put_many, self.batch, self.on_close = put_many, batch, on_close
        self.pending: list[Any] = []
        self.reader = _Reader(get_many, batch)
        self.creator = os.getpid()
        self.closed = False

    def flush(self) -> None:
        if self.pending:
            self.put_many(self.pending)
            self.pending = []

    def sender(self) -> Callable[[bytes], object]:
        batch = self.batch

        def send(data: bytes) -> None:
            pending = self.pending
            pending.append(data)
            if len(pending) >= batch:
                self.put_many(pending)
                self.pending = []

        return send

    def receiver(self) -> Callable[[], object]:
        get = self.reader.get

        def recv() -> Any:
            if self.pending:
                self.flush()
            return get()

        return recv

    def received(self, result: object) -> bytes:
        assert isinstance(result, bytes)
        return result

    def close(self) -> None:
        # The queues are the echo side's too: only the creating process ends them, once.
        if os.getpid() != self.creator or self.closed:
            return
        self.closed = True
        self.pending.append(None)
        self.flush()
        self.on_close()


class BatchEcho:
    """The echo side: each batch it takes goes back with one ``put_many``."""

    def __init__(self, get_many: GetMany, put_many: PutMany, batch: int) -> None:
        self.get_many, self.put_many, self.batch = get_many, put_many, batch

    def serve(self) -> None:
        get_many, put_many, batch = self.get_many, self.put_many, self.batch
        while True:
            items = get_many(batch)
            if items[-1] is None:
                if len(items) > 1:
                    put_many(items[:-1])
                return
            put_many(items)

    def drain(self) -> None:
        get = _Reader(self.get_many, self.batch).get
        put_many = self.put_many
        drain_loop(get, lambda: len(get()), lambda ack: put_many([ack]))

    def close(self) -> None:
        pass  # the queues are the client's too: it closes them
