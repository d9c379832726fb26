"""Small result records shared by both backends (the Rust extension builds these very classes)."""

from __future__ import annotations

import signal
from typing import Any, NamedTuple, NoReturn

__all__ = ["LockHolder", "SignalInfo", "make_signal_info", "unsupported"]


class LockHolder(NamedTuple):
    """A lock held by someone else that conflicts with a :class:`FileLock` (``F_GETLK``).

    ``pid`` is the holder's process id for a classic POSIX lock, and ``-1`` for an
    open-file-description lock (the kernel does not know one owner process for those).
    ``length`` 0 means "to the end of the file"."""

    pid: int
    start: int
    length: int
    shared: bool


class SignalInfo(NamedTuple):
    """One signal taken from a :class:`SignalReceiver`.

    ``pid`` and ``uid`` are the sender's (0 for the kernel); ``code`` is ``si_code``; ``status``
    the exit status or signal of a ``SIGCHLD``. The fallback backend, which sees signals through
    Python handlers, reports ``None`` for what it cannot know."""

    signal: signal.Signals | int
    pid: int | None
    uid: int | None
    code: int | None
    status: int | None


def make_signal_info(
    signo: int, pid: int | None, uid: int | None, code: int | None, status: int | None
) -> SignalInfo:
    try:
        sig: signal.Signals | int = signal.Signals(signo)
    except ValueError:
        sig = signo
    return SignalInfo(sig, pid, uid, code, status)


def unsupported(name: str, why: str) -> Any:
    """A stand-in for a class or function this platform lacks: calling it raises
    ``NotSupportedError`` with ``why``, while ``import fastipc`` keeps working."""
    from ._errors import NotSupportedError

    def missing(*args: object, **kwargs: object) -> NoReturn:
        raise NotSupportedError(f"{name}: {why}")

    missing.__name__ = missing.__qualname__ = name
    return missing
