"""Signals as IPC in the fallback: a self-pipe fed by Python signal handlers, and
``kill_and_wait`` on pidfds (Linux) or probing."""

from __future__ import annotations

import contextlib
import errno
import os
import select
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable
from types import FrameType
from typing import Any

from .._errors import NotSupportedError
from .._records import SignalInfo, make_signal_info
from ._closing import Closing, closed_error
from ._waits import backoff, deadline_of, run_fd, timed_out

__all__ = ["SignalReceiver", "kill_and_wait"]

_Handler = Callable[[int, FrameType | None], Any] | int | signal.Handlers | None


class SignalReceiver(Closing):
    """A pollable receiver of chosen signals: Python handlers write each signal's number into a
    pipe whose reading end is the descriptor. Must be created (and closed) in the main thread;
    it replaces the handlers of those signals until closed. Sender pid and uid are unknown
    (None)."""

    def __init__(self, signals: Iterable[int]) -> None:
        self._r = self._w = -1
        if sys.platform == "win32":
            raise NotSupportedError("signals as IPC do not exist on Windows")
        numbers = sorted({int(s) for s in signals})
        if not numbers:
            raise ValueError("no signals given")
        for s in numbers:
            if s in (signal.SIGKILL, signal.SIGSTOP):
                raise ValueError(f"signal {s} (SIGKILL or SIGSTOP) cannot be caught")
        if threading.current_thread() is not threading.main_thread():
            raise ValueError("the fallback SignalReceiver must be created in the main thread")
        self._signals = numbers
        self._r, self._w = os.pipe()
        for fd in (self._r, self._w):
            os.set_blocking(fd, False)
        self._previous: dict[int, _Handler] = {}
        try:
            for s in numbers:
                self._previous[s] = signal.signal(s, self._handler)
        except BaseException:
            self.close()
            raise

    def _handler(self, signo: int, frame: FrameType | None) -> None:
        with contextlib.suppress(OSError):
            os.write(self._w, bytes([signo & 0xFF]))

    @property
    def signals(self) -> list[int]:
        return list(self._signals)

    @property
    def closed(self) -> bool:
        return self._r < 0

    def _check(self) -> int:
        if self._r < 0:
            raise closed_error("signal receiver")
        return self._r

    def receive(self, timeout: float | None = None) -> SignalInfo:
        fd = self._check()
        data = run_fd(
            fd, select.POLLIN, deadline_of(timeout), "signal receiver", lambda: os.read(fd, 1)
        )
        return make_signal_info(data[0], None, None, None, None)

    def drain(self) -> list[SignalInfo]:
        fd = self._check()
        out: list[SignalInfo] = []
        while True:
            try:
                data = os.read(fd, 4096)
            except BlockingIOError:
                return out
            out.extend(make_signal_info(b, None, None, None, None) for b in data)

    def fileno(self) -> int:
        return self._check()

    def close(self) -> None:
        for s, handler in getattr(self, "_previous", {}).items():
            with contextlib.suppress(ValueError, OSError, TypeError):
                signal.signal(s, handler if handler is not None else signal.SIG_DFL)
        self._previous = {}
        for attr in ("_r", "_w"):
            fd = getattr(self, attr, -1)
            setattr(self, attr, -1)
            if fd >= 0:
                os.close(fd)

    def __repr__(self) -> str:
        if self._r < 0:
            return f"<fastipc.SignalReceiver signals={self._signals} closed>"
        return f"<fastipc.SignalReceiver signals={self._signals} fd={self._r}>"


def _exited(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        pass
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return False


def kill_and_wait(
    pid: int, sig: int = signal.SIGTERM, *, timeout: float | None = None, group: bool = False
) -> None:
    """Sends ``sig`` to process ``pid`` (or process group ``pid``) and waits until it has exited
    (a zombie counts; it is not reaped). TimeoutError at the deadline; signal 0 only waits."""
    if sys.platform == "win32":
        raise NotSupportedError("kill_and_wait needs POSIX signals")
    if pid <= 0:
        raise ValueError(f"pid must be a positive process id, not {pid}")
    what = f"process group {pid}" if group else f"process {pid}"
    deadline = deadline_of(timeout)
    pidfd = _open_pidfd(pid, group, what)
    try:
        _send_signal(pid, sig, pidfd, group, what)
        if pidfd >= 0:
            _wait_pidfd(pidfd, deadline, what)
        else:
            backoff(deadline, what, lambda: True if _exited(pid) else None, first=1e-4, cap=0.01)
    finally:
        if pidfd >= 0:
            os.close(pidfd)


def _open_pidfd(pid: int, group: bool, what: str) -> int:
    """A pidfd of ``pid``, or -1 where there is none (no ``pidfd_open``, or no such process
    while waiting for a group). ``ProcessLookupError`` for a missing process."""
    if not hasattr(os, "pidfd_open"):
        return -1
    try:
        return os.pidfd_open(pid)
    except ProcessLookupError:
        if not group:
            raise ProcessLookupError(errno.ESRCH, os.strerror(errno.ESRCH), what) from None
    except OSError:
        pass
    return -1


def _send_signal(pid: int, sig: int, pidfd: int, group: bool, what: str) -> None:
    """Sends ``sig`` (through the pidfd when there is one); signal 0 checks the process exists
    where no pidfd did."""
    try:
        if sig != 0:
            if group:
                os.killpg(pid, sig)
            elif pidfd >= 0:
                signal.pidfd_send_signal(pidfd, sig)
            else:
                os.kill(pid, sig)
        elif pidfd < 0 and not group:
            os.kill(pid, 0)
    except OSError as exc:
        raise OSError(exc.errno, exc.strerror, what) from None


def _wait_pidfd(pidfd: int, deadline: float | None, what: str) -> None:
    """Waits until the pidfd is readable (the process has exited), in slices."""
    poller = select.poll()
    poller.register(pidfd, select.POLLIN)
    while True:
        step = 0.05 if deadline is None else min(0.05, deadline - time.monotonic())
        if step <= 0:
            raise timed_out(what)
        if poller.poll(step * 1000):
            return
