"""Shared pieces of the ``fastipc.aio`` tests: the event loops they run on, and the facade
pointed at the backend under test."""

from __future__ import annotations

import asyncio
import importlib.util
from collections.abc import Callable, Coroutine
from typing import Any

import fastipc
import pytest

LOOPS = ["asyncio", "uvloop"]

#: The facade names ``fastipc.aio`` calls, pointed at the backend under test.
FACADE = (
    "listen",
    "connect",
    "socketpair",
    "pipe",
    "FIFO",
    "DatagramSocket",
    "Listener",
    "Connection",
    "MessageQueue",
    "SignalReceiver",
    "PipeReader",
    "PipeWriter",
    "Queue",
    "JoinableQueue",
    "Channel",
    "channel",
)


def new_loop(name: str) -> asyncio.AbstractEventLoop:
    if name == "uvloop":
        import uvloop

        return uvloop.new_event_loop()
    return asyncio.new_event_loop()


@pytest.fixture(scope="session")
def _uvloop_ready() -> None:
    """The first uvloop loop of a process opens a pipe that stays open for the process's life
    (libuv's signal pipe): open it before the tests' descriptor accounting starts."""
    if importlib.util.find_spec("uvloop") is None:
        pytest.fail("uvloop is a test dependency: pip install -e '.[test]'")
    with asyncio.Runner(loop_factory=lambda: new_loop("uvloop")) as r:
        r.run(asyncio.sleep(0))


@pytest.fixture(params=LOOPS)
def loop_name(request: pytest.FixtureRequest, _uvloop_ready: None) -> str:
    return request.param


@pytest.fixture
def run(loop_name: str) -> Callable[[Coroutine[Any, Any, Any]], Any]:
    """``run(coro)``: runs it to completion on a fresh loop of the kind under test."""

    def runner(coro: Coroutine[Any, Any, Any]) -> Any:
        with asyncio.Runner(loop_factory=lambda: new_loop(loop_name)) as r:
            return r.run(coro)

    return runner


@pytest.fixture
def aio(backend, monkeypatch: pytest.MonkeyPatch):
    """``fastipc.aio``, with the facade it calls pointed at the backend under test."""
    for name in FACADE:
        if hasattr(backend, name):
            monkeypatch.setattr(fastipc, name, getattr(backend, name))
    from fastipc import aio as module

    return module


#: ``framed`` and ``check_framed``, as source for the child processes too.
FRAMED_SRC = """
def framed(index, size):
    head = index.to_bytes(8, "big") + size.to_bytes(8, "big")
    body = bytes((index * 31 + i * 7) & 0xFF for i in range(min(size, 251)))
    body = (body * (size // 251 + 1))[:size] if body else b""
    return head + body

def check_framed(message):
    index = int.from_bytes(message[:8], "big")
    size = int.from_bytes(message[8:16], "big")
    assert message == framed(index, size), f"message {index} ({size} B) is not whole"
    return index
"""

_namespace: dict[str, Any] = {}
exec(FRAMED_SRC, _namespace)
#: A message that says which it is: its index and size, then bytes that depend on both.
framed: Callable[[int, int], bytes] = _namespace["framed"]
#: The index of a message made by ``framed``; AssertionError if it is not whole.
check_framed: Callable[[bytes], int] = _namespace["check_framed"]
