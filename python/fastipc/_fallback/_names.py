"""Names of segments and semaphores: POSIX form, generated names (as in the Rust core)."""

from __future__ import annotations

import secrets
import sys

__all__ = ["MAX_NAME", "PREFIX", "generated", "posix_name"]

PREFIX = "/fastipc-"
#: Longest name after the slash: 30 bytes on macOS (31 with it), 250 elsewhere.
MAX_NAME = 30 if sys.platform == "darwin" else 250

_NOUNS = {"shm": "shared memory name", "sem": "semaphore name", "lock": "lock name"}


def posix_name(name: str, kind: str) -> str:
    """``name`` with exactly one leading slash; ``ValueError`` naming the problem otherwise."""
    if not isinstance(name, str):
        raise TypeError(f"a {_NOUNS[kind]} is a str, not {type(name).__name__}")
    bare = name[1:] if name.startswith("/") else name

    def bad(why: str) -> ValueError:
        return ValueError(f"invalid {_NOUNS[kind]} {name!r}: {why}")

    if not bare:
        raise bad("it is empty")
    if "/" in bare:
        raise bad("only the leading character may be a slash")
    if "\0" in bare:
        raise bad("it contains a NUL byte")
    if bare in (".", ".."):
        raise bad("it is a directory name")
    if len(bare.encode()) > MAX_NAME:
        raise bad(f"longer than {MAX_NAME} bytes after the slash")
    return "/" + bare


def generated() -> str:
    """A fresh ``/fastipc-<16 hex digits>`` name."""
    return PREFIX + secrets.token_hex(8)
