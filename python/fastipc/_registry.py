"""The registry of named resources fastipc created, behind ``fastipc ls`` and ``fastipc clean``.

Creating a segment, semaphore or lock (with either backend) first writes a pending entry, renamed
once the object exists into one small file
``<registry>/<kind>.<name without the slash>`` of ``key=value`` lines: kind, name, size, the
creator's pid and start time (field 22 of ``/proc/<pid>/stat`` on Linux: the guard against pid
reuse; 0 where unknown). Unlinking through fastipc removes it. The segment's bytes stay exactly
the user's: nothing is stored inside it. ``docs/shm.md`` describes the design.

``<registry>`` is ``FASTIPC_REGISTRY_DIR``, else ``$XDG_RUNTIME_DIR/fastipc/registry``, else
``/tmp/fastipc-<uid>/registry``; created 0700, and ignored unless it is a directory of this user
that nobody else can write. Recording is best effort: it never makes a creation fail.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import stat
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass

__all__ = [
    "Entry",
    "abort",
    "begin",
    "clean",
    "commit",
    "creating",
    "entries",
    "forget",
    "registry_dir",
    "start_time",
]

KINDS = ("shm", "sem", "lock")
_HEADER = "fastipc-registry 1"
#: File name prefix of a pending entry: recorded before its object is created.
_PENDING = "pending."


def registry_dir() -> str:
    explicit = os.environ.get("FASTIPC_REGISTRY_DIR")
    if explicit:
        return explicit
    run = os.environ.get("XDG_RUNTIME_DIR")
    if run:
        return os.path.join(run, "fastipc", "registry")
    uid = os.geteuid() if hasattr(os, "geteuid") else 0
    return os.path.join(tempfile.gettempdir(), f"fastipc-{uid}", "registry")


def _private(path: str) -> bool:
    with contextlib.suppress(FileExistsError):
        os.mkdir(path, 0o700)
    st = os.lstat(path)
    if not stat.S_ISDIR(st.st_mode):
        return False
    if sys.platform == "win32":
        return True
    return st.st_uid == os.geteuid() and st.st_mode & 0o022 == 0


def _prepare() -> str | None:
    path = registry_dir()
    try:
        parent = os.path.dirname(path)
        if parent and not os.path.lexists(parent) and not _private(parent):
            return None
        return path if _private(path) else None
    except OSError:
        return None


def _entry_path(directory: str, kind: str, name: str) -> str:
    return os.path.join(directory, f"{kind}.{name.lstrip('/')}")


def start_time(pid: int) -> int:
    """The process's start time in clock ticks since boot (Linux), 0 where unknown."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            text = f.read().decode("ascii", "replace")
    except OSError:
        return 0
    # The command name (field 2) may contain spaces and parentheses: count from the last ')'.
    fields = text[text.rfind(")") + 1 :].split()
    try:
        return int(fields[19])
    except (IndexError, ValueError):
        return 0


#: Set in a creator's environment, it stops (SIGSTOP) the creator between creating an object and
#: recording it for good: the test suite kills it there, the worst moment.
STOP_BEFORE_COMMIT = "FASTIPC_TEST_STOP_BEFORE_COMMIT"


def _write_entry(directory: str, final: str, kind: str, name: str, size: int) -> bool:
    """Writes an entry at ``final`` whole or not at all (a temporary file renamed over it)."""
    pid = os.getpid()
    text = f"{_HEADER}\nkind={kind}\nname={name}\nsize={size}\npid={pid}\nstart={start_time(pid)}\n"
    tmp = os.path.join(directory, f".{kind}.{pid}.{secrets.token_hex(8)}")
    try:
        fd = os.open(
            tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY | getattr(os, "O_NOFOLLOW", 0), 0o600
        )
        try:
            os.write(fd, text.encode())
        finally:
            os.close(fd)
        os.replace(tmp, final)
    except OSError:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        return False
    return True


def begin(kind: str, name: str, size: int) -> str | None:
    """Records, before it is created, that this process is creating ``name``: a pending entry
    (``pending.<pid>.<random>``), which ``ls`` lists and ``clean`` acts on if the creator dies
    before ``commit``. Returns its path (None if the registry cannot be written)."""
    directory = _prepare()
    if directory is None:
        return None
    pending = os.path.join(directory, f"{_PENDING}{os.getpid()}.{secrets.token_hex(8)}")
    return pending if _write_entry(directory, pending, kind, name, size) else None


def commit(pending: str | None, kind: str, name: str) -> None:
    """``name`` was created: its pending entry becomes its entry (one rename)."""
    if pending is None:
        return
    if os.environ.get(STOP_BEFORE_COMMIT):
        import signal

        os.kill(os.getpid(), signal.SIGSTOP)
    try:
        os.replace(pending, _entry_path(os.path.dirname(pending), kind, name))
    except OSError:
        abort(pending)


def abort(pending: str | None) -> None:
    """The creation failed: forget the pending entry."""
    if pending is not None:
        with contextlib.suppress(OSError):
            os.unlink(pending)


@contextlib.contextmanager
def creating(kind: str, name: str, size: int) -> Iterator[None]:
    """Recorded before the body creates ``name``; committed if it returns, aborted if it raises."""
    pending = begin(kind, name, size)
    try:
        yield
    except BaseException:
        abort(pending)
        raise
    commit(pending, kind, name)


def forget(kind: str, name: str) -> None:
    """Remove the entry of ``name`` after it was unlinked (best effort)."""
    with contextlib.suppress(OSError):
        os.unlink(_entry_path(registry_dir(), kind, name))


@dataclass(frozen=True)
class Entry:
    """One resource fastipc created."""

    kind: str
    name: str
    size: int
    pid: int
    start: int
    path: str

    @property
    def creator_alive(self) -> bool:
        """Whether the creating process still runs (the same process, not a reused pid)."""
        return _alive(self.pid, self.start)

    @property
    def pending(self) -> bool:
        """Recorded before creation and never committed: the creator may have died in between
        (then the object may or may not exist)."""
        return os.path.basename(self.path).startswith(_PENDING)

    @property
    def exists(self) -> bool:
        """Whether the name still exists (someone else may have unlinked it)."""
        return _exists(self.kind, self.name)

    @property
    def holds(self) -> str | None:
        """For a segment holding a fastipc ``Queue``, ``JoinableQueue`` or ``Channel`` (either
        backend's layout, read from its header): ``"queue"``, ``"joinable-queue"`` or
        ``"channel"``; ``None`` for anything else."""
        if self.kind != "shm":
            return None
        return _segment_holds(self.name)


#: The headers of the two backends' ring segments: magic, then the layout version and the kind
#: as little-endian u32 (``docs/channel.md``, ``docs/channel-fallback.md``).
_RING_KINDS = {
    b"FIPCRING": {1: "queue", 2: "joinable-queue", 3: "channel"},
    b"FIPCPYRG": {1: "queue", 2: "channel"},
}


def _segment_holds(name: str) -> str | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        fd = os.open(f"/dev/shm/{name.lstrip('/')}", os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        header = os.pread(fd, 16, 0)
    except OSError:
        return None
    finally:
        os.close(fd)
    kinds = _RING_KINDS.get(header[:8])
    if kinds is None or len(header) < 16:
        return None
    return kinds.get(int.from_bytes(header[12:16], "little"))


def _alive(pid: int, start: int) -> bool:
    if pid <= 0:
        return False
    if sys.platform == "win32":  # pragma: no cover - no registry of named objects on Windows
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    if start and os.path.isdir("/proc"):
        return start_time(pid) == start
    return True


def _exists(kind: str, name: str) -> bool:
    if sys.platform.startswith("linux"):
        prefix = "sem." if kind == "sem" else ""
        return os.path.exists(f"/dev/shm/{prefix}{name.lstrip('/')}")
    if kind == "sem":
        from ._fallback import _posixsem

        return _posixsem.exists(name)
    try:
        import _posixshmem  # type: ignore[import-not-found]
    except ImportError:  # pragma: no cover - Windows
        return False
    try:
        fd = _posixshmem.shm_open(name, os.O_RDONLY, 0)
    except FileNotFoundError:
        return False
    except OSError:
        return True
    os.close(fd)
    return True


def _parse(path: str) -> Entry | None:
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except (OSError, UnicodeDecodeError):
        return None
    if not lines or lines[0] != _HEADER:
        return None
    fields = dict(line.split("=", 1) for line in lines[1:] if "=" in line)
    try:
        kind, name = fields["kind"], fields["name"]
        size, pid, start = int(fields["size"]), int(fields["pid"]), int(fields["start"])
    except (KeyError, ValueError):
        return None
    if kind not in KINDS or not name.startswith("/"):
        return None
    return Entry(kind, name, size, pid, start, path)


def entries() -> list[Entry]:
    """Every recorded resource, sorted by kind and name."""
    directory = registry_dir()
    try:
        names = os.listdir(directory)
    except OSError:
        return []
    found = []
    for file in names:
        if file.startswith("."):
            continue
        entry = _parse(os.path.join(directory, file))
        if entry is not None:
            found.append(entry)
    return sorted(found, key=lambda e: (e.kind, e.name))


def _unlink(entry: Entry) -> None:
    if entry.kind == "sem":
        from ._fallback import _posixsem

        _posixsem.unlink(entry.name)
        return
    if sys.platform.startswith("linux"):
        os.unlink(f"/dev/shm/{entry.name.lstrip('/')}")
        return
    import _posixshmem

    _posixshmem.shm_unlink(entry.name)


def clean(dry_run: bool = False, report: Callable[[str, Entry], None] | None = None) -> list[Entry]:
    """Remove the resources whose creator is gone (and entries whose resource is gone).

    Returns the entries acted on (or that would be, with ``dry_run``); ``report(action, entry)``
    is called for each with action ``"unlink"`` or ``"forget"``.
    """
    done = []
    found = entries()
    # A dead creator's pending entry names an object that another entry may name too: one it
    # failed to create (O_EXCL) because it existed already. That object is not its to unlink.
    recorded = {(e.kind, e.name) for e in found if not e.pending}
    for entry in found:
        if entry.creator_alive:
            continue
        owned = not entry.pending or (entry.kind, entry.name) not in recorded
        action = "unlink" if owned and entry.exists else "forget"
        if not dry_run:
            # The entry may have been replaced since it was read (the name unlinked and made
            # again by a live process): act only on the very entry that was judged.
            if _parse(entry.path) != entry:
                continue
            if action == "unlink":
                try:
                    _unlink(entry)
                except FileNotFoundError:
                    pass
                except OSError as exc:
                    if exc.errno not in (errno.ENOENT,):
                        raise
            with contextlib.suppress(FileNotFoundError):
                os.unlink(entry.path)
        if report is not None:
            report(action, entry)
        done.append(entry)
    if not dry_run:
        _remove_dead_temporaries()
    return done


def _remove_dead_temporaries() -> None:
    """Removes the temporary files (``.<kind>.<pid>.<random>``) of writers that died before
    renaming them into place."""
    directory = registry_dir()
    try:
        names = os.listdir(directory)
    except OSError:
        return
    for file in names:
        parts = file.split(".")
        if len(parts) != 4 or parts[0] or parts[1] not in KINDS or not parts[2].isdigit():
            continue
        if not _alive(int(parts[2]), 0):
            with contextlib.suppress(OSError):
                os.unlink(os.path.join(directory, file))
