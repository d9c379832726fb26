"""Signals as IPC: a pollable SignalReceiver (next to sockets, with selectors and asyncio) and
kill_and_wait for graceful shutdown. Receivers are made in child processes, so that the test
runner's own signal handling stays untouched."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time

import pytest
from _classic import assert_ctrl_c, no_queues_left  # noqa: F401

SELECTOR_CHILD = """
import selectors, signal
rx = B.SignalReceiver([signal.SIGUSR1, signal.SIGUSR2])
a, b = B.socketpair()
sel = selectors.DefaultSelector()
sel.register(rx, selectors.EVENT_READ, "signal")
sel.register(b, selectors.EVENT_READ, "socket")
report(ready=1, signals=sorted(int(s) for s in rx.signals))
a.send_bytes(b"hello")
seen = []
while len(seen) < 3:
    for key, _ in sel.select(timeout=20):
        if key.data == "signal":
            for info in rx.drain():
                seen.append(["signal", int(info.signal), info.pid])
        else:
            seen.append(["socket", b.recv_bytes().decode(), None])
report(seen=seen)
sel.close(); a.close(); b.close(); rx.close()
"""


def test_selectors_next_to_a_socket(backend, spawn):
    child = spawn(SELECTOR_CHILD)
    msg = child.expect("ready")
    assert msg["signals"] == [signal.SIGUSR1, signal.SIGUSR2]
    os.kill(child.pid, signal.SIGUSR1)
    os.kill(child.pid, signal.SIGUSR2)
    seen = child.expect("seen", timeout=20)["seen"]
    assert sorted(s[1] for s in seen if s[0] == "signal") == [signal.SIGUSR1, signal.SIGUSR2]
    assert [s[1] for s in seen if s[0] == "socket"] == ["hello"]
    for s in seen:
        if s[0] == "signal":
            assert s[2] == (os.getpid() if backend.BACKEND == "rust" else None)
    child.finish()


ASYNCIO_CHILD = """
import asyncio, signal
async def main():
    rx = B.SignalReceiver([signal.SIGUSR2])
    loop = asyncio.get_running_loop()
    got = loop.create_future()
    loop.add_reader(rx.fileno(), lambda: got.done() or got.set_result(rx.receive(timeout=0)))
    report(ready=1)
    info = await asyncio.wait_for(got, 20)
    loop.remove_reader(rx.fileno())
    rx.close()
    return info
info = asyncio.run(main())
report(signal=int(info.signal), name=info.signal.name)
"""


def test_asyncio(backend, spawn):
    child = spawn(ASYNCIO_CHILD)
    child.expect("ready")
    os.kill(child.pid, signal.SIGUSR2)
    assert child.expect("signal", timeout=20) == {
        "signal": signal.SIGUSR2,
        "name": "SIGUSR2",
    }
    child.finish()


TIMEOUT_CHILD = """
import signal, time
rx = B.SignalReceiver([signal.SIGUSR1])
t = time.monotonic()
try:
    rx.receive(timeout=0.1)
    report(result="returned")
except TimeoutError:
    report(result="timeout", elapsed=time.monotonic() - t)
assert rx.drain() == []
os.kill(os.getpid(), signal.SIGUSR1)
info = rx.receive(timeout=5)
report(signal=int(info.signal), code=info.code)
rx.close(); rx.close()
try:
    B.SignalReceiver([signal.SIGKILL])
except ValueError:
    report(sigkill="refused")
try:
    B.SignalReceiver([])
except ValueError:
    report(empty="refused")
"""


def test_timeout_drain_and_validation(backend, spawn):
    child = spawn(TIMEOUT_CHILD)
    msg = child.expect("result")
    assert msg["result"] == "timeout" and 0.09 <= msg["elapsed"] < 1.0
    assert child.expect("signal")["signal"] == signal.SIGUSR1
    assert child.expect("sigkill") == {"sigkill": "refused"}
    assert child.expect("empty") == {"empty": "refused"}
    child.finish()


RESTORE_CHILD = """
import signal
seen = []
signal.signal(signal.SIGUSR1, lambda *a: seen.append(1))
rx = B.SignalReceiver([signal.SIGUSR1])
os.kill(os.getpid(), signal.SIGUSR1)
assert rx.receive(timeout=5).signal == signal.SIGUSR1
rx.close()
# after close the signal goes to Python's handler again
os.kill(os.getpid(), signal.SIGUSR1)
report(seen=len(seen), handler_kept=signal.getsignal(signal.SIGUSR1) is not None)
"""


def test_close_gives_the_signal_back_to_python(backend, spawn):
    child = spawn(RESTORE_CHILD)
    assert child.expect("seen") == {"seen": 1, "handler_kept": True}
    child.finish()


def test_ctrl_c_while_waiting_for_another_signal(backend, spawn):
    assert_ctrl_c(
        spawn,
        setup="import signal\nrx = B.SignalReceiver([signal.SIGUSR1])",
        call="rx.receive()",
        cleanup="rx.close()",
    )


# --------------------------------------------------------------------------------- kill_and_wait


def test_kill_and_wait(backend):
    proc = subprocess.Popen(["sleep", "30"])
    try:
        with pytest.raises(TimeoutError):
            backend.kill_and_wait(proc.pid, 0, timeout=0.05)  # signal 0: only wait
        t = time.monotonic()
        backend.kill_and_wait(proc.pid, signal.SIGTERM, timeout=10)
        assert time.monotonic() - t < 5
        assert proc.wait(timeout=5) == -signal.SIGTERM  # not reaped by fastipc
    finally:
        proc.kill()
        proc.wait()


def test_kill_and_wait_times_out_then_escalates(backend):
    code = (
        "import signal,sys,time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
        "print(1, flush=True); time.sleep(60)"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE)
    try:
        assert proc.stdout.readline() == b"1\n"
        t = time.monotonic()
        with pytest.raises(TimeoutError):
            backend.kill_and_wait(proc.pid, signal.SIGTERM, timeout=0.2)
        assert 0.19 <= time.monotonic() - t < 2
        backend.kill_and_wait(proc.pid, signal.SIGKILL, timeout=10)
        assert proc.wait(timeout=5) == -signal.SIGKILL
    finally:
        proc.kill()
        proc.wait()
        proc.stdout.close()


def test_kill_and_wait_group(backend):
    code = (
        "import subprocess,time; subprocess.Popen(['sleep','30']); "
        "print(1, flush=True); time.sleep(30)"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, start_new_session=True
    )
    try:
        assert proc.stdout.readline() == b"1\n"
        backend.kill_and_wait(proc.pid, signal.SIGTERM, group=True, timeout=10)
        assert proc.wait(timeout=5) == -signal.SIGTERM
        # the grandchild got the signal too: the group empties
        deadline = time.monotonic() + 10
        while True:
            try:
                os.killpg(proc.pid, 0)
            except ProcessLookupError:
                break
            assert time.monotonic() < deadline, "the group did not end"
            time.sleep(0.01)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        proc.stdout.close()


def test_kill_and_wait_errors(backend):
    proc = subprocess.Popen(["true"])
    proc.wait()
    with pytest.raises(ProcessLookupError):
        backend.kill_and_wait(proc.pid, signal.SIGTERM, timeout=1)
    with pytest.raises(ValueError):
        backend.kill_and_wait(0)
    with pytest.raises(ValueError):
        backend.kill_and_wait(-5)


def test_ctrl_c_in_kill_and_wait(backend, spawn):
    assert_ctrl_c(
        spawn,
        setup="import subprocess\np = subprocess.Popen(['sleep', '30'])",
        call="B.kill_and_wait(p.pid, 0)",
        cleanup="p.kill(); p.wait()",
    )
