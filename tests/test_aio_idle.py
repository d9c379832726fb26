"""The idle wait of ``fastipc.aio`` receives never holds up the loop.

On asyncio's own loop a receive whose message has not arrived, on a loop with nothing else to
do, waits for it in the loop's stead (``Readiness.idle``): a ``poll`` of its socket and of the
loop's epoll descriptor, with the GIL released, until the loop's next timer and at most
``IDLE_MAX``. These tests check that anything else for the loop to do ends that wait at once: a
timer, another descriptor, a thread's ``call_soon_threadsafe``, a signal, a cancellation, a
timeout, ``loop.stop()`` and Ctrl-C. ``IDLE_MAX`` is raised to 30 s in them, so a loop held up
by the idle wait fails the test (``GUARD``) rather than running 50 ms late.

The tests run on the default loop, where the idle wait applies (a thread checks that the loop's
thread sleeps in ``poll``/``ppoll``, the idle wait, before it makes the event), and on uvloop,
which has no idle wait (its thread sleeps in ``epoll_wait``) and must behave the same.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import queue
import signal
import socket
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from typing import Any

import pytest
from _aio import new_loop
from _helpers import pattern, wait_blocked_in_kernel
from fastipc.aio import _ready

#: How long an idle wait may last in these tests: long enough that a loop it held up could not
#: go unnoticed.
LONG_IDLE = 30.0
#: How long a test may take before it fails as held up (each takes milliseconds when it passes).
GUARD = 5.0
#: Where the loop's thread sleeps while a receive waits: on the default loop in the idle wait
#: (``poll``; Rust's ``poll`` is ``ppoll``), on uvloop in the loop's own ``epoll_wait``.
IDLE_WAIT = ("poll", "ppoll")
LOOP_WAIT = ("epoll_wait", "epoll_pwait", "epoll_pwait2")
WAITS = {"asyncio": IDLE_WAIT, "uvloop": LOOP_WAIT}


@pytest.fixture
def long_idle(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_ready, "IDLE_MAX", LONG_IDLE)


async def bounded(coro: Coroutine[Any, Any, Any]) -> Any:
    """Awaits ``coro``; fails the test if that takes more than :data:`GUARD` seconds. Bounded by
    a loop timer, and, in case timers are what the loop fails to run, from a thread (which wakes
    the loop by ``call_soon_threadsafe``, and cancels the task)."""
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    assert task is not None
    fired: list[bool] = []

    def stop() -> None:
        fired.append(True)
        task.cancel()

    watchdog = threading.Timer(GUARD + 1, loop.call_soon_threadsafe, (stop,))
    watchdog.start()
    try:
        async with asyncio.timeout(GUARD) as deadline:
            result = await coro
    except TimeoutError:
        pytest.fail(f"not done within {GUARD} s: the loop was held up")
    except asyncio.CancelledError:
        if fired:
            pytest.fail(f"not done within {GUARD + 1} s, and the loop's timers did not run")
        raise
    finally:
        watchdog.cancel()
        watchdog.join()
    # A test that expects a cancellation may have taken the guard's for its own.
    if deadline.expired() or fired:
        pytest.fail(f"not done within {GUARD} s: the loop was held up")
    return result


@contextlib.contextmanager
def when_waiting(loop_name: str, action: Callable[[], object]) -> Iterator[None]:
    """Runs ``action`` in a thread once the calling thread (the loop's) sleeps in a receive's
    wait: :data:`IDLE_WAIT` on the default loop, :data:`LOOP_WAIT` on uvloop. The action runs
    even if that is not seen (to end a wait it was to end); that failure is raised on leaving."""
    tid = threading.get_native_id()
    errors: list[BaseException] = []

    def watch() -> None:
        try:
            wait_blocked_in_kernel(os.getpid(), tid, GUARD / 2, syscalls=WAITS[loop_name])
        except AssertionError as exc:
            errors.append(exc)
        try:
            action()
        except BaseException as exc:  # reported in the test's thread
            errors.append(exc)

    thread = threading.Thread(target=watch)
    thread.start()
    try:
        yield
    finally:
        thread.join(2 * GUARD)
    assert not thread.is_alive()
    if errors:
        raise errors[0]


def _raw(conn: Any) -> socket.socket:
    """A blocking socket on a duplicate of ``conn``'s descriptor, to send frames by hand."""
    sock = socket.socket(fileno=os.dup(conn.fileno()))
    sock.setblocking(True)
    return sock


def _head(size: int) -> bytes:
    return size.to_bytes(4, "big")


# -- what else the loop has to do ends the idle wait -----------------------------------------


#: Whether a message was received on the connection before: the extension remembers the loop a
#: connection's receives found idle and answers later checks from the loop's attributes
#: (src/py/aio/idle.rs), and each of them must check the loop again.
EARLIER = pytest.mark.parametrize("earlier", [False, True], ids=["first", "later"])


@EARLIER
def test_ready_task_runs_before_receive_waits(aio, backend, run, long_idle, earlier):
    """A receive that starts with another task ready does not wait idle: that task runs."""

    async def main() -> list[object]:
        peer, mine = backend.socketpair()
        conn = aio.Connection.from_connection(mine)
        with peer, conn:
            order: list[object] = []
            if earlier:
                peer.send_bytes(b"first")
                order.append(await conn.recv_bytes())

            async def ready() -> None:
                order.append("ready task")
                peer.send_bytes(b"sent by the ready task")

            task = asyncio.create_task(ready())
            order.append(await conn.recv_bytes())
            await task
            return order

    first = [b"first"] if earlier else []
    assert run(bounded(main())) == [*first, "ready task", b"sent by the ready task"]


def test_timer_due_during_idle_wait_fires(aio, backend, run, long_idle):
    async def main() -> list[object]:
        loop = asyncio.get_running_loop()
        peer, mine = backend.socketpair()
        conn = aio.Connection.from_connection(mine)
        with peer, conn:
            order: list[object] = []

            async def later() -> None:
                await asyncio.sleep(0.01)
                order.append("timer")
                peer.send_bytes(b"sent after the timer")

            task = asyncio.create_task(later())
            await asyncio.sleep(0)  # its timer is set; nothing else is ready
            order.append(await conn.recv_bytes())
            await task

            def callback() -> None:
                order.append("call_later")
                peer.send_bytes(b"sent by call_later")

            loop.call_later(0.01, callback)
            order.append(await conn.recv_bytes())
            return order

    assert run(bounded(main())) == [
        "timer",
        b"sent after the timer",
        "call_later",
        b"sent by call_later",
    ]


async def other_served_first(
    aio, other: Any, loop_name: str, make: Callable[[], object]
) -> list[object]:
    """A receive waits idle on a pair of its own while another task waits in the loop on
    ``other``; ``make()`` (once the receive waits) makes ``other``'s message. What the two got,
    in order: the other's message must come first (its task answers the waiting receive)."""
    a, b = aio.socketpair()
    with a, b:
        order: list[object] = []

        async def second() -> None:
            got = await other.recv_bytes()
            order.append(got)
            await a.send_bytes(b"after " + got)

        task = asyncio.create_task(second())
        await asyncio.sleep(0)  # it waits on the loop for its descriptor
        with when_waiting(loop_name, make):
            order.append(await b.recv_bytes())
        await task
        return order


def test_other_descriptor_served_during_idle_wait(aio, backend, run, loop_name, long_idle):
    async def main() -> list[object]:
        peer, mine = backend.socketpair()
        with peer, aio.Connection.from_connection(mine) as other:
            return await other_served_first(
                aio, other, loop_name, lambda: peer.send_bytes(b"the other")
            )

    assert run(bounded(main())) == [b"the other", b"after the other"]


def test_other_process_served_during_idle_wait(aio, run, loop_name, spawn, long_idle):
    """The other descriptor is a connection to a child process, which answers once told."""
    child = spawn(
        """
lst = fastipc.listen(ARGS["address"])
report(address=lst.address)
conn = lst.accept(timeout=20)
lst.close()
wait_parent()
conn.send_bytes(b"from the child")
conn.close()
""",
        args={"address": "127.0.0.1:0"},
    )
    address = child.expect("address")["address"]

    async def main() -> list[object]:
        async with await aio.connect(address) as other:
            return await other_served_first(aio, other, loop_name, lambda: child.send(go=1))

    assert run(bounded(main())) == [b"from the child", b"after from the child"]
    child.finish()


def test_call_soon_threadsafe_runs_during_idle_wait(aio, backend, run, loop_name, long_idle):
    async def main() -> tuple[list[object], float]:
        loop = asyncio.get_running_loop()
        peer, mine = backend.socketpair()
        conn = aio.Connection.from_connection(mine)
        with peer, conn:
            order: list[object] = []
            asked: list[float] = []

            def callback() -> None:
                order.append("callback")
                peer.send_bytes(b"sent by the callback")

            def ask() -> None:
                asked.append(time.monotonic())
                loop.call_soon_threadsafe(callback)

            with when_waiting(loop_name, ask):
                order.append(await conn.recv_bytes())
            return order, time.monotonic() - asked[0]

    order, delay = run(bounded(main()))
    assert order == ["callback", b"sent by the callback"]
    assert delay < 1.0, f"the callback's message came {delay * 1000:.0f} ms after it was asked"


def test_signal_handler_runs_during_idle_wait(aio, backend, run, loop_name, long_idle):
    """A signal that reaches another thread (so it interrupts no call of the loop's thread) is
    seen by the loop through its wakeup descriptor, which ends the idle wait."""

    async def main() -> list[object]:
        loop = asyncio.get_running_loop()
        peer, mine = backend.socketpair()
        conn = aio.Connection.from_connection(mine)
        order: list[object] = []

        def handler() -> None:
            order.append("signal")
            peer.send_bytes(b"sent by the handler")

        def poke() -> None:
            # To the watching thread itself: the loop's thread goes on sleeping in its wait.
            signal.pthread_kill(threading.get_ident(), signal.SIGUSR1)

        loop.add_signal_handler(signal.SIGUSR1, handler)
        try:
            with peer, conn:
                with when_waiting(loop_name, poke):
                    order.append(await conn.recv_bytes())
        finally:
            loop.remove_signal_handler(signal.SIGUSR1)
        return order

    assert run(bounded(main())) == ["signal", b"sent by the handler"]


def test_peer_closing_ends_idle_wait(aio, backend, run, loop_name, long_idle):
    """The peer closing while a receive waits idle: EOFError at once."""

    async def main() -> None:
        peer, mine = backend.socketpair()
        with peer, aio.Connection.from_connection(mine) as conn:
            with when_waiting(loop_name, peer.close), pytest.raises(EOFError):
                await conn.recv_bytes()

    run(bounded(main()))


# -- timeouts and cancellation during the idle wait ------------------------------------------


def test_timeout_during_idle_wait(aio, backend, run, loop_name, long_idle):
    """``asyncio.timeout()`` ends an idle receive on time, with part of a large message in:
    nothing is lost, and the next receives get the whole message and the next."""
    payload = pattern(1 << 20, 9)

    async def main() -> tuple[float, bytes, bytes]:
        loop = asyncio.get_running_loop()
        peer, mine = backend.socketpair()
        conn = aio.Connection.from_connection(mine)
        with peer, conn, _raw(peer) as sock:
            sock.sendall(_head(len(payload)) + payload[:100_000])
            start = loop.time()
            with pytest.raises(TimeoutError):
                async with asyncio.timeout(0.05):
                    await conn.recv_bytes()
            elapsed = loop.time() - start
            # The rest from a thread: more than the socket buffers may take at once.
            await asyncio.to_thread(sock.sendall, payload[100_000:])
            peer.send_bytes(b"the next")
            return elapsed, await conn.recv_bytes(), await conn.recv_bytes()

    elapsed, whole, following = run(bounded(main()))
    assert 0.04 < elapsed < 1.0, f"TimeoutError after {elapsed * 1000:.0f} ms, not 50 ms"
    assert whole == payload
    assert following == b"the next"


def test_cancelled_by_another_task_during_idle_wait(aio, backend, run, loop_name, long_idle):
    payload = pattern(1 << 20, 10)

    async def main() -> tuple[bytes, bytes]:
        loop = asyncio.get_running_loop()
        peer, mine = backend.socketpair()
        conn = aio.Connection.from_connection(mine)
        with peer, conn, _raw(peer) as sock:
            sock.sendall(_head(len(payload)) + payload[:100_000])
            go: asyncio.Future[None] = loop.create_future()

            async def cancel_it() -> None:
                await go
                receive.cancel("by another task")

            canceller = asyncio.create_task(cancel_it())
            await asyncio.sleep(0)  # it waits for go; nothing else is ready
            receive = asyncio.ensure_future(conn.recv_bytes())
            with when_waiting(loop_name, lambda: loop.call_soon_threadsafe(go.set_result, None)):
                with pytest.raises(asyncio.CancelledError, match="by another task"):
                    await receive
            await canceller
            assert receive.cancelled()
            await asyncio.to_thread(sock.sendall, payload[100_000:])
            peer.send_bytes(b"the next")
            return await conn.recv_bytes(), await conn.recv_bytes()

    assert run(bounded(main())) == (payload, b"the next")


CTRL_C_CHILD = """
import asyncio, threading, time
from fastipc import aio
from fastipc.aio import _ready, _shm

_ready.IDLE_MAX = _shm.SLICE = 30.0

async def main():
BODY

factory = None
if ARGS["loop"] == "uvloop":
    import uvloop
    factory = uvloop.new_event_loop
try:
    with asyncio.Runner(loop_factory=factory) as runner:
        runner.run(main())
    report(result="returned")
except KeyboardInterrupt:
    report(result="KeyboardInterrupt", t=time.monotonic())
report(clean=1)
"""


def ctrl_c_ends_idle_wait(spawn: Any, loop_name: str, body: str) -> None:
    """SIGINT to a child whose ``asyncio.run`` main task runs ``body`` (which reports
    ``blocking`` and then waits in a receive, idle on the default loop, the bounds 30 s there)
    ends it with KeyboardInterrupt at once."""
    child = spawn(CTRL_C_CHILD.replace("BODY", body), args={"loop": loop_name})
    tid = child.expect("blocking")["tid"]
    wait_blocked_in_kernel(child.pid, tid, syscalls=WAITS[loop_name])
    sent = time.monotonic()
    os.kill(child.pid, signal.SIGINT)
    msg = child.expect("result", timeout=10)
    assert msg["result"] == "KeyboardInterrupt"
    delay = msg["t"] - sent  # CLOCK_MONOTONIC is shared by all processes
    assert 0 <= delay < 0.5, f"KeyboardInterrupt {delay * 1000:.0f} ms after SIGINT"
    assert child.expect("clean") == {"clean": 1}
    child.finish()


def test_ctrl_c_during_idle_wait(backend, loop_name, spawn):
    """Ctrl-C while ``recv_bytes`` waits idle."""
    body = """
    a, b = aio.socketpair()
    with a, b:
        report(blocking=1, tid=threading.get_native_id())
        await b.recv_bytes()
"""
    ctrl_c_ends_idle_wait(spawn, loop_name, body)


# -- loop.stop() -----------------------------------------------------------------------------


@contextlib.contextmanager
def _loop_and_pair(aio, backend, loop_name: str) -> Iterator[tuple[Any, Any, Any]]:
    """A fresh loop (not running) and a connection pair: (loop, blocking peer, aio end)."""
    loop = new_loop(loop_name)
    peer, mine = backend.socketpair()
    try:

        async def wrap() -> Any:
            return aio.Connection.from_connection(mine)

        conn = loop.run_until_complete(wrap())
        try:
            yield loop, peer, conn
        finally:
            conn.close()
    finally:
        peer.close()
        loop.close()


def _run_forever_bounded(loop: asyncio.AbstractEventLoop) -> None:
    """``loop.run_forever()``; fails the test if it has not returned by itself within
    :data:`GUARD` seconds (a thread then wakes and stops the loop)."""
    fired: list[bool] = []

    def stop() -> None:
        fired.append(True)
        loop.stop()

    watchdog = threading.Timer(GUARD, loop.call_soon_threadsafe, (stop,))
    watchdog.start()
    try:
        loop.run_forever()
    finally:
        watchdog.cancel()
        watchdog.join()
    assert not fired, f"run_forever() did not return within {GUARD} s"


def test_stop_from_thread_during_idle_wait(aio, backend, loop_name, long_idle):
    """``call_soon_threadsafe(loop.stop)`` while a receive waits idle: ``run_forever`` returns,
    the receive still waits (nothing taken), and it gets its message when the loop runs again."""
    with _loop_and_pair(aio, backend, loop_name) as (loop, peer, conn):
        receive = loop.create_task(conn.recv_bytes())
        with when_waiting(loop_name, lambda: loop.call_soon_threadsafe(loop.stop)):
            _run_forever_bounded(loop)
        assert not receive.done()
        peer.send_bytes(b"after the stop")
        assert loop.run_until_complete(asyncio.wait_for(receive, GUARD)) == b"after the stop"


@EARLIER
def test_receive_on_stopping_loop_does_not_wait_idle(aio, backend, loop_name, long_idle, earlier):
    """A receive that starts in the loop pass that ``loop.stop()`` ends does not wait: the pass
    ends at once, and the receive gets its message when the loop runs again."""
    with _loop_and_pair(aio, backend, loop_name) as (loop, peer, conn):
        if earlier:
            peer.send_bytes(b"first")
            received = loop.run_until_complete(asyncio.wait_for(conn.recv_bytes(), GUARD))
            assert received == b"first"
        loop.call_soon(loop.stop)
        receive = loop.create_task(conn.recv_bytes())  # its first step comes after the stop
        _run_forever_bounded(loop)
        assert not receive.done()
        peer.send_bytes(b"after the stop")
        assert loop.run_until_complete(asyncio.wait_for(receive, GUARD)) == b"after the stop"


# -- later receives on the same connection ---------------------------------------------------


def test_extension_answers_later_idle_checks_itself(backend_name, aio, backend, run):
    """After the first, the extension's receives answer the idle check themselves rather than
    asking ``Readiness.idle()`` each time, with a timer set (``bounded``'s) and a cancelled
    callback left in the ready queue (by a task that has not yielded since), which are the
    common case (the pure-Python backend always asks it)."""
    if backend_name != "rust":
        pytest.skip("the pure-Python backend asks Readiness.idle() for every receive")
    asked = 0
    real = _ready.Readiness.idle

    def counting(readiness: _ready.Readiness) -> Any:
        nonlocal asked
        asked += 1
        return real(readiness)

    async def main() -> list[bytes]:
        peer, mine = backend.socketpair()
        conn = aio.Connection.from_connection(mine)
        echo = threading.Thread(
            target=lambda: [peer.send_bytes(peer.recv_bytes()) for _ in range(50)]
        )
        with peer, conn:
            echo.start()
            asyncio.get_running_loop().call_soon(lambda: None).cancel()
            got = []
            for i in range(50):
                await conn.send_bytes(pattern(64, i))
                got.append(await conn.recv_bytes())
            echo.join()
            return got

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(_ready.Readiness, "idle", counting)
        assert run(bounded(main())) == [pattern(64, i) for i in range(50)]
    assert asked == 1


# -- a large message arriving in pieces ------------------------------------------------------

PIECES_CHILD = """
import socket
lst = fastipc.listen(ARGS["address"], max_message=64 << 20)
report(address=lst.address)
conn = lst.accept(timeout=20)
lst.close()
data = pattern(ARGS["size"], 3)
step = ARGS["size"] // ARGS["parts"]
with socket.socket(fileno=os.dup(conn.fileno())) as sock:
    sock.setblocking(True)
    sock.sendall(ARGS["size"].to_bytes(4, "big"))
    for i in range(ARGS["parts"]):
        assert wait_parent() == {"go": i}
        sock.sendall(data[i * step : (i + 1) * step])
conn.send_bytes(b"the next")
report(sent=ARGS["parts"])
conn.close()
"""


@pytest.mark.parametrize("idle_max", [None, LONG_IDLE], ids=["IDLE_MAX", "long"])
def test_message_in_pieces(aio, run, loop_name, spawn, monkeypatch, idle_max):
    """A 4 MiB message sent in 16 pieces, each only once the receiving loop has run a callback
    (asked for by a thread while the receive waits, part way through the message): the loop runs
    between the pieces, and the message arrives whole. With the default ``IDLE_MAX`` the idle
    wait also runs out part way, and the receive goes on from the loop."""
    if idle_max is not None:
        monkeypatch.setattr(_ready, "IDLE_MAX", idle_max)
    size, parts = 4 << 20, 16
    child = spawn(PIECES_CHILD, args={"address": "127.0.0.1:0", "size": size, "parts": parts})
    address = child.expect("address")["address"]
    # With the default IDLE_MAX the receive waits part of the time on the loop.
    waits = WAITS[loop_name] if idle_max is not None else IDLE_WAIT + LOOP_WAIT

    async def main() -> tuple[bytes, bytes]:
        loop = asyncio.get_running_loop()
        tid = threading.get_native_id()
        asked: queue.Queue[int] = queue.Queue()
        errors: list[BaseException] = []

        def go(i: int) -> None:
            child.send(go=i)
            asked.put(i)

        def pace() -> None:
            try:
                for i in range(parts):
                    wait_blocked_in_kernel(os.getpid(), tid, GUARD / 2, syscalls=waits)
                    loop.call_soon_threadsafe(go, i)
                    assert asked.get(timeout=GUARD) == i
            except BaseException as exc:  # reported in the test's thread
                errors.append(exc)

        async with await aio.connect(address, max_message=64 << 20) as conn:
            thread = threading.Thread(target=pace)
            thread.start()
            try:
                whole = await conn.recv_bytes()
            finally:
                thread.join(2 * GUARD)
            assert not errors, errors
            return whole, await conn.recv_bytes()

    whole, following = run(bounded(main()))
    assert len(whole) == size
    assert whole == pattern(size, 3)
    assert following == b"the next"
    assert child.expect("sent") == {"sent": parts}
    child.finish()


# -- Readiness.idle(), the offer of an idle wait ---------------------------------------------


def _offer(loop_name: str, check: Callable[[_ready.Readiness], Any]) -> Any:
    """``check(readiness)`` in a coroutine on a fresh loop, with a Readiness for a socket."""
    a, b = socket.socketpair()
    with a, b, asyncio.Runner(loop_factory=lambda: new_loop(loop_name)) as runner:
        readiness = _ready.Readiness(a.fileno(), write=False)

        async def main() -> Any:
            try:
                return check(readiness)
            finally:
                readiness.close()

        return runner.run(main())


def test_idle_offer_on_default_loop():
    def check(readiness: _ready.Readiness) -> None:
        loop: Any = asyncio.get_running_loop()
        selector_fd = loop._selector.fileno()
        # Nothing else to do: the loop's descriptor, for IDLE_MAX.
        assert readiness.idle() == (selector_fd, _ready.IDLE_MAX)
        # A callback ready: no idle wait; a cancelled one does not count.
        handle = loop.call_soon(lambda: None)
        assert readiness.idle() == ()
        handle.cancel()
        assert readiness.idle() == (selector_fd, _ready.IDLE_MAX)
        # A timer: the wait ends when it is due.
        timer = loop.call_later(0.01, lambda: None)
        fd, seconds = readiness.idle()
        assert fd == selector_fd
        assert 0 < seconds <= 0.01
        timer.cancel()
        # A timer due already: no idle wait.
        loop.call_at(loop.time() - 1, lambda: None)
        assert readiness.idle() == ()

    _offer("asyncio", check)


def test_idle_offer_counts_own_reader_callback():
    """The descriptor's own reader callback in the ready queue (a report the loop made before
    the task ran) does not stop the idle wait; the registration is dropped for it."""

    def check(readiness: _ready.Readiness) -> None:
        loop: Any = asyncio.get_running_loop()
        waiting = readiness.wait()  # registers the descriptor with the loop
        loop.call_soon(readiness._ready)
        offer = readiness.idle()
        assert offer == (loop._selector.fileno(), _ready.IDLE_MAX)
        # The loop no longer watches the descriptor (it would make its own descriptor readable).
        assert loop._selector.get_map().get(readiness._fd) is None
        assert waiting.done()

    _offer("asyncio", check)


def test_idle_offer_on_stopping_loop():
    offers: list[object] = []
    a, b = socket.socketpair()
    loop = new_loop("asyncio")
    with a, b, contextlib.closing(loop):
        readiness = _ready.Readiness(a.fileno(), write=False)
        loop.call_soon(loop.stop)
        loop.call_soon(lambda: offers.append(readiness.idle()))
        loop.run_forever()
    assert offers == [()]


def test_no_idle_offer_on_uvloop(_uvloop_ready):
    assert _offer("uvloop", lambda readiness: readiness.idle()) == ()
