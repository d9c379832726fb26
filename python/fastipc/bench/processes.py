"""The child processes of ``fastipc bench``, seen from the process that runs it.

Every child is a ``python -m fastipc.bench.peer`` (:mod:`.peer`) or the C reference peer, run in
its own session (Ctrl-C reaches only the parent, which then kills them), exiting when its stdin
closes (so it dies with the parent, however that one ends), with its socket files in one private
temporary directory that is removed at the end.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator, Sequence
from typing import IO, Any

__all__ = [
    "BenchError",
    "Peer",
    "PeerGroup",
    "child_environment",
    "echo_server",
    "private_socket_dir",
    "probe",
]

READY_TIMEOUT = 30.0
EXIT_TIMEOUT = 10.0


class BenchError(Exception):
    """The benchmark cannot run at all (as opposed to one cell failing)."""


def child_environment(backend: str | None, socket_dir: str) -> dict[str, str]:
    """The environment of a peer: this fastipc first on the path, the chosen backend."""
    env = dict(os.environ)
    # this file is <parent>/fastipc/bench/processes.py
    package_parent = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    path = env.get("PYTHONPATH")
    env["PYTHONPATH"] = package_parent + (os.pathsep + path if path else "")
    env["FASTIPC_SOCKET_DIR"] = socket_dir
    if backend is not None:
        env["FASTIPC_BACKEND"] = backend
    return env


class Peer:
    """One ``python -m fastipc.bench.peer`` process in its own session."""

    def __init__(self, argv: list[str], env: dict[str, str]) -> None:
        self._stderr: IO[bytes] = tempfile.TemporaryFile()  # noqa: SIM115 (closed in _cleanup)
        self.events: queue.Queue[dict[str, Any] | None] = queue.Queue()
        try:
            self.proc = subprocess.Popen(
                argv,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=self._stderr,
                env=env,
                start_new_session=sys.platform != "win32",
            )
        except BaseException:
            self._stderr.close()
            raise
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with contextlib.suppress(ValueError):
                self.events.put(json.loads(line))
        self.events.put(None)

    def event(self, timeout: float) -> dict[str, Any]:
        """The next event; an error event if the process ended or the time ran out."""
        try:
            event = self.events.get(timeout=timeout)
        except queue.Empty:
            return {"event": "error", "message": f"no answer within {timeout:g} s"}
        if event is None:
            self.events.put(None)
            try:
                self.proc.wait(EXIT_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.kill()
            return {"event": "error", "message": self._died()}
        return event

    def _died(self) -> str:
        if self._stderr.closed:
            return f"peer exited with status {self.proc.returncode}"
        self._stderr.seek(0)
        tail = self._stderr.read().decode("utf-8", "replace").strip().splitlines()[-5:]
        detail = " | ".join(tail) if tail else "no output"
        return f"peer exited with status {self.proc.returncode}: {detail}"

    def finish(self, timeout: float = EXIT_TIMEOUT) -> None:
        """Let the process end by itself within ``timeout``, else kill its process group."""
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
        self._cleanup()

    def kill(self) -> None:
        """Kill the process and everything it forked (their group), and reap it."""
        if self.proc.returncode is None:
            # Not reaped yet, so its pid, and the group id it leads, cannot have been reused.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                if sys.platform != "win32":
                    os.killpg(self.proc.pid, signal.SIGKILL)
                else:
                    self.proc.kill()
            self.proc.wait()
        self._cleanup()

    def _cleanup(self) -> None:
        if self._stderr.closed:
            return
        if self.proc.stdin is not None:
            with contextlib.suppress(OSError):
                self.proc.stdin.close()
        # The reader sees end of file once the process (and its group) is gone.
        self._reader.join(timeout=2.0)
        if self.proc.stdout is not None and not self._reader.is_alive():
            self.proc.stdout.close()
        self._stderr.close()


class PeerGroup:
    """Every peer started in a run, so that all of them are killed on the way out."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.peers: list[Peer] = []

    def start(self, role: str, config: dict[str, Any]) -> Peer:
        """A ``python -m fastipc.bench.peer ROLE CONFIG`` process."""
        return self.start_command(
            [sys.executable, "-m", "fastipc.bench.peer", role, json.dumps(config)]
        )

    def start_command(self, argv: list[str]) -> Peer:
        peer = Peer(argv, self.env)
        self.peers.append(peer)
        return peer

    def kill_all(self) -> None:
        while self.peers:
            self.peers.pop().kill()


@contextlib.contextmanager
def private_socket_dir() -> Iterator[str]:
    path = tempfile.mkdtemp(prefix="fastipc-bench-")
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@contextlib.contextmanager
def echo_server(
    mechanism: str,
    *,
    max_size: int,
    socket_dir: str,
    backend: str | None = None,
    cpu: int | None = None,
    phases: Sequence[str] = ("echo",),
) -> Iterator[tuple[str, Peer]]:
    """Start the echo side of a listener mechanism in another process; yields its address.
    ``phases`` says what it does with each connection it accepts in turn: ``"echo"`` (round
    trips) or ``"drain"`` (the receiving side of the one-way stream)."""
    group = PeerGroup(child_environment(backend, socket_dir))
    try:
        peer = group.start(
            "serve",
            {
                "mechanism": mechanism,
                "socket_dir": socket_dir,
                "max_size": max(max_size, 64),
                "cpu": cpu,
                "phases": list(phases),
            },
        )
        ready = peer.event(READY_TIMEOUT)
        if ready["event"] != "ready":
            raise BenchError(f"{mechanism} echo server: {ready.get('message')}")
        yield str(ready["address"]), peer
        peer.finish()
    finally:
        group.kill_all()


def probe(env: dict[str, str]) -> dict[str, Any]:
    """The fastipc version and backend a child process with ``env`` imports; :class:`BenchError`
    if it cannot."""
    group = PeerGroup(env)
    try:
        event = group.start("probe", {}).event(READY_TIMEOUT)
    finally:
        group.kill_all()
    if event["event"] != "probe":
        raise BenchError(f"fastipc cannot be imported by the benchmark's processes: {event}")
    return event
