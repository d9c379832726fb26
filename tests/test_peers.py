"""Peers in other languages: the examples/ programs, built here, against the Python API.

* ``examples/c/client.c`` (plain POSIX sockets, docs/wire.md) -> a Python fastipc listener,
  and with an authkey -> a fastipc listener and ``multiprocessing.connection.Listener``;
* ``examples/rust`` (the crate as a library): its server <- ``fastipc.connect`` and
  ``multiprocessing.connection.Client``; its client -> a Python fastipc listener; both with an
  authkey too (``FASTIPC_AUTHKEY``, the examples' own variable).

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
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from multiprocessing.connection import Client
from pathlib import Path

import fastipc
import pytest
from _helpers import newer_pythons, pattern

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
#: The shared key of the authenticated tests, and the variable the examples read it from.
KEY = b"peers-key"
KEY_VAR = "FASTIPC_AUTHKEY"
#: Interpreters whose standard library speaks the ``{sha256}`` form (3.11's is the legacy one).
NEWER = newer_pythons()


def source(*parts: str) -> Path:
    path = EXAMPLES.joinpath(*parts)
    if not path.is_file():
        pytest.skip(f"{path.relative_to(ROOT)} is not here: the suite runs outside the source tree")
    return path


class Program:
    """A program run with its stdout on a pipe (lines read with a deadline, never a sleep) or,
    when it writes more than a pipe holds before anyone reads, in a file."""

    def __init__(
        self, argv: list[str | bytes], output: Path | None, env: dict[str, str] | None = None
    ) -> None:
        self.argv = argv
        self._output = output
        environ = None if env is None else {**os.environ, **env}
        if output is None:
            self.proc = subprocess.Popen(
                argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=environ
            )
        else:
            fd = os.open(output, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
            try:
                self.proc = subprocess.Popen(argv, stdout=fd, stderr=subprocess.PIPE, env=environ)
            finally:
                os.close(fd)
        self._buf = b""
        self.stderr = b""

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
        self.stderr = err or b""
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
    """``programs(argv, pipe=False, env=None)`` starts a program, its stdout on a pipe or in a
    file, ``env`` added to its environment; any still running at teardown is killed."""
    started: list[Program] = []

    def start(
        argv: list[str | bytes], *, pipe: bool = False, env: dict[str, str] | None = None
    ) -> Program:
        output = None if pipe else tmp_path / f"stdout-{len(started)}"
        started.append(Program(argv, output, env))
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


def serve_reversed(backend, address: str, start_client, authkey: bytes | None = None) -> None:
    """Listens at ``address``, starts the client and answers its messages, reversed."""
    with backend.listen(address, authkey=authkey) as lst:
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
# C, with an authkey


def in_thread(fn: Callable[[], object]) -> Future[object]:
    """``fn()`` run in a thread of its own; its future."""
    pool = ThreadPoolExecutor(1)
    try:
        return pool.submit(fn)
    finally:
        pool.shutdown(wait=False)


WRONG_KEY_C = (
    b"client: authentication failed: the server rejected our answer (is the authkey the same?)\n"
)


@pytest.mark.parametrize("form", ["remapped", "unix-path", "abstract"])
def test_c_client_with_authkey_to_python_listener(backend, sock_dir, c_client, programs, form):
    def start(logical: str) -> Program:
        argv = [c_client, client_address(form, logical), *ARGV_MESSAGES]
        return programs(argv, env={KEY_VAR: KEY.decode()})

    serve_reversed(backend, listen_address(form, sock_dir), start, authkey=KEY)


def test_c_client_with_a_wrong_key_fails_cleanly(backend, c_client, programs):
    with backend.listen("127.0.0.1:0", authkey=KEY) as lst:
        accepted = in_thread(lambda: lst.accept(timeout=TIMEOUT))
        wrong = programs([c_client, lst.address, "hello"], env={KEY_VAR: "wrong"})
        assert wrong.finish(check=False) == b""
        assert (wrong.proc.returncode, wrong.stderr) == (3, WRONG_KEY_C)
        right = programs([c_client, lst.address, "hello"], env={KEY_VAR: KEY.decode()})
        with accepted.result(timeout=TIMEOUT) as conn:
            assert conn.recv_bytes() == b"hello"
            conn.send_bytes(b"olleh")
        assert right.finish() == b"olleh\n"
        assert lst.refused == 1


def test_c_client_with_authkey_to_a_listener_without_one(backend, c_client, programs):
    with backend.listen("127.0.0.1:0") as lst:
        client = programs([c_client, lst.address, "hello"], env={KEY_VAR: KEY.decode()})
        with lst.accept(timeout=TIMEOUT) as conn:
            conn.send_bytes(b"hello, no challenge here")
            assert client.finish(check=False) == b""
    assert client.proc.returncode == 3
    assert client.stderr == (
        b"client: authentication failed: the server sent no challenge (does it have an authkey?)\n"
    )


#: A standard library listener at a Unix path: serves one client after another (messages
#: answered reversed), printing "ok" or the exception's name for each.
STDLIB_LISTENER = """
import sys
from multiprocessing.connection import Listener
with Listener(sys.argv[1], family="AF_UNIX", authkey=sys.argv[2].encode()) as lst:
    print("listening", flush=True)
    for _ in range(2):
        try:
            with lst.accept() as conn:
                while True:
                    try:
                        message = conn.recv_bytes()
                    except EOFError:
                        break
                    conn.send_bytes(message[::-1])
            print("ok", flush=True)
        except Exception as e:
            print(type(e).__name__, flush=True)
"""


@pytest.mark.parametrize("key", [KEY, b"k" * 100], ids=["key", "long-key"])
@pytest.mark.parametrize("python", [sys.executable, *NEWER])
def test_c_client_with_authkey_to_stdlib_listener(c_client, programs, tmp_path, python, key):
    """3.11's Listener challenges in the legacy form (HMAC-MD5), 3.12+'s with ``{sha256}``; a
    key longer than a block (64 bytes) is hashed first, in both HMACs."""
    path = tmp_path / "s"
    listener = programs([python, "-c", STDLIB_LISTENER, str(path), key.decode()], pipe=True)
    assert listener.read_line() == b"listening"
    wrong = programs([c_client, f"unix:{path}", "hello"], env={KEY_VAR: "wrong"})
    assert wrong.finish(check=False) == b""
    assert (wrong.proc.returncode, wrong.stderr) == (3, WRONG_KEY_C)
    assert listener.read_line() == b"AuthenticationError"
    right = programs([c_client, f"unix:{path}", *ARGV_MESSAGES], env={KEY_VAR: key.decode()})
    assert right.finish() == b"".join(m[::-1] + b"\n" for m in ARGV_MESSAGES)
    assert listener.read_line() == b"ok"
    assert listener.finish() == b""


# --------------------------------------------------------------------------------------------
# Rust


def start_rust_server(
    rust_peers, programs, sock_dir: str, env: dict[str, str] | None = None
) -> tuple[Program, str]:
    """The Rust server at a free remapped port, for one connection; its logical address."""
    server = programs([rust_peers["rust_server"], "127.0.0.1:0", "1"], pipe=True, env=env)
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


# --------------------------------------------------------------------------------------------
# Rust, with an authkey


@pytest.mark.parametrize("form", ["remapped", "unix-path"])
def test_rust_client_with_authkey_to_python_listener(backend, sock_dir, rust_peers, programs, form):
    def start(logical: str) -> Program:
        argv = [rust_peers["rust_client"], client_address(form, logical), *ARGV_MESSAGES]
        return programs(argv, env={KEY_VAR: KEY.decode()})

    serve_reversed(backend, listen_address(form, sock_dir), start, authkey=KEY)


def test_rust_client_with_a_wrong_key_fails_cleanly(backend, rust_peers, programs):
    client = rust_peers["rust_client"]
    with backend.listen("127.0.0.1:0", authkey=KEY) as lst:
        accepted = in_thread(lambda: lst.accept(timeout=TIMEOUT))
        wrong = programs([client, lst.address, "hello"], env={KEY_VAR: "wrong"})
        assert wrong.finish(check=False) == b""
        assert (wrong.proc.returncode, wrong.stderr) == (
            1,
            b"rust_client: the peer rejected our answer: is the authkey the same?\n",
        )
        right = programs([client, lst.address, "hello"], env={KEY_VAR: KEY.decode()})
        with accepted.result(timeout=TIMEOUT) as conn:
            assert conn.recv_bytes() == b"hello"
            conn.send_bytes(b"olleh")
        assert right.finish() == b"olleh\n"
        assert lst.refused == 1


def test_python_clients_with_authkey_to_rust_server(backend, rust_peers, programs, sock_dir):
    env = {KEY_VAR: KEY.decode()}
    server, address = start_rust_server(rust_peers, programs, sock_dir, env)
    with pytest.raises(fastipc.AuthenticationError, match="rejected our answer"):
        backend.connect(address, authkey=b"wrong", timeout=TIMEOUT)
    with backend.connect(address, authkey=KEY, timeout=TIMEOUT) as conn:
        for i, size in enumerate(SIZES):
            data = pattern(size, seed=i)
            conn.send_bytes(data)
            assert conn.recv_bytes() == data[::-1]
    assert server.finish() == f"served {len(SIZES)} messages\nrefused 1\n".encode()
    assert os.listdir(sock_dir) == []


@pytest.mark.parametrize("python", [sys.executable, *NEWER])
def test_rust_client_with_authkey_to_stdlib_listener(rust_peers, programs, tmp_path, python):
    """The Rust client answers 3.11's legacy challenge with a bare HMAC-MD5 and accepts its bare
    HMAC-MD5 answer; with 3.12+ both directions are ``{sha256}``."""
    client = rust_peers["rust_client"]
    path = tmp_path / "s"
    listener = programs([python, "-c", STDLIB_LISTENER, str(path), KEY.decode()], pipe=True)
    assert listener.read_line() == b"listening"
    wrong = programs([client, f"unix:{path}", "hello"], env={KEY_VAR: "wrong"})
    assert wrong.finish(check=False) == b""
    assert (wrong.proc.returncode, wrong.stderr) == (
        1,
        b"rust_client: the peer rejected our answer: is the authkey the same?\n",
    )
    assert listener.read_line() == b"AuthenticationError"
    right = programs([client, f"unix:{path}", *ARGV_MESSAGES], env={KEY_VAR: KEY.decode()})
    assert right.finish() == b"".join(m[::-1] + b"\n" for m in ARGV_MESSAGES)
    assert listener.read_line() == b"ok"
    assert listener.finish() == b""


#: A standard library client: sends ARGV[3], prints the reply, or the exception's name.
STDLIB_CLIENT = """
import sys
from multiprocessing import AuthenticationError
from multiprocessing.connection import Client
try:
    with Client(sys.argv[1], family="AF_UNIX", authkey=sys.argv[2].encode()) as conn:
        conn.send_bytes(sys.argv[3].encode())
        print(conn.recv_bytes().decode())
except AuthenticationError:
    print("AuthenticationError")
"""


@pytest.mark.parametrize("python", [sys.executable, *NEWER])
def test_stdlib_client_with_authkey_to_rust_server(rust_peers, programs, sock_dir, python):
    """3.11's Client answers the Rust server's ``{sha256}`` challenge with a bare HMAC-MD5 and
    challenges in the legacy form; 3.12+'s speak ``{sha256}`` both ways."""
    server, address = start_rust_server(rust_peers, programs, sock_dir, {KEY_VAR: KEY.decode()})
    path = os.path.join(sock_dir, address)
    wrong = programs([python, "-c", STDLIB_CLIENT, path, "wrong", "abc"])
    assert wrong.finish() == b"AuthenticationError\n"
    right = programs([python, "-c", STDLIB_CLIENT, path, KEY.decode(), "abc"])
    assert right.finish() == b"cba\n"
    assert server.finish() == b"served 1 messages\nrefused 1\n"
    assert os.listdir(sock_dir) == []


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
