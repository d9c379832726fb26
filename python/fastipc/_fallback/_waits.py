"""Sliced waits for the classic mechanisms of the fallback: poll a descriptor, or retry with
backoff, in slices of at most 50 ms. Python's own signal handling runs between slices (PEP 475
retries the interrupted call after running the handlers), so Ctrl-C raises KeyboardInterrupt."""

from __future__ import annotations

import errno
import math
import select
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

SLICE = 0.05


def check_timeout(timeout: float | None) -> float | None:
    if timeout is None:
        return None
    if isinstance(timeout, bool) or not isinstance(timeout, int | float):
        raise TypeError(
            f"timeout must be None or a number of seconds, not {type(timeout).__name__}"
        )
    if math.isnan(timeout) or timeout < 0:
        raise ValueError(f"timeout must be None or a non-negative number of seconds, not {timeout}")
    return None if timeout > 1e12 else float(timeout)


def deadline_of(timeout: float | None) -> float | None:
    timeout = check_timeout(timeout)
    return None if timeout is None else time.monotonic() + timeout


def timed_out(what: str) -> TimeoutError:
    return TimeoutError(errno.ETIMEDOUT, "timed out", what)


def wait_fd(fd: int, events: int, deadline: float | None, what: str) -> None:
    """Waits until ``fd`` has ``events`` (POLLIN/POLLOUT); TimeoutError at the deadline."""
    poller = select.poll()
    poller.register(fd, events)
    while True:
        if deadline is None:
            step = SLICE
        else:
            left = deadline - time.monotonic()
            if left <= 0:
                raise timed_out(what)
            step = min(left, SLICE)
        if poller.poll(step * 1000):
            return


def run_fd(fd: int, events: int, deadline: float | None, what: str, op: Callable[[], T]) -> T:
    """Tries ``op`` (a non-blocking call), waiting on ``fd`` while it raises BlockingIOError."""
    while True:
        try:
            return op()
        except BlockingIOError:
            if deadline is not None and deadline - time.monotonic() <= 0:
                raise timed_out(what) from None
        wait_fd(fd, events, deadline, what)


def backoff(
    deadline: float | None,
    what: str,
    attempt: Callable[[], T | None],
    first: float = 20e-6,
    cap: float = 0.002,
) -> T:
    """Retries ``attempt`` (None: not yet) with exponential backoff up to ``cap``."""
    delay = first
    while True:
        value = attempt()
        if value is not None:
            return value
        if deadline is None:
            nap = delay
        else:
            left = deadline - time.monotonic()
            if left <= 0:
                raise timed_out(what)
            nap = min(left, delay)
        time.sleep(nap)
        delay = min(delay * 2, cap)


def read_proc_number(path: str) -> int | None:
    try:
        with open(path) as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return None
