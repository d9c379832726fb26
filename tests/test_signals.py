"""Blocking calls let Ctrl-C through promptly, also with a second thread running."""

from __future__ import annotations

import os
import signal
import time

import pytest
from _helpers import wait_blocked_in_kernel

BLOCKED_CHILD = """
import signal, threading, time
what, second = ARGS["what"], ARGS["second_thread"]
lst = B.listen("127.0.0.1:0")
a, b = B.socketpair(ARGS.get("pair_kind", "stream"))
stop = threading.Event()
spins = [0]
if second == "busy":
    def spin():
        while not stop.is_set():
            spins[0] += 1
    threading.Thread(target=spin, daemon=True).start()
elif second == "sleeping":
    threading.Thread(target=stop.wait, daemon=True).start()
calls = {
    "accept": lambda: lst.accept(),
    "accept_timeout": lambda: lst.accept(timeout=60),
    "recv_bytes": lambda: b.recv_bytes(),
    "recv": lambda: b.recv(),
    "recv_exact": lambda: b.recv_exact(10),
    "poll": lambda: b.poll(None),
    "sendall": lambda: a.sendall(b"\\0" * (64 << 20)),
    "send_bytes": lambda: a.send_bytes(b"\\0" * (64 << 20)),
    "recvfrom": lambda: d.recvfrom(100),
}
d = B.listen("127.0.0.1:0", kind="datagram")
report(blocking=1, tid=threading.get_native_id())
try:
    calls[what]()
    report(result="returned")
except KeyboardInterrupt:
    t = time.monotonic()
    report(result="KeyboardInterrupt", t=t)
stop.set()
# the objects are still usable after the interruption (a half-sent stream is not)
if what not in ("sendall", "send_bytes"):
    a.send_bytes(b"after")
    assert b.recv_bytes() == b"after"
a.close(); b.close(); lst.close(); d.close()
report(clean=1)
"""


@pytest.mark.parametrize("second_thread", [None, "busy", "sleeping"])
@pytest.mark.parametrize("what", ["accept", "recv_bytes"])
def test_sigint_interrupts_blocking_call(backend, sock_dir, spawn, what, second_thread):
    _interrupt(spawn, what, second_thread)


@pytest.mark.parametrize(
    "what", ["accept_timeout", "recv", "recv_exact", "poll", "sendall", "send_bytes", "recvfrom"]
)
def test_sigint_interrupts_other_calls(backend, sock_dir, spawn, what):
    _interrupt(spawn, what, "busy")


def _interrupt(spawn, what, second_thread):
    child = spawn(BLOCKED_CHILD, args={"what": what, "second_thread": second_thread})
    tid = child.expect("blocking")["tid"]
    wait_blocked_in_kernel(child.pid, tid)
    t_sent = time.monotonic()
    os.kill(child.pid, signal.SIGINT)
    msg = child.expect("result", timeout=10)
    assert msg["result"] == "KeyboardInterrupt"
    delay = msg["t"] - t_sent  # CLOCK_MONOTONIC is shared by all processes
    assert 0 <= delay < 0.2, f"KeyboardInterrupt {delay * 1000:.0f} ms after SIGINT"
    assert child.expect("clean") == {"clean": 1}
    child.finish()


HANDLED_CHILD = """
import signal, threading
seen = []
signal.signal(signal.SIGUSR1, lambda *a: seen.append(1))
lst = B.listen("127.0.0.1:0")
report(address=lst.address)
conn = lst.accept(timeout=20)
lst.close()
report(blocking=1, tid=threading.get_native_id())
msg = conn.recv_bytes()  # a signal whose handler returns does not end the call
report(msg=msg.decode(), seen=len(seen))
conn.close()
"""


def test_signal_with_returning_handler_resumes(backend, sock_dir, spawn):
    child = spawn(HANDLED_CHILD)
    address = child.expect("address")["address"]
    with backend.connect(address, socket_dir=sock_dir, timeout=10) as conn:
        tid = child.expect("blocking")["tid"]
        wait_blocked_in_kernel(child.pid, tid)
        for _ in range(3):
            os.kill(child.pid, signal.SIGUSR1)
        conn.send_bytes(b"done")
        msg = child.expect("msg")
    assert msg["msg"] == "done"
    assert 1 <= msg["seen"] <= 3
    child.finish()


GIL_SCRIPT = """
import threading, time
lst = B.listen("127.0.0.1:0")
a, b = B.socketpair()
d = B.listen("127.0.0.1:0", kind="datagram")
blocked = {
    "accept": lambda: lst.accept(),
    "recv_bytes": lambda: b.recv_bytes(),
    "poll": lambda: b.poll(None),
    "recvfrom": lambda: d.recvfrom(10),
    "recv_exact": lambda: b.recv_exact(4),
}[ARGS["what"]]
done = []
t = threading.Thread(target=lambda: done.append(blocked()), daemon=True)
t.start()
report(started=1, tid=t.native_id)
wait_parent()
# the blocked thread must have released the GIL: this thread keeps running Python code
x, y = B.socketpair()
t0 = time.monotonic()
for i in range(200):
    x.send_bytes(b"%d" % i)
    assert y.recv_bytes() == b"%d" % i
report(roundtrips_s=time.monotonic() - t0, alive=t.is_alive())
x.close(); y.close()
# release the blocked thread, then clean up
if ARGS["what"] == "accept":
    c = B.connect(lst.address, timeout=5)
elif ARGS["what"] == "recvfrom":
    d.sendto(b"x", d.address)
else:
    a.send_bytes(b"wake")
t.join(10)
assert not t.is_alive()
if ARGS["what"] == "accept":
    c.close(); done[0].close()
for obj in (a, b, d, lst):
    obj.close()
report(clean=1)
"""


@pytest.mark.parametrize("what", ["accept", "recv_bytes", "poll", "recvfrom", "recv_exact"])
def test_blocking_calls_release_the_gil(backend, sock_dir, spawn, what):
    child = spawn(GIL_SCRIPT, args={"what": what})
    tid = child.expect("started")["tid"]
    wait_blocked_in_kernel(child.pid, tid)
    child.send(go=1)
    msg = child.expect("roundtrips_s", timeout=10)
    assert msg["alive"] is True
    assert msg["roundtrips_s"] < 2.0
    assert child.expect("clean") == {"clean": 1}
    child.finish()
