"""Helpers for the fastipc tests: child processes and byte patterns."""

from __future__ import annotations

import json
import os
import select
import shutil
import signal
import subprocess
import sys
import textwrap
import time

CHILD_TIMEOUT = 30.0

#: pids of the children started by the current test (for attributing /dev/shm entries)
SPAWNED_PIDS: set[int] = set()

_PRELUDE = '''
import json, os, sys
ARGS = json.loads(os.environ["FASTIPC_TEST_ARGS"])
import fastipc
import importlib
B = importlib.import_module(
    {"rust": "fastipc._fastipc", "python": "fastipc._fallback"}[os.environ["FASTIPC_BACKEND"]]
)
assert fastipc.Connection is B.Connection, "the facade did not pick the requested backend"

def report(**kw):
    sys.stdout.write(json.dumps(kw) + "\\n")
    sys.stdout.flush()

def wait_parent():
    line = sys.stdin.readline()
    return json.loads(line) if line else None

def pattern(n, seed=0):
    """n deterministic bytes that differ with n and seed."""
    block = bytes((i * 131 + seed * 7 + (n & 0xFF)) & 0xFF for i in range(256))
    return (block * (n // 256 + 1))[:n]
'''


def c_compiler() -> str:
    """The C compiler of the tests that build C peers (gcc, else cc). Without one on PATH those
    tests skip with the reason, unless ``FASTIPC_TEST_NEED_CC=1`` (as in ``.ci/run``) makes
    that a failure."""
    import pytest

    found = shutil.which("gcc") or shutil.which("cc")
    if found:
        return found
    if os.environ.get("FASTIPC_TEST_NEED_CC") == "1":
        pytest.fail("no C compiler (gcc or cc) on PATH, and FASTIPC_TEST_NEED_CC=1")
    pytest.skip("no C compiler (gcc or cc) on PATH: the C peers cannot be built")


def pattern(n: int, seed: int = 0) -> bytes:
    """The same deterministic bytes as ``pattern`` in a child."""
    block = bytes((i * 131 + seed * 7 + (n & 0xFF)) & 0xFF for i in range(256))
    return (block * (n // 256 + 1))[:n]


class ChildError(AssertionError):
    pass


class Child:
    """A child Python process talking JSON lines: ``report`` on its stdout, ``wait_parent`` on
    its stdin. Every wait has a timeout; nothing is synchronised by sleeping."""

    def __init__(
        self,
        script: str,
        backend: str,
        args: dict,
        env_extra: dict[str, str],
        *,
        stdin: bool = True,
    ) -> None:
        env = dict(os.environ)
        env.pop("XDG_RUNTIME_DIR", None)
        env["FASTIPC_BACKEND"] = backend
        env["FASTIPC_TEST_ARGS"] = json.dumps(args)
        env.update(env_extra)
        self.backend = backend
        self.script = _PRELUDE + textwrap.dedent(script)
        self.proc = subprocess.Popen(
            [sys.executable, "-c", self.script],
            stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
        )
        self.pid = self.proc.pid
        SPAWNED_PIDS.add(self.pid)
        self._buf = b""
        self._eof = False
        self._stderr = b""

    # ---------------------------------------------------------------- reading reports
    def _read_line(self, timeout: float) -> bytes | None:
        deadline = time.monotonic() + timeout
        fd = self.proc.stdout.fileno()
        poller = select.poll()
        poller.register(fd, select.POLLIN | select.POLLHUP)
        while b"\n" not in self._buf:
            if self._eof:
                return None
            left = deadline - time.monotonic()
            if left <= 0:
                raise ChildError(f"child {self.pid} sent nothing within {timeout} s{self._more()}")
            if poller.poll(left * 1000):
                chunk = os.read(fd, 65536)
                if not chunk:
                    self._eof = True
                self._buf += chunk
        line, self._buf = self._buf.split(b"\n", 1)
        return line

    def expect(self, key: str | None = None, timeout: float = CHILD_TIMEOUT) -> dict:
        """The next report of the child (which must contain ``key`` if given)."""
        line = self._read_line(timeout)
        if line is None:
            self.proc.wait(timeout=timeout)
            raise ChildError(
                f"child exited ({self.proc.returncode}) before reporting {key!r}{self._more()}"
            )
        try:
            msg = json.loads(line)
        except ValueError as exc:
            raise ChildError(f"child wrote {line!r}{self._more()}") from exc
        if key is not None and key not in msg:
            raise ChildError(f"child reported {msg!r}, expected key {key!r}{self._more()}")
        return msg

    def send(self, **kw) -> None:
        self.proc.stdin.write((json.dumps(kw) + "\n").encode())
        self.proc.stdin.flush()

    # ---------------------------------------------------------------- ending
    def finish(self, timeout: float = CHILD_TIMEOUT, returncode: int | None = 0) -> str:
        """Close stdin, wait for the exit, check the return code; returns the rest of stdout."""
        rest = self._drain(timeout)  # communicate() closes stdin: the child sees EOF
        if returncode is not None and self.proc.returncode != returncode:
            raise ChildError(
                f"child exited with {self.proc.returncode}, expected {returncode}{self._more()}"
            )
        return rest

    def _drain(self, timeout: float) -> str:
        if self.proc.stdin is not None and self.proc.stdin.closed:
            self.proc.stdin = None
        try:
            out, err = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired as exc:
            self.proc.kill()
            out, err = self.proc.communicate()
            self._stderr += err or b""
            raise ChildError(
                f"child {self.pid} did not exit within {timeout} s{self._more()}"
            ) from exc
        self._stderr += err or b""
        rest = self._buf + (out or b"")
        self._buf = b""
        return rest.decode(errors="replace")

    def kill(self, sig: int = signal.SIGKILL) -> None:
        self.proc.send_signal(sig)

    def wait_dead(self, timeout: float = CHILD_TIMEOUT) -> int:
        return self.proc.wait(timeout=timeout)

    @property
    def stderr(self) -> str:
        return self._stderr.decode(errors="replace")

    def _more(self) -> str:
        if self.proc.poll() is not None and self.proc.stderr and not self.proc.stderr.closed:
            try:
                self._stderr += self.proc.stderr.read() or b""
            except (OSError, ValueError):
                pass
        text = self._stderr.decode(errors="replace").strip()
        return f"\n--- child stderr ---\n{text}" if text else ""

    def cleanup(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        try:
            self._drain(CHILD_TIMEOUT)
        except (ValueError, OSError, ChildError):
            pass
        for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if stream is not None:
                try:
                    stream.close()
                except OSError:
                    pass


def proc_state(pid: int, tid: int | None = None) -> str:
    """The scheduler state letter of a process (or one of its threads) from /proc."""
    path = f"/proc/{pid}/task/{tid}/stat" if tid else f"/proc/{pid}/stat"
    with open(path) as f:
        data = f.read()
    return data[data.rindex(")") + 2]


def wchan(pid: int, tid: int | None = None) -> str:
    path = f"/proc/{pid}/task/{tid}/wchan" if tid else f"/proc/{pid}/wchan"
    with open(path) as f:
        return f.read().strip()


def wait_blocked_in_kernel(pid: int, tid: int | None = None, timeout: float = 5.0) -> str:
    """Bounded poll until the thread sleeps interruptibly in a kernel wait that is not a futex
    (a futex wait would be the GIL or a lock, not the socket call). Returns the wait channel."""
    tid = tid or pid
    deadline = time.monotonic() + timeout
    while True:
        try:
            state, chan = proc_state(pid, tid), wchan(pid, tid)
        except FileNotFoundError as exc:
            raise AssertionError(f"thread {tid} of process {pid} is gone") from exc
        if state == "S" and chan not in ("", "0") and "futex" not in chan:
            return chan
        if time.monotonic() > deadline:
            raise AssertionError(
                f"process {pid} did not block within {timeout} s (state {state}, wchan {chan})"
            )
        time.sleep(0.001)


# A child that connects to ARGS["address"] (kind ARGS["kind"]) and echoes every framed message
# until EOF, then reports how many it echoed.
ECHO_CLIENT = """
conn = B.connect(ARGS["address"], kind=ARGS.get("kind", "stream"), timeout=10)
report(connected=conn.address, kind=conn.kind)
n = 0
while True:
    try:
        msg = conn.recv_bytes()
    except EOFError:
        break
    conn.send_bytes(msg)
    n += 1
conn.close()
report(echoed=n)
"""

# A child that listens on ARGS["address"], reports the real address, accepts one connection and
# echoes every framed message until EOF.
ECHO_SERVER = """
lst = B.listen(ARGS["address"], kind=ARGS.get("kind", "stream"))
report(address=lst.address, path=lst.path)
conn = lst.accept(timeout=20)
n = 0
while True:
    try:
        msg = conn.recv_bytes()
    except EOFError:
        break
    conn.send_bytes(msg)
    n += 1
conn.close()
lst.close()
report(echoed=n)
"""
