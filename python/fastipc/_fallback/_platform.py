"""Platform decisions and small helpers shared by the fallback modules.

Whether loopback addresses are remapped to Unix sockets or served over TCP loopback is decided
here and nowhere else: :func:`tcp_loopback` reads the module flag ``WINDOWS``, which a test may
set to ``True`` to exercise the Windows code paths on a Unix machine.
"""

from __future__ import annotations

import contextlib
import errno
import math
import os
import select
import socket
import struct
import sys
import time

__all__ = [
    "LINUX",
    "MSG_NOSIGNAL",
    "SLICE",
    "SUN_PATH_MAX",
    "WINDOWS",
    "abstract_supported",
    "check_timeout",
    "deadline_for",
    "nosigpipe",
    "oserror",
    "poll_hup",
    "remaining",
    "slice_blocking_calls",
    "tcp_loopback",
    "timeout_error",
    "wait_fd",
]

#: True on Windows. Tests may monkeypatch it to force the TCP-loopback code paths.
WINDOWS: bool = sys.platform == "win32"
LINUX: bool = sys.platform.startswith("linux")

#: Size of ``sockaddr_un.sun_path``, including the terminating NUL.
SUN_PATH_MAX: int = 108 if LINUX or sys.platform.startswith(("cygwin", "sunos")) else 104

MSG_NOSIGNAL: int = getattr(socket, "MSG_NOSIGNAL", 0)
_SO_NOSIGPIPE: int | None = getattr(socket, "SO_NOSIGPIPE", None)
if _SO_NOSIGPIPE is None and (sys.platform == "darwin" or "bsd" in sys.platform):
    _SO_NOSIGPIPE = 0x1022


#: Longest uninterrupted wait of a blocking operation: the bound on how late a close from another
#: thread is noticed (as in the Rust backend).
SLICE = 0.05
_SLICE_TIMEVAL = struct.pack("@ll", 0, int(SLICE * 1e6))


def slice_blocking_calls(sock: socket.socket) -> None:
    """``SO_RCVTIMEO``/``SO_SNDTIMEO`` of one slice: a blocking call on ``sock`` returns
    (``BlockingIOError``) after at most :data:`SLICE`, so that its caller's loop can see that
    the object was closed meanwhile."""
    if WINDOWS:
        return
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, _SLICE_TIMEVAL)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, _SLICE_TIMEVAL)


#: Kernel send buffer asked for on Unix sockets, as the Rust backend does (``KERNEL_BUFFER`` in
#: ``src/socket/options.rs``, with the measurements): a packet must fit the sender's buffer, so
#: seqpacket and datagram sockets need it to carry large packets at all.
KERNEL_BUFFER = 4 * 1024 * 1024
_SO_SNDBUFFORCE: int = getattr(socket, "SO_SNDBUFFORCE", 32)


def size_buffers(sock: socket.socket) -> None:
    """Ask for :data:`KERNEL_BUFFER`-sized send buffers on a Unix socket: the privileged form
    first (Linux), then the plain one, capped by ``net.core.wmem_max``. Best effort."""
    if WINDOWS or sock.family != getattr(socket, "AF_UNIX", None):
        return
    if LINUX:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, _SO_SNDBUFFORCE, KERNEL_BUFFER)
            return
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, KERNEL_BUFFER)


def tcp_loopback() -> bool:
    """Whether remapped loopback addresses are TCP loopback (Windows) or Unix sockets."""
    return WINDOWS


def abstract_supported() -> bool:
    return LINUX and not WINDOWS


def nosigpipe(sock: socket.socket) -> None:
    """Ask the kernel not to raise SIGPIPE for this socket where ``MSG_NOSIGNAL`` is missing."""
    if _SO_NOSIGPIPE is not None and not WINDOWS:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, _SO_NOSIGPIPE, 1)


def oserror(code: int | None, filename: str | None) -> OSError:
    """``OSError(code, strerror, filename)``: Python picks the subclass for the errno."""
    if code is None:
        code = errno.EIO
    return OSError(code, os.strerror(code), filename)


def timeout_error(filename: str | None) -> TimeoutError:
    return TimeoutError(errno.ETIMEDOUT, "timed out", filename)


def check_timeout(timeout: float | None) -> float | None:
    if timeout is None:
        return None
    value = float(timeout)
    if math.isnan(value):
        raise ValueError("timeout must be a number")
    if value < 0:
        raise ValueError("timeout must be non-negative or None")
    return value


def deadline_for(timeout: float | None) -> float | None:
    return None if timeout is None else time.monotonic() + timeout


def remaining(deadline: float | None, filename: str | None) -> float | None:
    """Seconds left until ``deadline`` (``None``: forever); ``TimeoutError`` once it has passed."""
    if deadline is None:
        return None
    left = deadline - time.monotonic()
    if left <= 0:
        raise timeout_error(filename)
    return left


if hasattr(select, "poll"):
    _POLLIN = select.POLLIN
    _POLLOUT = select.POLLOUT

    def wait_fd(fd: int, write: bool, timeout: float | None) -> bool:
        """Wait until ``fd`` is readable (or writable); False if ``timeout`` expired first.

        ``poll`` is restarted after a signal whose handler returned (PEP 475), and a handler that
        raises (Ctrl-C) interrupts the wait."""
        poller = select.poll()
        poller.register(fd, _POLLOUT if write else _POLLIN)
        ms = None if timeout is None else max(0, math.ceil(timeout * 1000))
        return bool(poller.poll(ms))

    def poll_hup(fd: int) -> bool:
        """Whether the peer has hung up (used to tell end of file from an empty packet)."""
        poller = select.poll()
        poller.register(fd, _POLLIN)
        return any(ev & select.POLLHUP for _, ev in poller.poll(0))

else:  # pragma: no cover - Windows

    def wait_fd(fd: int, write: bool, timeout: float | None) -> bool:
        # Windows has no poll(); wait in slices so that Ctrl-C is seen promptly.
        deadline = deadline_for(timeout)
        while True:
            left = 0.05 if deadline is None else min(0.05, max(0.0, deadline - time.monotonic()))
            if write:
                _, ready, err = select.select([], [fd], [fd], left)
            else:
                ready, _, err = select.select([fd], [], [fd], left)
            if ready or err:
                return True
            if deadline is not None and time.monotonic() >= deadline:
                return False

    def poll_hup(fd: int) -> bool:
        return False
