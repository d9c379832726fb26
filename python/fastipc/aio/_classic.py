"""Awaited POSIX message queues and signal receivers of ``fastipc.aio`` (Linux), and the
re-export of the pipe ends and FIFOs. Each call is the blocking object's own call with a
timeout of 0, made when the loop says the descriptor is ready."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from typing import TYPE_CHECKING, Self

import fastipc

from .._records import SignalInfo
from ._closing import AsyncClosing
from ._pipes import FIFO, PipeReader, PipeWriter, pipe
from ._ready import Readiness, attempt

if TYPE_CHECKING:
    from typing_extensions import Buffer

__all__ = ["FIFO", "MessageQueue", "PipeReader", "PipeWriter", "SignalReceiver", "pipe"]


class _Wrapper(AsyncClosing):
    __slots__ = ("_readable", "_writable")

    def _watch(self, fd: int) -> None:
        self._readable = Readiness(fd, write=False)
        self._writable = Readiness(fd, write=True)

    def _unwatch(self) -> None:
        self._readable.close()
        self._writable.close()

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self._unwatch()


class MessageQueue(_Wrapper):
    """A POSIX message queue (Linux) whose ``send`` and ``receive`` are awaited: the arguments
    and errors of :class:`fastipc.MessageQueue`; a message goes or comes whole, and a cancelled
    ``receive`` takes none."""

    __slots__ = ("_mq",)

    def __init__(
        self,
        name: str,
        create: bool = False,
        *,
        max_messages: int | None = None,
        max_message_size: int | None = None,
        mode: int = 0o600,
    ) -> None:
        mq = fastipc.MessageQueue(
            name,
            create,
            max_messages=max_messages,
            max_message_size=max_message_size,
            mode=mode,
        )
        self._adopt(mq)

    def _adopt(self, mq: fastipc.MessageQueue) -> None:
        self._mq = mq
        self._watch(mq.fileno())

    @classmethod
    def from_queue(cls, mq: fastipc.MessageQueue) -> Self:
        """Wraps a queue opened by the blocking API (it stays usable: its blocking calls wait
        as before)."""
        self = cls.__new__(cls)
        self._adopt(mq)
        return self

    @property
    def name(self) -> str:
        return self._mq.name

    @property
    def max_messages(self) -> int:
        return self._mq.max_messages

    @property
    def max_message_size(self) -> int:
        return self._mq.max_message_size

    @property
    def current_messages(self) -> int:
        return self._mq.current_messages

    @property
    def closed(self) -> bool:
        return self._mq.closed

    def fileno(self) -> int:
        return self._mq.fileno()

    async def send(self, data: Buffer, priority: int = 0) -> None:
        """Sends one message, waiting while the queue is full."""
        mq = self._mq
        await attempt(lambda: mq.send(data, priority, 0), self._writable)

    async def receive(self) -> tuple[bytes, int]:
        """The next message (highest priority first) and its priority."""
        mq = self._mq
        return await attempt(lambda: mq.receive(0), self._readable)

    def unlink(self) -> None:
        self._mq.unlink()

    def close(self) -> None:
        """Closes this descriptor of the queue. Idempotent."""
        self._unwatch()
        self._mq.close()


class SignalReceiver(_Wrapper):
    """Chosen signals received on the loop (signalfd, Linux): ``await receiver.receive()``. The
    signals are blocked for the calling thread, as :class:`fastipc.SignalReceiver` does."""

    __slots__ = ("_receiver",)

    def __init__(self, signals: Iterable[int]) -> None:
        self._receiver = fastipc.SignalReceiver(signals)
        self._watch(self._receiver.fileno())

    @property
    def signals(self) -> list[int]:
        return self._receiver.signals

    @property
    def closed(self) -> bool:
        return self._receiver.closed

    def fileno(self) -> int:
        return self._receiver.fileno()

    async def receive(self) -> SignalInfo:
        """The next signal; a cancelled receive takes none."""
        receiver = self._receiver
        return await attempt(lambda: receiver.receive(0), self._readable)

    def drain(self) -> list[SignalInfo]:
        """Every signal pending now (no waiting)."""
        return self._receiver.drain()

    def close(self) -> None:
        """Closes the receiver. Idempotent."""
        self._unwatch()
        self._receiver.close()
