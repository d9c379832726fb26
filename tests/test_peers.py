"""Peers in other languages: the examples/ programs, built here, against the Python API.

* ``examples/c/client.c`` (plain POSIX sockets, docs/wire.md) -> a Python fastipc listener;
* ``examples/rust`` (the crate as a library): its server <- ``fastipc.connect`` and
  ``multiprocessing.connection.Client``; its client -> a Python fastipc listener.

The programs are built once per session. The Rust one goes into the main crate's ``target/``
(``CARGO_TARGET_DIR`` if set), so the crates already compiled there are reused. Without a C
compiler, without cargo, or outside the source tree (the suite also runs against an installed
wheel), the tests skip and say why.
"""

from __future__ import annotations

import json
import os
import select
import shutil
import subprocess
import sys
import time
import tomllib
from multiprocessing.connection import Client
from pathlib import Path

import pytest
from _helpers import pattern

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
TIMEOUT = 30.0

#: Messages given to the clients on their command line: no NUL byte can be in an argument.
#: The last one is larger than a connection's 8 KiB read-ahead buffer.
ARGV_MESSAGES = [
    b"hello",
    b"",
    "w\u00f6rld \u2713".encode(),
    bytes(range(1, 256)),
    bytes(range(1, 256)) * 400,
]
#: Sizes of the messages a Python client sends to the Rust server (any bytes).
SIZES = [0, 1, 64, 8192, 65536, 1024 * 1024 + 3]


def source(*parts: str) -> Path:
    path = EXAMPLES.joinpath(*parts)
    if not path.is_file():
        pytest.skip(f"{path.relative_to(ROOT)} is not here: the suite runs outside the source tree")
    return path


class Program:
    """A program run with its stdout on a pipe (lines read with a deadline, never a sleep) or,
    when it writes more than a pipe holds before anyone reads, in a file."""

    def __init__(self, argv: list[str | bytes], output: Path | None) -> None:
        self.argv = argv
        self._output = output
        if output is None:
            self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        else:
            fd = os.open(output, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
            try:
                self.proc = subprocess.Popen(argv, stdout=fd, stderr=subprocess.PIPE)
            finally:
                os.close(fd)
        self._buf = b""

    def read_line(self, timeout: float = TIMEOUT) -> bytes:
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        fd = self.proc.stdout.fileno()
        while b"\n" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                raise AssertionError(f"{self.argv[0]!r} wrote no line within {timeout} s")
            chunk = os.read(fd, 65536)
            if not chunk:
                raise AssertionError(f"{self.argv[0]!r} ended: {self.finish(check=False)!r}")
            self._buf += chunk
        line, self._buf = self._buf.split(b"\n", 1)
        return line

    def finish(self, timeout: float = TIMEOUT, *, check: bool = True) -> bytes:
        """Waits for the exit (status 0 unless ``check`` is false); the rest of stdout."""
        try:
            out, err = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, err = self.proc.communicate()
            raise AssertionError(f"{self.argv[0]!r} did not exit within {timeout} s") from None
        if check:
            assert self.proc.returncode == 0, f"exit status {self.proc.returncode}: {err!r}"
        if self._output is not None:
            out = self._output.read_bytes()
        rest, self._buf = self._buf + (out or b""), b""
        return rest

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.communicate()


@pytest.fixture
def programs(tmp_path: Path):
    """``programs(argv, pipe=False)`` starts a program, its stdout on a pipe or in a file; any
    still running at teardown is killed."""
    started: list[Program] = []

    def start(argv: list[str | bytes], *, pipe: bool = False) -> Program:
        output = None if pipe else tmp_path / f"stdout-{len(started)}"
        started.append(Program(argv, output))
        return started[-1]

    yield start
    for program in started:
        program.kill()


# --------------------------------------------------------------------------------------------
# building the examples, once per session


@pytest.fixture(scope="session")
def c_client(tmp_path_factory: pytest.TempPathFactory) -> str:
    src = source("c", "client.c")
    cc = shutil.which("cc")
    if cc is None:
        pytest.skip("no C compiler: `cc` is not on PATH")
    exe = tmp_path_factory.mktemp("peers") / "client"
    flags = ["-std=c99", "-O1", "-Wall", "-Wextra", "-Werror", "-Wpedantic"]
    proc = subprocess.run(
        [cc, *flags, "-o", str(exe), str(src)], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, f"cc failed for {src}:\n{proc.stderr}"
    return str(exe)


@pytest.fixture(scope="session")
def rust_peers() -> dict[str, str]:
    """``cargo build --locked`` of examples/rust; the name of each program -> its path."""
    manifest = source("rust", "Cargo.toml")
    cargo = shutil.which("cargo")
    if cargo is None:
        pytest.skip("no Rust toolchain: `cargo` is not on PATH")
    env = dict(os.environ)
    env.setdefault("CARGO_TARGET_DIR", str(ROOT / "target"))
    command = [cargo, "build", "--locked", "--bins", "--message-format=json-render-diagnostics"]
    proc = subprocess.run(
        [*command, "--manifest-path", str(manifest)],
        capture_output=True,
        text=True,
        timeout=900,
        env=env,
    )
    assert proc.returncode == 0, f"cargo build of {manifest} failed:\n{proc.stderr}"
    built = {}
    for line in proc.stdout.splitlines():
        message = json.loads(line)
        if message.get("reason") == "compiler-artifact" and message.get("executable"):
            built[message["target"]["name"]] = message["executable"]
    assert sorted(built) == ["rust_client", "rust_server"], proc.stdout
    return built


# --------------------------------------------------------------------------------------------
# the addresses a client is given for one listener


FORMS = ["remapped", "localhost", "ipv6", "unix-path", "abstract"]


def listen_address(form: str, sock_dir: str) -> str:
    if form == "abstract" and not sys.platform.startswith("linux"):
        pytest.skip("abstract Unix sockets exist only on Linux")
    return {
        "remapped": "127.0.0.1:0",
        "localhost": "127.0.0.1:0",
        "ipv6": "[::1]:0",
        "unix-path": f"unix:{sock_dir}/peer.sock",
        "abstract": f"unix:@fastipc-test-peers-{os.getpid()}",
    }[form]


def client_address(form: str, logical: str) -> str:
    """What the client is given: the listener's logical address (localhost in one form)."""
    return logical.replace("127.0.0.1:", "localhost:") if form == "localhost" else logical


def serve_reversed(backend, address: str, start_client) -> None:
    """Listens at ``address``, starts the client and answers its messages, reversed."""
    with backend.listen(address) as lst:
        program = start_client(lst.address)
        with lst.accept(timeout=TIMEOUT) as conn:
            for message in ARGV_MESSAGES:
                assert conn.recv_bytes() == message
                conn.send_bytes(message[::-1])
            with pytest.raises(EOFError):
                conn.recv_bytes()
        assert program.finish() == b"".join(m[::-1] + b"\n" for m in ARGV_MESSAGES)


# --------------------------------------------------------------------------------------------
# C


@pytest.mark.parametrize("form", FORMS)
def test_c_client_to_python_listener(backend, sock_dir, c_client, programs, form):
    def start(logical: str) -> Program:
        return programs([c_client, client_address(form, logical), *ARGV_MESSAGES])

    serve_reversed(backend, listen_address(form, sock_dir), start)


def test_c_client_refuses_an_unsafe_socket_dir(c_client, programs, tmp_path, monkeypatch):
    shared = tmp_path / "open"
    shared.mkdir()
    os.chmod(shared, 0o777)
    monkeypatch.setenv("FASTIPC_SOCKET_DIR", str(shared))
    program = programs([c_client, "127.0.0.1:5000", "hello"])
    assert program.finish(check=False) == b""
    assert program.proc.returncode == 2


# --------------------------------------------------------------------------------------------
# Rust


def start_rust_server(rust_peers, programs, sock_dir: str) -> tuple[Program, str]:
    """The Rust server at a free remapped port, for one connection; its logical address."""
    server = programs([rust_peers["rust_server"], "127.0.0.1:0", "1"], pipe=True)
    word, address, path = server.read_line().decode().split(" ", 2)
    assert word == "listening"
    assert address.startswith("127.0.0.1:")
    assert path == os.path.join(sock_dir, address)
    assert sorted(os.listdir(sock_dir)) == [address, f"{address}.lock"]
    return server, address


def test_python_client_to_rust_server(backend, rust_peers, programs, sock_dir):
    server, address = start_rust_server(rust_peers, programs, sock_dir)
    with backend.connect(address, timeout=TIMEOUT) as conn:
        for i, size in enumerate(SIZES):
            data = pattern(size, seed=i)
            conn.send_bytes(data)
            assert conn.recv_bytes() == data[::-1]
    assert server.finish() == f"served {len(SIZES)} messages\n".encode()
    assert os.listdir(sock_dir) == []


def test_multiprocessing_client_to_rust_server(rust_peers, programs, sock_dir):
    server, address = start_rust_server(rust_peers, programs, sock_dir)
    with Client(os.path.join(sock_dir, address), family="AF_UNIX") as conn:
        for i, size in enumerate(SIZES):
            data = pattern(size, seed=i)
            conn.send_bytes(data)
            assert conn.recv_bytes() == data[::-1]
    assert server.finish() == f"served {len(SIZES)} messages\n".encode()
    assert os.listdir(sock_dir) == []


@pytest.mark.parametrize("form", FORMS)
def test_rust_client_to_python_listener(backend, sock_dir, rust_peers, programs, form):
    def start(logical: str) -> Program:
        return programs([rust_peers["rust_client"], client_address(form, logical), *ARGV_MESSAGES])

    serve_reversed(backend, listen_address(form, sock_dir), start)


def test_rust_examples_build_from_the_main_crates_packages():
    """`default-features = false` keeps PyO3 out, and every crate the examples lock is one the
    main Cargo.lock has (same version and checksum): they build offline wherever it does."""
    manifest = tomllib.loads(source("rust", "Cargo.toml").read_text())
    assert manifest["dependencies"]["fastipc"] == {"path": "../..", "default-features": False}
    main = tomllib.loads((ROOT / "Cargo.lock").read_text())["package"]
    examples = tomllib.loads(source("rust", "Cargo.lock").read_text())["package"]
    known = {(p["name"], p["version"], p.get("checksum")) for p in main}
    fetched = [p for p in examples if "source" in p]
    assert [p["name"] for p in fetched if p["name"] == "pyo3"] == []
    assert [p for p in fetched if (p["name"], p["version"], p.get("checksum")) not in known] == []
    assert {p["name"] for p in examples if "source" not in p} == {"fastipc", "fastipc-examples"}
