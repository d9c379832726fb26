"""``fastipc ls`` and ``fastipc clean``: the registry of named resources fastipc created."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from fastipc import _registry

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc, /dev/shm")


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "fastipc", *args],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )


def by_name(name: str) -> _registry.Entry | None:
    return next((e for e in _registry.entries() if e.name == name), None)


def test_creation_is_recorded_and_unlink_forgets(backend, names, registry_dir):
    name = names()
    s = backend.SharedMemory(name, create=True, size=1234)
    sem = backend.Semaphore(names(), create=True)
    try:
        entry = by_name(name)
        assert entry is not None
        assert (entry.kind, entry.size, entry.pid) == ("shm", 1234, os.getpid())
        assert entry.start == _registry.start_time(os.getpid()) > 0
        assert entry.creator_alive and entry.exists
        assert os.path.dirname(entry.path) == registry_dir
        assert oct(os.stat(entry.path).st_mode & 0o777) == oct(0o600)
        assert by_name(sem.name).kind == "sem"
        # opening records nothing
        before = len(_registry.entries())
        backend.SharedMemory(name).close()
        assert len(_registry.entries()) == before
    finally:
        s.close()
        s.unlink()
        sem.close()
        sem.unlink()
    assert by_name(name) is None and by_name(sem.name) is None


def test_clean_removes_what_dead_creators_left(backend, backend_name, names, spawn):
    shm_name, sem_name, lock_name = names(), names(), names()
    child = spawn(
        """
        s = fastipc.SharedMemory(ARGS["shm"], create=True, size=4096)
        s.close()
        fastipc.Semaphore(ARGS["sem"], create=True).close()
        if fastipc.BACKEND == "rust":
            fastipc.Lock(ARGS["lock"], create=True).close()
        report(done=True)
        """,
        args={"shm": shm_name, "sem": sem_name, "lock": lock_name},
    )
    child.expect("done")
    child.finish()
    made = [shm_name, sem_name] + ([lock_name] if backend_name == "rust" else [])
    listing = run_cli("ls", "--json")
    assert listing.returncode == 0, listing.stderr
    rows = {r["name"]: r for r in map(json.loads, listing.stdout.splitlines())}
    for name in made:
        assert rows[name]["creator_alive"] is False and rows[name]["exists"] is True
    table = run_cli("ls").stdout
    assert shm_name in table and "gone" in table

    dry = run_cli("clean", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    for name in made:
        assert "would remove" in dry.stdout and name in dry.stdout
    assert os.path.exists("/dev/shm" + shm_name), "--dry-run removed something"

    done = run_cli("clean")
    assert done.returncode == 0, done.stderr
    assert not os.path.exists("/dev/shm" + shm_name)
    assert not os.path.exists("/dev/shm/sem." + sem_name[1:])
    assert not os.path.exists("/dev/shm" + lock_name)
    assert all(by_name(n) is None for n in made)
    assert run_cli("clean").stdout.strip() == "nothing to clean"


def test_ls_names_queues_and_channels_and_clean_removes_them(backend, names, spawn):
    """A named Queue, JoinableQueue and Channel are shared memory segments in the registry:
    ``fastipc ls`` reads their headers and says what each holds, and ``clean`` removes them once
    their creator is gone, as any segment."""
    queue_name, joinable_name, channel_name, plain_name = names(), names(), names(), names()
    child = spawn(
        """
        fastipc.Queue(name=ARGS["queue"]).close()
        fastipc.JoinableQueue(name=ARGS["joinable"]).close()
        fastipc.Channel.create(ARGS["channel"]).close()
        fastipc.SharedMemory(ARGS["plain"], create=True, size=4096).close()
        report(done=True)
        """,
        args={
            "queue": queue_name,
            "joinable": joinable_name,
            "channel": channel_name,
            "plain": plain_name,
        },
    )
    child.expect("done")
    child.finish()
    listing = run_cli("ls", "--json")
    assert listing.returncode == 0, listing.stderr
    rows = {r["name"]: r for r in map(json.loads, listing.stdout.splitlines())}
    # The fallback's layout has no joinable kind of its own: its JoinableQueue is a queue.
    joinable = "joinable-queue" if backend.BACKEND == "rust" else "queue"
    assert {n: (rows[n]["kind"], rows[n]["holds"]) for n in (queue_name, joinable_name)} == {
        queue_name: ("shm", "queue"),
        joinable_name: ("shm", joinable),
    }
    assert (rows[channel_name]["kind"], rows[channel_name]["holds"]) == ("shm", "channel")
    assert rows[plain_name]["holds"] is None
    table = {line.split()[1]: line.split()[0] for line in run_cli("ls").stdout.splitlines()[1:]}
    shown = (table[queue_name], table[channel_name], table[plain_name])
    assert shown == ("queue", "channel", "shm")
    done = run_cli("clean")
    assert done.returncode == 0, done.stderr
    for name in (queue_name, joinable_name, channel_name, plain_name):
        assert not os.path.exists("/dev/shm" + name)
        assert by_name(name) is None


def test_live_creators_are_left_alone(backend, names):
    s = backend.SharedMemory(names(), create=True, size=10)
    try:
        assert s.name not in run_cli("clean").stdout
        assert os.path.exists("/dev/shm" + s.name)
    finally:
        s.close()
        s.unlink()


def test_a_reused_pid_does_not_count_as_the_creator(backend, names):
    """An entry whose pid is alive but whose start time differs belongs to a dead process."""
    s = backend.SharedMemory(names(), create=True, size=10)
    try:
        entry = by_name(s.name)
        assert entry is not None
        with open(entry.path) as f:
            text = f.read()
        forged = text.replace(f"start={entry.start}", f"start={entry.start + 1}")
        with open(entry.path, "w") as f:
            f.write(forged)
        stale = by_name(s.name)
        assert stale.pid == os.getpid() and not stale.creator_alive
        out = run_cli("clean").stdout
        assert f"removed shm {s.name}" in out
        assert not os.path.exists("/dev/shm" + s.name)
    finally:
        s.close()
        if os.path.exists("/dev/shm" + s.name):
            s.unlink()


def test_entries_of_resources_removed_elsewhere_are_forgotten(backend, names, spawn):
    name = names()
    child = spawn(
        """
        fastipc.SharedMemory(ARGS["name"], create=True, size=10).close()
        report(done=True)
        """,
        args={"name": name},
    )
    child.expect("done")
    child.finish()
    os.unlink("/dev/shm" + name)  # removed behind fastipc's back
    assert by_name(name).exists is False
    assert f"forgot shm {name}" in run_cli("clean").stdout
    assert by_name(name) is None


def test_unusable_registry_never_fails_a_creation(backend, names, monkeypatch, tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o777)
    os.chmod(shared, 0o777)  # writable by others: refused as a registry
    monkeypatch.setenv("FASTIPC_REGISTRY_DIR", str(shared))
    s = backend.SharedMemory(names(), create=True, size=10)
    try:
        assert os.listdir(shared) == []
    finally:
        s.close()
        s.unlink()
