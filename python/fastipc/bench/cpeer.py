"""The C reference peers of ``fastipc bench``: the machine's limit for the same exchange.

``cpeer.c`` (shipped in the package, beside this module) does what the Python rows do, without
Python: 4-byte length-prefixed messages over a Unix stream socketpair to an echo side in a forked
process, timed one round trip at a time with ``clock_gettime``, then the one-way stream. It is
compiled with the system's C compiler (``$CC``, else ``cc``, ``gcc`` or ``clang``) the first time
it is needed, into a per-user cache directory (``$XDG_CACHE_HOME/fastipc``, else
``~/.cache/fastipc``), under a name that changes with the source and the compiler. Without a
compiler its rows are ``unavailable``, with the reason.

``cshm.c``, compiled the same way, gives two more limits: a message handed through shared memory
by a spinning handoff on a sequence word (``c-spin``) and by a futex handoff (``c-futex``), the
references of the shared-memory queue and channel.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import ClassVar

from .base import LIMIT, Mechanism, register

__all__ = ["SHM_SOURCE", "SOURCE", "CProgram", "ReferencePeer", "ShmFutex", "ShmSpin", "build"]

SOURCE = Path(__file__).with_name("cpeer.c")
SHM_SOURCE = Path(__file__).with_name("cshm.c")


def _compiler() -> str | None:
    cc = os.environ.get("CC")
    if cc:
        return shutil.which(cc)
    for name in ("cc", "gcc", "clang"):
        found = shutil.which(name)
        if found:
            return found
    return None


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "fastipc"


def build(source_path: Path = SOURCE) -> str:
    """The path of the compiled ``source_path`` (the reference peer by default), compiling it if
    needed; ``OSError`` (or ``RuntimeError`` with the compiler's output) if it cannot be built."""
    if not sys.platform.startswith("linux"):
        raise RuntimeError("the reference peer is written for Linux")
    cc = _compiler()
    if cc is None:
        raise RuntimeError("no C compiler (set CC, or install cc, gcc or clang)")
    source = source_path.read_bytes()
    key = hashlib.sha256(source + cc.encode()).hexdigest()[:16]
    out_dir = cache_dir()
    out_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    exe = out_dir / f"{source_path.stem}-{key}"
    if not os.access(exe, os.X_OK):
        fd, tmp = tempfile.mkstemp(prefix=f".{source_path.stem}-", dir=out_dir)
        os.close(fd)
        try:
            proc = subprocess.run(
                [cc, "-O2", "-std=c11", "-o", tmp, str(source_path)],
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
            )
            if proc.returncode != 0:
                detail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
                raise RuntimeError(f"{cc} failed: {' | '.join(detail)}")
            os.chmod(tmp, 0o700)
            os.replace(tmp, exe)  # atomic: a concurrent run sees the old file or the new one
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
    return str(exe)


class CProgram(Mechanism):
    """A mechanism that is a C program of this package, run as the client (it forks its own
    echo side); see ``_limit_command`` in :mod:`.runner` for its arguments."""

    topology = "external"
    family = "limit"
    source: ClassVar[Path] = SOURCE
    mode: ClassVar[tuple[str, ...]] = ()
    """The arguments before the size (``cshm.c``'s mode)."""

    def command(self) -> list[str]:
        """The program (built if needed) and its leading arguments."""
        return [build(self.source), *self.mode]

    def unavailable(self) -> str | None:
        if not self.source.is_file():
            return f"{self.source.name} is missing from the installed package"
        try:
            build(self.source)
        except (OSError, RuntimeError, subprocess.SubprocessError) as exc:
            return f"cannot build {self.source.name}: {exc}"
        return None


@register
class ReferencePeer(CProgram):
    name = LIMIT
    summary = "C, no Python: the same framed echo over a Unix socketpair (the machine's limit)"


@register
class ShmSpin(CProgram):
    name = "c-spin"
    summary = (
        "C, no Python: a slot in shared memory each way, a spinning handoff on a sequence word "
        "(two CPUs only)"
    )
    source = SHM_SOURCE
    mode = ("spin",)


@register
class ShmFutex(CProgram):
    name = "c-futex"
    summary = (
        "C, no Python: a slot in shared memory each way, a futex handoff (FUTEX_WAKE only to a "
        "sleeper)"
    )
    source = SHM_SOURCE
    mode = ("futex",)
