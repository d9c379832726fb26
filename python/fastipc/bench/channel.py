"""Mechanisms of the shared-memory channel and queue (docs/channel.md): ``fastipc-channel``
(``channel()``, ``send_bytes``/``recv_bytes``), ``fastipc-channel-view`` (zero-copy receives: both
sides receive with ``get_view``, the echo side returns the view itself), ``fastipc-queue`` (two
``Queue``, ``put_bytes``/``get_bytes``) and ``fastipc-queue-many`` (the same queues in batches,
``put_many``/``get_many``)."""

from __future__ import annotations

import contextlib
import os
import queue
from collections.abc import Callable
from typing import Any

from .base import Client, Echo, Env, PairMechanism, drain_loop, register
from .batching import BATCH, BatchClient, BatchEcho, batch_for

__all__ = ["FastipcChannel", "FastipcChannelView", "FastipcQueue", "FastipcQueueMany"]


def _capacity(env: Env) -> int:
    # room for a few messages of the largest size inline (a ring carries up to half its bytes)
    return max(1 << 20, 4 * (env.max_size + 64))


class _Sender:
    """The client side over a sending and a receiving callable and a close."""

    def __init__(
        self,
        send: Callable[[bytes], object],
        recv: Callable[[], object],
        close: Callable[[], None],
    ) -> None:
        self._send, self._recv, self._close = send, recv, close

    def sender(self) -> Callable[[bytes], object]:
        return self._send

    def receiver(self) -> Callable[[], object]:
        return self._recv

    def received(self, result: object) -> bytes:
        assert isinstance(result, bytes)
        return result

    def close(self) -> None:
        self._close()


# The longest message the view client reads (the stream's acknowledgements: a byte count).
_READ_MAX = 32


class _ViewSender(_Sender):
    """The client side receiving with ``get_view``: a reply is released unread (the zero-copy
    counterpart of a ``recv_bytes`` whose ``bytes`` the timing loop drops), except the first one,
    copied whole so that the benchmark can check the echo, and those of at most ``_READ_MAX``
    bytes (the stream's acknowledgements), which are read."""

    def __init__(self, end: Any) -> None:
        get_view = end.get_view
        unchecked = [True]

        def receive() -> bytes | int:
            with get_view() as view:
                n: int = len(view)
                if n <= _READ_MAX or unchecked[0]:
                    unchecked[0] = False
                    data: bytes = view.tobytes()
                    return data
                return n

        super().__init__(end.send_bytes, receive, end.close)


class _ChannelEcho:
    def __init__(self, end: Any, view: bool) -> None:
        self.end, self.view = end, view

    def serve(self) -> None:
        end = self.end
        try:
            if self.view:
                while True:
                    with end.get_view() as data:
                        end.send_bytes(data)
            else:
                while True:
                    end.send_bytes(end.recv_bytes())
        except EOFError:
            return

    def drain(self) -> None:
        end = self.end

        def first() -> bytes | None:
            try:
                data: bytes = end.recv_bytes()
            except EOFError:
                return None
            return data

        if self.view:
            get_view = end.get_view

            def receive() -> int:
                with get_view() as data:
                    return len(data)

        else:

            def receive() -> int:
                return len(end.recv_bytes())

        drain_loop(first, receive, end.send_bytes)

    def close(self) -> None:
        self.end.close()


class _Channel(PairMechanism):
    uses_fastipc = True
    view = False

    def pair(self, env: Env) -> tuple[Client, Echo]:
        a, b = env.fastipc().channel(capacity=_capacity(env))
        client = _ViewSender(a) if self.view else _Sender(a.send_bytes, a.recv_bytes, a.close)
        return client, _ChannelEcho(b, self.view)


@register
class FastipcChannel(_Channel):
    name = "fastipc-channel"
    summary = "fastipc.channel(): send_bytes, recv_bytes through a shared-memory ring each way"
    counterpart = "mp-pipe"


@register
class FastipcChannelView(_Channel):
    name = "fastipc-channel-view"
    summary = (
        "fastipc.channel(), zero-copy receives: the client sends with send_bytes and takes each"
        " reply with get_view (released unread), the echo side sends back the get_view it received"
    )
    view = True


class _QueueEcho:
    def __init__(self, there: Any, back: Any) -> None:
        self.there, self.back = there, back
        self.creator = os.getpid()

    def serve(self) -> None:
        get, put = self.there.get_bytes, self.back.put_bytes
        while True:
            data = get()
            if not data:
                return
            put(data)

    def drain(self) -> None:
        get = self.there.get_bytes

        def first() -> bytes | None:
            data: bytes = get()
            return data or None

        drain_loop(first, lambda: len(get()), self.back.put_bytes)

    def close(self) -> None:
        # The queues are the client's too: in the creating process the client closes them.
        if os.getpid() != self.creator:
            self.there.close()
            self.back.close()


@register
class FastipcQueue(PairMechanism):
    name = "fastipc-queue"
    summary = "two fastipc.Queue: put_bytes, get_bytes (shared-memory rings)"
    uses_fastipc = True
    counterpart = "mp-queue"

    def pair(self, env: Env) -> tuple[Client, Echo]:
        module = env.fastipc()
        there, back = module.Queue(capacity=_capacity(env)), module.Queue(capacity=_capacity(env))
        creator = os.getpid()

        def close() -> None:
            # An empty message tells the echo side to stop (the benchmark never sends one).
            if os.getpid() != creator:
                return  # the forked echo process: the queues are the echo's there
            if not there.closed:
                with contextlib.suppress(queue.Full, OSError):
                    there.put_bytes(b"", timeout=1)
            there.close()
            back.close()

        return _Sender(there.put_bytes, back.get_bytes, close), _QueueEcho(there, back)


@register
class FastipcQueueMany(PairMechanism):
    name = "fastipc-queue-many"
    summary = (
        f"two fastipc.Queue: put_many, get_many, batches of up to {BATCH} messages (pickled bytes)"
    )
    uses_fastipc = True
    counterpart = "faster-fifo-many"

    def pair(self, env: Env) -> tuple[Client, Echo]:
        module = env.fastipc()
        there, back = module.Queue(capacity=_capacity(env)), module.Queue(capacity=_capacity(env))
        batch = batch_for(env.max_size)

        def close() -> None:
            there.close()
            back.close()

        return (
            BatchClient(there.put_many, back.get_many, batch, close),
            BatchEcho(there.get_many, back.put_many, batch),
        )
