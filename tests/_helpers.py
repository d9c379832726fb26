"""Helpers for the fastipc tests: child processes and byte patterns."""

from __future__ import annotations

import json
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

CHILD_TIMEOUT = 30.0

#: pids of the children started by the current test (for attributing /dev/shm entries)
SPAWNED_PIDS: set[int] = set()
#: pids of every child started in this session
SESSION_PIDS: set[int] = set()

_PRELUDE = '''
import json, os, signal, sys
# Ctrl-C raises KeyboardInterrupt even when the suite was started with SIGINT ignored (a shell
# starts background jobs so, and Python then installs no handler of its own).
signal.signal(signal.SIGINT, signal.default_int_handler)
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
        SESSION_PIDS.add(self.pid)
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


#: A /dev/shm entry under a name fastipc generates (a segment or lock, or a semaphore)
GENERATED_ENTRY = re.compile(r"(sem\.)?fastipc-[0-9a-f]{16}")


def foreign_shm_entry(name: str, children: set[int], registry: str | None = None) -> bool:
    """Whether a /dev/shm entry belongs to someone else. Other fastipc test runs on the same
    machine use /dev/shm concurrently; an entry is theirs if:

    * it has a ``fastipc-test-...`` name that does not embed the pid of this process or of one of
      ``children`` (every test run names its entries with its pid, ``fastipc-test-<pid>-...``);
    * it has a generated name and is not recorded in ``registry``, the private registry of this
      run, where fastipc records every segment, semaphore and lock that it creates;
    * or another live process holds it."""
    if "fastipc-test-" in name:
        tokens = set(re.split(r"[-.]", name))
        if not tokens & {str(pid) for pid in children | {os.getpid()}}:
            return True
    generated = GENERATED_ENTRY.fullmatch(name)
    if generated and registry:
        kinds = ("sem",) if generated.group(1) else ("shm", "lock")
        bare = name.removeprefix("sem.")
        if not any(os.path.exists(os.path.join(registry, f"{k}.{bare}")) for k in kinds):
            return True
    return _held_by_other_process(name)


def _held_by_other_process(name: str) -> bool:
    """Whether another live process (not this one) has ``/dev/shm/<name>`` open or mapped.

    The file is matched by device and inode (a semaphore's creator maps it under a temporary
    name). An entry that someone else holds is theirs, not a leak of this test (whose children
    have all exited by now)."""
    try:
        st = os.stat(f"/dev/shm/{name}")
    except FileNotFoundError:
        return False
    me = os.getpid()
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) == me:
            continue
        try:
            if _ranges_of(int(pid), st):
                return True
            for fd in os.listdir(f"/proc/{pid}/fd"):
                other = os.stat(f"/proc/{pid}/fd/{fd}")
                if (other.st_dev, other.st_ino) == (st.st_dev, st.st_ino):
                    return True
        except OSError:
            continue
    return False


def _ranges_of(pid: int, st: os.stat_result) -> list[tuple[int, int]]:
    """Where process ``pid`` maps the file ``st`` is the status of (matched in /proc/PID/maps
    by device and inode)."""
    device = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}"
    ranges = []
    with open(f"/proc/{pid}/maps") as f:
        for line in f:
            fields = line.split(maxsplit=5)
            if len(fields) >= 5 and fields[3] == device and int(fields[4]) == st.st_ino:
                start, end = fields[0].split("-")
                ranges.append((int(start, 16), int(end, 16)))
    return ranges


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


#: System call numbers, by machine, of the waits the tests look for in
#: ``/proc/PID/task/TID/syscall`` (whose first field is the number of the call the thread is in).
SYSCALL_NUMBERS: dict[str, dict[str, int]] = {
    "x86_64": {
        "futex": 202,
        "nanosleep": 35,
        "clock_nanosleep": 230,
        "poll": 7,
        "ppoll": 271,
        "epoll_wait": 232,
        "epoll_pwait": 281,
        "epoll_pwait2": 441,
    },
    "aarch64": {
        "futex": 98,
        "nanosleep": 101,
        "clock_nanosleep": 115,
        "ppoll": 73,
        "epoll_pwait": 22,
        "epoll_pwait2": 441,
    },
}

#: The sleeps of a polling wait: Python's ``time.sleep`` and Rust's ``std::thread::sleep`` (both
#: through glibc, which makes ``nanosleep`` a ``clock_nanosleep``).
SLEEP_SYSCALLS = ("clock_nanosleep", "nanosleep")


def current_syscall(pid: int, tid: int | None = None) -> tuple[str, tuple[int, ...]] | None:
    """The system call a thread is in, by name (``"running"`` if it is on a CPU, ``"none"`` if
    it is not in a system call, ``"#N"`` for a number outside :data:`SYSCALL_NUMBERS`), with its
    six arguments. None where that cannot be read: no ``/proc/PID/task/TID/syscall`` (it needs
    the right to ptrace the process), or a machine whose numbers the table lacks."""
    numbers = SYSCALL_NUMBERS.get(os.uname().machine)
    if numbers is None:
        return None
    try:
        with open(f"/proc/{pid}/task/{tid or pid}/syscall") as f:
            fields = f.read().split()
    except PermissionError:
        return None
    if not fields or fields[0] == "running":
        return "running", ()
    nr = int(fields[0])
    if nr < 0:
        return "none", ()
    names = {v: k for k, v in numbers.items()}
    return names.get(nr, f"#{nr}"), tuple(int(a, 16) for a in fields[1:7])


def mapped_ranges(pid: int, path: str) -> list[tuple[int, int]]:
    """The address ranges at which a process maps the file ``path`` (from /proc/PID/maps). The
    file is matched by device and inode, not by name: ``sem_open`` maps a temporary file that it
    then links under the semaphore's name, so the creator's mapping shows the temporary name."""
    return _ranges_of(pid, os.stat(path))


def _observe(pid: int, tid: int) -> tuple[str, str, tuple[str, tuple[int, ...]] | None]:
    """State, wait channel and system call of a thread. The system call is read first: a
    thread seen in a call (off its CPU, as the kernel reports it) and then in state S sleeps in
    that call."""
    try:
        call = current_syscall(pid, tid)
        return proc_state(pid, tid), wchan(pid, tid), call
    except FileNotFoundError as exc:
        raise AssertionError(f"thread {tid} of process {pid} is gone") from exc


def wait_blocked_in_kernel(
    pid: int,
    tid: int | None = None,
    timeout: float = 5.0,
    *,
    syscalls: tuple[str, ...] | None = None,
) -> str:
    """Bounded poll until the thread sleeps interruptibly in a kernel wait that is not a futex
    (a futex wait would be the GIL or a lock, not the socket call). Returns the wait channel.

    With ``syscalls`` (names from :data:`SYSCALL_NUMBERS`) the wait must also be in one of those
    system calls, read exactly from ``/proc/PID/task/TID/syscall``; where that file cannot be
    read, the wait channel alone decides, as without ``syscalls``."""
    tid = tid or pid
    deadline = time.monotonic() + timeout
    while True:
        state, chan, call = _observe(pid, tid)
        asleep = state == "S" and chan not in ("", "0") and "futex" not in chan
        if asleep and (syscalls is None or call is None or call[0] in syscalls):
            return chan
        if time.monotonic() > deadline:
            raise AssertionError(
                f"process {pid} did not block within {timeout} s (state {state}, wchan {chan},"
                f" system call {call and call[0]})"
            )
        time.sleep(0.001)


#: How long a futex sleep must last, with this process's GIL free, for the wait-channel
#: fallback of :func:`wait_blocked_in_futex` to take it for something other than a GIL wait.
FUTEX_STEADY = 0.02


def wait_blocked_in_futex(
    pid: int, tid: int | None = None, *, mapped: str, timeout: float = 5.0
) -> str:
    """Bounded poll until the thread sleeps in a futex whose word lies in the file ``mapped``
    (``/dev/shm/sem.NAME`` for a semaphore, the segment of a Lock): the thread waits for that
    semaphore or lock, not for the GIL or another lock (whose futex words live elsewhere).

    Call it after the thread has said it is about to make the call (a report, an Event set just
    before it): the wait is then that call's. A Semaphore's acquire polls for up to 250 µs
    before it sleeps, and wakes every 50 ms to check for signals; the poll catches the sleep.

    Where ``/proc/PID/task/TID/syscall`` cannot be read, the fallback is the wait channel: a
    futex sleep seen without a break for :data:`FUTEX_STEADY` seconds, during which this
    process's GIL was free (the poll sleeps between looks). That rules out a GIL wait of a
    thread of this process, and a single-threaded child never waits for its GIL while in a call
    that released it; it cannot tell another lock's futex, which the marker rules out.
    Returns the wait channel."""
    tid = tid or pid
    deadline = time.monotonic() + timeout
    steady_since = None
    while True:
        state, chan, call = _observe(pid, tid)
        if call is not None:
            if state == "S" and call[0] == "futex" and _in_file(pid, call[1][0], mapped):
                return chan
        elif state == "S" and "futex" in chan:
            steady_since = steady_since or time.monotonic()
            if time.monotonic() - steady_since >= FUTEX_STEADY:
                return chan
        else:
            steady_since = None
        if time.monotonic() > deadline:
            where = call and (call[0], hex(call[1][0]) if call[1] else None)
            raise AssertionError(
                f"thread {tid} of process {pid} did not wait in a futex of {mapped} within"
                f" {timeout} s (state {state}, wchan {chan}, system call {where},"
                f" maps {mapped_ranges(pid, mapped)})"
            )
        time.sleep(0.001)


def _in_file(pid: int, address: int, path: str) -> bool:
    return any(start <= address < end for start, end in mapped_ranges(pid, path))


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


def newer_pythons() -> list[str]:
    """One interpreter of each of 3.12, 3.13, 3.14 found (pyenv's, else on PATH; not a shim):
    their ``multiprocessing.connection`` speaks the ``{sha256}`` form of the handshake."""
    found = []
    pyenv = Path.home() / ".pyenv" / "versions"
    for version in ("3.12", "3.13", "3.14"):
        candidates = sorted(pyenv.glob(f"{version}.*/bin/python3")) if pyenv.is_dir() else []
        on_path = shutil.which(f"python{version}")
        if on_path and "/shims/" not in on_path:
            candidates.append(Path(on_path))
        if candidates:
            found.append(str(candidates[0]))
    return found
