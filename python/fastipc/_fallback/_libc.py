"""The C library through ctypes, for the fallback modules that call it (POSIX semaphores, message
queues), and the C structures they share. Loaded once, with ``use_errno=True`` so that
``ctypes.get_errno()`` reads the errno of the last call; POSIX only."""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os
import time

__all__ = ["Timespec", "errno_error", "load", "realtime_after"]


class Timespec(ctypes.Structure):
    """``struct timespec``: ``time_t`` and ``long`` are both a C ``long`` on the LP64 and ILP32
    Unix ABIs the fallback's ctypes calls run on."""

    _fields_ = (("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long))


def realtime_after(seconds: float) -> Timespec:
    """``CLOCK_REALTIME`` now plus ``seconds``, the absolute time ``sem_timedwait`` and
    ``mq_timed*`` take; ``seconds <= 0`` gives a time already passed (try once)."""
    if seconds <= 0:
        return Timespec(0, 0)
    at = time.time() + seconds
    sec = int(at)
    return Timespec(sec, int((at - sec) * 1e9))


@functools.cache
def _process() -> ctypes.CDLL:
    """The symbols of the running process, which include the C library Python runs on."""
    return ctypes.CDLL(None, use_errno=True)


@functools.cache
def _named(name: str) -> ctypes.CDLL:
    return ctypes.CDLL(ctypes.util.find_library(name) or f"lib{name}.so", use_errno=True)


def load(symbol: str, old_home: str) -> ctypes.CDLL:
    """The C library, which holds ``symbol``; with a glibc before 2.34, ``lib<old_home>``
    (``pthread`` for ``sem_*``, ``rt`` for ``mq_*``), where ``symbol`` lived then.

    One object per library, shared by its callers: each sets ``argtypes`` and ``restype`` of
    its own functions only."""
    lib = _process()
    if hasattr(lib, symbol):
        return lib
    return _named(old_home)


def errno_error(what: str, msg: str | None = None) -> OSError:
    """``OSError`` from the errno of the last ctypes call, naming ``what`` (Python picks the
    subclass for the errno)."""
    code = ctypes.get_errno()
    return OSError(code, msg or os.strerror(code), what)
