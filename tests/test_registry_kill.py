"""A creator killed (SIGKILL) between creating a named object and recording it for good: the
object is never one that ``fastipc ls`` / ``clean`` cannot see."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest
from fastipc import _registry

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc, /dev/shm")

CREATOR = """
kind = ARGS["kind"]
if kind == "shm":
    fastipc.SharedMemory(ARGS["name"], create=True, size=4096)
elif kind == "sem":
    fastipc.Semaphore(ARGS["name"], create=True)
else:
    fastipc.Lock(ARGS["name"], create=True)
report(created=True)
"""


def _run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "fastipc", *args],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )


def _dev_shm(kind: str, name: str) -> str:
    return "/dev/shm/" + ("sem." if kind == "sem" else "") + name.lstrip("/")


def _entries_named(name: str) -> list[_registry.Entry]:
    return [e for e in _registry.entries() if e.name == name]


def _killed_at_the_worst_moment(spawn, kind: str, name: str) -> int:
    """Starts a creator that stops itself once the object exists and before its entry is
    committed (the hook's SIGSTOP), waits for that stop, and kills it there. Its pid."""
    child = spawn(
        CREATOR,
        args={"kind": kind, "name": name},
        env={_registry.STOP_BEFORE_COMMIT: "1"},
    )
    _, status = os.waitpid(child.pid, os.WUNTRACED)
    assert os.WIFSTOPPED(status) and os.WSTOPSIG(status) == signal.SIGSTOP
    assert os.path.exists(_dev_shm(kind, name)), "stopped before the object was created"
    os.kill(child.pid, signal.SIGKILL)
    assert child.proc.wait(timeout=10) == -signal.SIGKILL
    return child.pid


@pytest.mark.parametrize("kind", ["shm", "sem", "lock"])
def test_a_creator_killed_before_commit_leaves_an_entry_clean_acts_on(
    backend, backend_name, names, spawn, kind
):
    if kind == "lock" and backend_name == "python":
        pytest.skip("the fallback's Lock raises NotSupportedError")
    name = names()
    pid = _killed_at_the_worst_moment(spawn, kind, name)
    [entry] = _entries_named(name)
    assert (entry.kind, entry.pid, entry.pending) == (kind, pid, True)
    assert entry.creator_alive is False
    assert entry.exists is True

    listing = _run_cli("ls", "--json")
    assert listing.returncode == 0, listing.stderr
    rows = [r for r in map(json.loads, listing.stdout.splitlines()) if r["name"] == name]
    assert [(r["creator_alive"], r["exists"]) for r in rows] == [(False, True)]

    done = _run_cli("clean")
    assert done.returncode == 0, done.stderr
    assert name in done.stdout
    assert not os.path.exists(_dev_shm(kind, name))
    assert _entries_named(name) == []


def test_a_pending_entry_does_not_unlink_an_object_another_entry_records(backend, names, spawn):
    # A creator that died before its O_EXCL failed left a pending entry for a name another
    # (live) process had created and recorded: clean forgets the pending entry only.
    name = names()
    seg = backend.SharedMemory(name, create=True, size=64)
    try:
        directory = _registry.registry_dir()
        dead = _killed_at_the_worst_moment(spawn, "shm", names())
        clean_first = _run_cli("clean")
        assert clean_first.returncode == 0, clean_first.stderr
        fake = os.path.join(directory, f"pending.{dead}.0123456789abcdef")
        with open(fake, "w") as f:
            f.write(f"fastipc-registry 1\nkind=shm\nname={name}\nsize=64\npid={dead}\nstart=0\n")
        assert sorted(e.pending for e in _entries_named(name)) == [False, True]
        done = _run_cli("clean")
        assert done.returncode == 0, done.stderr
        assert os.path.exists(_dev_shm("shm", name))
        assert not os.path.exists(fake)
        assert [e.pending for e in _entries_named(name)] == [False]
    finally:
        seg.close()
        seg.unlink()


def test_clean_removes_temporary_files_of_dead_writers(backend, names, spawn):
    directory = _registry.registry_dir()
    dead = _killed_at_the_worst_moment(spawn, "shm", names())
    dead_tmp = os.path.join(directory, f".shm.{dead}.00112233aabbccdd")
    live_tmp = os.path.join(directory, f".shm.{os.getpid()}.00112233aabbccdd")
    for path in (dead_tmp, live_tmp):
        with open(path, "w") as f:
            f.write("fastipc-registry 1\nkind=shm\n")
    try:
        done = _run_cli("clean")
        assert done.returncode == 0, done.stderr
        assert not os.path.exists(dead_tmp)
        assert os.path.exists(live_tmp)
    finally:
        os.unlink(live_tmp)
