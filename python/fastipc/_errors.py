"""Exception and warning classes shared by both backends.

They live in pure Python so that the Rust extension and the fallback raise the very same classes:
the extension imports this module when it loads.
"""

from __future__ import annotations

import multiprocessing
import pickle

__all__ = [
    "AuthenticationError",
    "BufferTooShort",
    "IPCError",
    "MessageTooLarge",
    "NotSupportedError",
    "SharedSocketDirWarning",
    "TruncatedMessage",
    "UnpicklingError",
]


class IPCError(Exception):
    """Base class of every condition that fastipc itself reports.

    OS failures are not wrapped: they arrive as the builtin ``OSError`` subclass for their errno
    (``ConnectionRefusedError``, ``FileNotFoundError``, ``PermissionError`` ...) with ``.errno`` and
    ``.filename`` set to the address or path involved.
    """


class MessageTooLarge(IPCError, ValueError):
    """A message is larger than the limit (``max_message``, ``maxlength``, or what the kernel
    accepts as one packet). On receive it is raised after reading only the length prefix: nothing
    is allocated, and a stream connection is closed because it cannot be resynchronised (a
    seqpacket connection drops that one packet and stays open)."""


class TruncatedMessage(IPCError, EOFError):
    """The peer closed the connection in the middle of a message (or of a ``recv_exact``).

    It is an ``EOFError`` as in ``multiprocessing``; ``expected`` and ``received`` say how many
    bytes were due and how many arrived."""

    def __init__(self, message: str, expected: int = 0, received: int = 0) -> None:
        super().__init__(message)
        self.expected = expected
        self.received = received


class BufferTooShort(IPCError, multiprocessing.BufferTooShort):
    """``recv_bytes_into`` was given a buffer too small for the message.

    As in ``multiprocessing``, ``args[0]`` holds the whole message as ``bytes``: nothing is lost.
    """


class AuthenticationError(IPCError, multiprocessing.AuthenticationError):
    """The authentication handshake of ``authkey`` failed: the peer holds another key, none, or
    does not speak the challenge/response of ``multiprocessing.connection``.

    Raised by ``connect(..., authkey=...)`` on the client; a listener with an ``authkey`` drops
    such a peer, counts it in ``refused`` and goes on accepting. It is a
    ``multiprocessing.AuthenticationError``, so code written for the standard library catches it.
    """


class UnpicklingError(IPCError, pickle.UnpicklingError):
    """``recv()`` received a message that does not unpickle (garbage, a truncated pickle, a class
    this process does not have, an object whose ``__setstate__`` raised ...). The message is
    consumed and the connection stays usable; the original exception is ``__cause__``."""


class NotSupportedError(IPCError, NotImplementedError):
    """The operation does not exist for this kind of socket, address or platform
    (for example seqpacket over TCP, or Unix socket paths on Windows)."""


class SharedSocketDirWarning(UserWarning):
    """The socket directory was explicitly set to a shared sticky directory such as ``/tmp``.

    That is allowed, because it lets programs written to the Secure Programming Cookbook's recipe
    9.7 meet fastipc, but the sockets there are reachable by every local user: interoperable, not
    private."""
