"""A named queue or channel whose segment another process truncates while a process has it
mapped: that process's next call (or the call it is blocked in) raises ``IPCError`` naming the
segment, and the process lives on, instead of dying of SIGBUS (docs/channel.md, "Named segments
and trust"; docs/channel-fallback.md for what the pure-Python backend can and cannot promise).

The process that has the segment mapped is a child: if it died of SIGBUS, its exit code says so
and the suite goes on. The test process is the one that truncates."""

from __future__ import annotations

import contextlib
import os

import pytest
from _helpers import wait_blocked_in_futex

pytestmark = pytest.mark.skipif(
    not os.path.isdir("/dev/shm"), reason="the test truncates the segment through /dev/shm"
)


def _truncate(name: str) -> None:
    fd = os.open(f"/dev/shm{name}", os.O_RDWR)
    try:
        os.ftruncate(fd, 0)
    finally:
        os.close(fd)


@pytest.fixture
def shm_name(names):
    name = names()
    yield name
    with contextlib.suppress(FileNotFoundError):  # the child unlinks it; not if it died
        os.unlink(f"/dev/shm{name}")


_CALLS = """
import fastipc

def attempt(label, call):
    try:
        call()
    except fastipc.IPCError as exc:
        return [label, str(exc)]
    except BaseException as exc:
        return [label, f"not an IPCError: {exc!r}"]
    return [label, "no error"]

def open_handle(kind, name):
    if kind in ("queue", "joinable"):
        q = (B.Queue if kind == "queue" else B.JoinableQueue)(name=name, capacity=4096)
        return q, q, q.put_bytes, q.get_bytes
    a = B.Channel.create(name, capacity=4096)
    b = B.Channel.open(name)
    a.settimeout(5)
    b.settimeout(5)
    return a, b, a.send_bytes, b.recv_bytes

def later_calls(kind, tx, rx):
    calls = [("send", lambda: tx.send_bytes(b"x") if kind == "channel" else tx.put_bytes(b"x"))]
    if kind == "joinable":
        calls += [("task_done", rx.task_done), ("join", lambda: rx.join(timeout=5))]
    if kind != "channel":
        calls += [
            ("get_bytes", lambda: rx.get_bytes(timeout=5)),
            ("get", lambda: rx.get(timeout=5)),
            ("get_view", lambda: rx.get_view(timeout=5)),
            ("qsize", rx.qsize),
            ("put", lambda: rx.put(1)),
        ]
    else:
        calls += [
            ("recv_bytes", rx.recv_bytes),
            ("recv", rx.recv),
            ("get_view", lambda: rx.get_view()),
            ("poll", lambda: rx.poll(0)),
            ("send", lambda: tx.send(1)),
        ]
    return [attempt(label, call) for label, call in calls]
"""

_BETWEEN_CALLS = (
    _CALLS
    + """
tx, rx, send, recv = open_handle(ARGS["kind"], ARGS["name"])
try:
    send(b"one")
    assert recv() == b"one"
    send(b"two")  # a message waits in the ring when the segment shrinks
    report(ready=True)
    wait_parent()
    report(errors=later_calls(ARGS["kind"], tx, rx))
finally:
    tx.unlink()
"""
)


def _check_errors(errors: list[list[str]], name: str) -> None:
    assert errors, "no call was made"
    for label, text in errors:
        assert text.startswith("corrupt channel: the segment "), (label, text)
        assert name in text and "truncated" in text, (label, text)


@pytest.mark.parametrize("kind", ["queue", "joinable", "channel"])
def test_truncated_between_calls_is_an_ipc_error(spawn, shm_name, kind):
    child = spawn(_BETWEEN_CALLS, args={"name": shm_name, "kind": kind})
    child.expect("ready")
    _truncate(shm_name)
    child.send(go=True)
    _check_errors(child.expect("errors")["errors"], shm_name)
    child.finish()  # exit code 0: the process survived


_BLOCKED = (
    _CALLS
    + """
tx, rx, send, recv = open_handle(ARGS["kind"], ARGS["name"])
try:
    report(blocking=True)
    first = attempt("blocked", (lambda: rx.get(timeout=30)) if ARGS["kind"] == "queue"
                    else (lambda: (rx.settimeout(30), rx.recv_bytes())))
    report(errors=[first] + later_calls(ARGS["kind"], tx, rx))
finally:
    tx.unlink()
"""
)


@pytest.mark.parametrize("kind", ["queue", "channel"])
def test_truncated_under_a_blocked_receive_is_an_ipc_error(spawn, shm_name, kind):
    child = spawn(_BLOCKED, args={"name": shm_name, "kind": kind})
    child.expect("blocking")
    wait_blocked_in_futex(child.pid, mapped=f"/dev/shm{shm_name}")
    _truncate(shm_name)
    _check_errors(child.expect("errors", timeout=10)["errors"], shm_name)
    child.finish()


_LOOPING = (
    _CALLS
    + """
tx, rx, send, recv = open_handle(ARGS["kind"], ARGS["name"])
payload = b"m" * 200
rounds = 0
try:
    try:
        while True:
            send(payload)
            got = recv()
            if got != payload:
                report(wrong=repr(got[:16]))
                break
            rounds += 1
            if rounds == 1000:
                report(looping=True)
    except fastipc.IPCError as exc:
        report(errors=[["loop", str(exc)]] + later_calls(ARGS["kind"], tx, rx), rounds=rounds)
finally:
    tx.unlink()
"""
)


@pytest.mark.parametrize("kind", ["queue", "channel"])
def test_truncated_under_a_busy_loop_takes_the_fault_and_survives(
    spawn, shm_name, kind, backend_name
):
    """The truncation lands while the child sends and receives without pause: the fault (SIGBUS)
    is taken inside a ring operation, turned into zero pages, and the operation reports it; no
    zero message is ever delivered (the loop checks every message)."""
    if backend_name != "rust":
        pytest.skip("the pure-Python backend cannot catch SIGBUS (docs/channel-fallback.md)")
    child = spawn(_LOOPING, args={"name": shm_name, "kind": kind})
    child.expect("looping")
    _truncate(shm_name)
    report = child.expect("errors", timeout=10)
    assert report["rounds"] >= 1000
    _check_errors(report["errors"], shm_name)
    child.finish()


_HELD_VIEW = (
    _CALLS
    + """
tx, rx, send, recv = open_handle(ARGS["kind"], ARGS["name"])
try:
    send(b"held")
    view = rx.get_view(timeout=5) if ARGS["kind"] == "queue" else rx.get_view()
    mv = view.__enter__()
    assert bytes(mv) == b"held"
    report(holding=True)
    wait_parent()
    seen = bytes(mv)  # past the new end: the fault is taken here
    del mv
    released = attempt("release", lambda: view.__exit__(None, None, None))
    report(seen=seen.hex(), errors=[released] + later_calls(ARGS["kind"], tx, rx))
finally:
    tx.unlink()
"""
)


@pytest.mark.parametrize("kind", ["queue", "channel"])
def test_a_view_held_across_the_truncation_shows_zeroes_and_its_release_raises(
    spawn, shm_name, kind, backend_name
):
    """A get_view() view is plain memory to Python: read after the truncation it shows the zero
    pages the handler mapped, and its release raises the IPCError."""
    if backend_name != "rust":
        pytest.skip("the pure-Python backend cannot catch SIGBUS (docs/channel-fallback.md)")
    child = spawn(_HELD_VIEW, args={"name": shm_name, "kind": kind})
    child.expect("holding")
    _truncate(shm_name)
    child.send(go=True)
    report = child.expect("errors")
    assert report["seen"] == bytes(4).hex()
    _check_errors(report["errors"], shm_name)
    child.finish()


_CHAINED = """
import faulthandler, mmap, signal, tempfile
faulthandler.enable()  # installed before fastipc's handler: fastipc's chains to it
q = B.Queue(name=ARGS["name"], capacity=4096)
try:
    q.put_bytes(b"one")
    fd = os.open("/dev/shm" + ARGS["name"], os.O_RDWR)
    os.ftruncate(fd, 0)
    os.close(fd)
    try:
        q.get_bytes()
        report(truncated="no error")
    except fastipc.IPCError as exc:
        report(truncated=str(exc))
finally:
    q.unlink()
# A fault of this process's own that is not fastipc's: a file mapped with Python's mmap, shrunk.
with tempfile.TemporaryFile() as f:
    f.write(bytes(4096))
    f.flush()
    mm = mmap.mmap(f.fileno(), 4096)
    os.ftruncate(f.fileno(), 0)
    report(foreign=True)
    mm[0]  # SIGBUS: faulthandler reports it, and the process dies of it as before
report(survived=True)
"""


def test_a_fault_that_is_not_fastipcs_goes_to_the_previous_handler(spawn, shm_name):
    """fastipc's SIGBUS handler handles faults in its own mappings only (or, in the pure-Python
    backend, the size check prevents the fault); any other SIGBUS still reaches the handler
    installed before (here faulthandler's), and the process dies of it as it would have."""
    import signal

    child = spawn(_CHAINED, args={"name": shm_name})
    text = child.expect("truncated")["truncated"]
    assert text.startswith("corrupt channel: the segment " + shm_name), text
    child.expect("foreign")
    child.finish(returncode=-signal.SIGBUS)
    assert "Fatal Python error: Bus error" in child.stderr
