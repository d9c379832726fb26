"""``authkey``: the challenge/response of ``multiprocessing.connection``, on both backends, with
the standard library of this interpreter (3.11: legacy HMAC-MD5) and of newer ones (3.12+:
``{sha256}``) where pyenv has them."""

from __future__ import annotations

import hmac
import importlib
import json
import multiprocessing
import multiprocessing.connection as mpc
import os
import pickle
import socket
import struct
import subprocess
import sys
import threading
from collections.abc import Callable

import fastipc
import pytest
from _helpers import newer_pythons
from conftest import SELECTED
from fastipc import _auth

KEY = b"fastipc-key"


class _Thread(threading.Thread):
    """Runs ``fn`` and keeps its result or exception for ``result()``."""

    def __init__(self, fn: Callable[[], object]) -> None:
        super().__init__(daemon=True)
        self._fn = fn
        self._result: object = None
        self._error: BaseException | None = None
        self.start()

    def run(self) -> None:
        try:
            self._result = self._fn()
        except BaseException as e:
            self._error = e

    def result(self) -> object:
        self.join(10)
        assert not self.is_alive(), "the thread did not finish"
        if self._error is not None:
            raise self._error
        return self._result


def _tcp_port(address: str) -> int:
    return int(address.rsplit(":", 1)[1])


# ------------------------------------------------------------------ the messages themselves


def test_answers_are_the_fixed_hmac_vectors():
    modern = b"{sha256}" + bytes(range(40))
    assert _auth._response(KEY, modern) == b"{sha256}" + bytes.fromhex(
        "6bd30bfdd1902260dd81aa0c8400658bf93fd9786b1001c26bfe0a6b6446e962"
    )
    legacy = bytes(range(20))
    assert _auth._response(KEY, legacy) == bytes.fromhex("bc8ab3f175c21d2946618fd4f366861c")
    # Both answers are accepted; a legacy (3.11) answer to a modern challenge too.
    _auth._verify(KEY, modern, _auth._response(KEY, modern))
    _auth._verify(KEY, modern, hmac.new(KEY, modern, "md5").digest())
    with pytest.raises(fastipc.AuthenticationError):
        _auth._verify(b"other", modern, _auth._response(KEY, modern))
    with pytest.raises(fastipc.AuthenticationError, match="digest prefix"):
        _auth._verify(KEY, modern, b"{sha1}" + bytes(20))


def test_authentication_error_is_both_families():
    assert issubclass(fastipc.AuthenticationError, fastipc.IPCError)
    assert issubclass(fastipc.AuthenticationError, multiprocessing.AuthenticationError)


def test_bad_keys_are_refused_up_front(backend):
    with pytest.raises(TypeError, match="authkey must be bytes"):
        backend.listen("127.0.0.1:0", authkey="text")
    with pytest.raises(ValueError, match="must not be empty"):
        backend.listen("127.0.0.1:0", authkey=b"")
    with pytest.raises(ValueError, match="datagram"):
        backend.listen("127.0.0.1:0", kind="datagram", authkey=KEY)
    with pytest.raises(ValueError, match="handshake_timeout"):
        backend.listen("127.0.0.1:0", authkey=KEY, handshake_timeout=0)
    with pytest.raises(TypeError, match="authkey must be bytes"):
        backend.connect("127.0.0.1:1", authkey=bytearray(b"k"))


# ------------------------------------------------------------------ fastipc to fastipc


@pytest.mark.parametrize("address", ["127.0.0.1:0", "tcp:127.0.0.1:0"])
def test_same_key_connects(backend, address):
    with backend.listen(address, authkey=KEY) as lst:
        client = _Thread(lambda: backend.connect(lst.address, authkey=KEY, timeout=10))
        with lst.accept(timeout=10) as conn, client.result() as peer:
            peer.send({"after": "authentication"})
            assert conn.recv() == {"after": "authentication"}
            conn.send_bytes(b"back")
            assert peer.recv_bytes() == b"back"
        assert lst.refused == 0


def test_wrong_key_is_refused_and_the_listener_goes_on(backend):
    with backend.listen("tcp:127.0.0.1:0", authkey=KEY) as lst:
        bad = _Thread(lambda: backend.connect(lst.address, authkey=b"wrong", timeout=10))
        good = _Thread(lambda: _connect_after(bad, backend, lst.address))
        with lst.accept(timeout=10) as conn, good.result() as peer:
            peer.send_bytes(b"good")
            assert conn.recv_bytes() == b"good"
        with pytest.raises(fastipc.AuthenticationError, match="rejected our answer"):
            bad.result()
        assert lst.refused == 1


def _connect_after(first: _Thread, backend, address: str):
    # The wrong key first, so that it is the one the listener meets first.
    try:
        first.result()
    except fastipc.AuthenticationError:
        pass
    return backend.connect(address, authkey=KEY, timeout=10)


def test_silent_and_hostile_peers_cannot_stop_the_accept_loop(backend, tmp_path):
    marker = tmp_path / "unpickled"
    # A pickle that would create ``marker`` if anyone unpickled it.
    evil = pickle.dumps(_Mkdir(str(marker)))
    with backend.listen("tcp:127.0.0.1:0", authkey=KEY, handshake_timeout=0.2) as lst:
        port = _tcp_port(lst.address)
        silent = socket.create_connection(("127.0.0.1", port))
        hostile = socket.create_connection(("127.0.0.1", port))
        hostile.sendall(struct.pack("!i", len(evil)) + evil)
        huge = socket.create_connection(("127.0.0.1", port))
        huge.sendall(struct.pack("!i", 1 << 30))
        try:
            good = _Thread(lambda: backend.connect(lst.address, authkey=KEY, timeout=10))
            with lst.accept(timeout=10) as conn, good.result() as peer:
                peer.send_bytes(b"through")
                assert conn.recv_bytes() == b"through"
            assert lst.refused == 3
        finally:
            for s in (silent, hostile, huge):
                s.close()
    assert not marker.exists()


class _Mkdir:
    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return (os.mkdir, (self.path,))


def test_a_handshake_never_outlasts_accepts_timeout(backend):
    with backend.listen("tcp:127.0.0.1:0", authkey=KEY, handshake_timeout=30) as lst:
        with socket.create_connection(("127.0.0.1", _tcp_port(lst.address))):
            with pytest.raises(TimeoutError):
                lst.accept(timeout=0.3)
            assert lst.refused == 1


def test_a_client_whose_listener_has_no_key_gets_authentication_error(backend):
    with backend.listen("tcp:127.0.0.1:0") as lst:
        client = _Thread(lambda: backend.connect(lst.address, authkey=KEY, timeout=10))
        with lst.accept(timeout=10) as conn:
            conn.send_bytes(b"hello, no challenge here")
            with pytest.raises(fastipc.AuthenticationError, match="no challenge"):
                client.result()


# ------------------------------------------------------------------ the standard library, 3.11


def _stdlib_targets(lst) -> list[tuple[object, str | None]]:
    """The stdlib (address, family) pairs naming ``lst``."""
    if lst.path is not None:
        return [(lst.path, "AF_UNIX")]
    return [(("127.0.0.1", _tcp_port(lst.address)), "AF_INET")]


@pytest.mark.parametrize("address", ["127.0.0.1:0", "tcp:127.0.0.1:0", "unix:{dir}/s"])
def test_stdlib_client_to_fastipc_listener(backend, address, tmp_path):
    with backend.listen(address.format(dir=tmp_path), authkey=KEY) as lst:
        ((target, family),) = _stdlib_targets(lst)

        def client() -> object:
            with mpc.Client(target, family=family, authkey=KEY) as c:
                c.send(["from", "the", "stdlib"])
                return c.recv()

        result = _Thread(client)
        with lst.accept(timeout=10) as conn:
            conn.send(conn.recv()[::-1])
        assert result.result() == ["stdlib", "the", "from"]

        def wrong() -> object:
            return mpc.Client(target, family=family, authkey=b"wrong")

        outcome = _refuse_then_accept(backend, lst, wrong)
        assert isinstance(outcome, multiprocessing.AuthenticationError)
        assert lst.refused == 1


def _refuse_then_accept(backend, lst, bad: Callable[[], object]) -> object:
    """Runs ``bad`` (a peer with a wrong key) while ``lst`` accepts; once it is done a good
    fastipc client connects, and ``accept`` must return that one. Returns what ``bad`` returned
    or raised."""
    first = _Thread(bad)

    def good() -> fastipc.Connection:
        try:
            first.result()
        except Exception:
            pass
        return backend.connect(lst.address, authkey=KEY, timeout=10)

    second = _Thread(good)
    with lst.accept(timeout=10) as conn, second.result() as peer:
        peer.send_bytes(b"good")
        assert conn.recv_bytes() == b"good"
    try:
        return first.result()
    except Exception as e:
        return e


@pytest.mark.parametrize("family", ["AF_INET", "AF_UNIX"])
def test_fastipc_connect_to_stdlib_listener(backend, family, tmp_path):
    where = ("127.0.0.1", 0) if family == "AF_INET" else str(tmp_path / "mp.sock")
    with mpc.Listener(where, family=family, authkey=KEY) as listener:
        address = (
            f"tcp:127.0.0.1:{listener.address[1]}"
            if family == "AF_INET"
            else f"unix:{listener.address}"
        )

        def serve() -> object:
            with listener.accept() as c:
                c.send_bytes(c.recv_bytes().upper())
                return None

        server = _Thread(serve)
        with backend.connect(address, authkey=KEY, timeout=10) as conn:
            conn.send_bytes(b"shout")
            assert conn.recv_bytes() == b"SHOUT"
        server.result()

        server = _Thread(listener.accept)
        with pytest.raises(fastipc.AuthenticationError):
            backend.connect(address, authkey=b"wrong", timeout=10)
        with pytest.raises(multiprocessing.AuthenticationError):
            server.result()


# ------------------------------------------------------------------ the standard library, 3.12+


NEWER = newer_pythons()

NEW_CLIENT = """
import sys
from multiprocessing.connection import Client
target, family, key = sys.argv[1], sys.argv[2], sys.argv[3].encode()
if family == "AF_INET":
    host, port = target.rsplit(":", 1)
    target = (host, int(port))
try:
    with Client(target, family=family, authkey=key) as c:
        c.send_bytes(c.recv_bytes()[::-1])
    print("ok")
except Exception as e:
    print(type(e).__name__)
"""

NEW_LISTENER = """
import sys
from multiprocessing.connection import Listener
with Listener(("127.0.0.1", 0), authkey=sys.argv[1].encode()) as lst:
    print(lst.address[1], flush=True)
    for _ in range(2):
        try:
            with lst.accept() as c:
                c.send_bytes(c.recv_bytes() * 2)
            print("ok", flush=True)
        except Exception as e:
            print(type(e).__name__, flush=True)
"""


@pytest.mark.skipif(not NEWER, reason="no Python 3.12+ interpreter on this machine (pyenv)")
@pytest.mark.parametrize("python", NEWER)
def test_newer_stdlib_client_to_fastipc_listener(backend, python, tmp_path):
    def run(lst, key: bytes) -> str:
        child = subprocess.Popen(
            [python, "-c", NEW_CLIENT, str(lst.path), "AF_UNIX", key.decode()],
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            out, _ = child.communicate(timeout=10)
        finally:
            child.kill()
            child.wait()
        return out.strip()

    with backend.listen(f"unix:{tmp_path}/s", authkey=KEY) as lst:
        client = _Thread(lambda: run(lst, KEY))
        with lst.accept(timeout=10) as conn:
            conn.send_bytes(b"abc")
            assert conn.recv_bytes() == b"cba"
        assert client.result() == "ok"
        outcome = _refuse_then_accept(backend, lst, lambda: run(lst, b"wrong"))
        assert outcome == "AuthenticationError"
        assert lst.refused == 1


@pytest.mark.skipif(not NEWER, reason="no Python 3.12+ interpreter on this machine (pyenv)")
@pytest.mark.parametrize("python", NEWER)
def test_fastipc_connect_to_newer_stdlib_listener(backend, python):
    child = subprocess.Popen(
        [python, "-c", NEW_LISTENER, KEY.decode()], stdout=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout is not None
        port = int(child.stdout.readline())
        with backend.connect(f"tcp:127.0.0.1:{port}", authkey=KEY, timeout=10) as conn:
            conn.send_bytes(b"ab")
            assert conn.recv_bytes() == b"abab"
        assert child.stdout.readline().split() == ["ok"]
        with pytest.raises(fastipc.AuthenticationError):
            backend.connect(f"tcp:127.0.0.1:{port}", authkey=b"wrong", timeout=10)
        assert child.stdout.readline().split() == ["AuthenticationError"]
        child.wait(timeout=10)
    finally:
        child.kill()
        child.wait()
        if child.stdout is not None:
            child.stdout.close()


def test_newer_pythons_found_are_real():
    # Keeps the 3.12+ tests honest: what was found answers with its version.
    for python in NEWER:
        out = subprocess.run(
            [python, "-c", "import sys, json; print(json.dumps(sys.version_info[:2]))"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        assert tuple(json.loads(out)) >= (3, 12)
    assert sys.version_info >= (3, 11)


# ------------------------------------------------------------------ secure by default


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.9.8.7", True),
        ("::1", True),
        ("[::1]", True),
        ("::ffff:127.0.0.2", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("10.1.2.3", False),
        ("::", False),
        ("::ffff:10.0.0.1", False),
        ("name.invalid", False),
    ],
)
def test_loopback_hosts(host, loopback):
    assert _auth.is_loopback_host(host) is loopback


def test_a_name_is_loopback_only_if_all_its_addresses_are(monkeypatch):
    answers = {
        "mixed.test": ["127.0.0.1", "10.0.0.5"],
        "loop.test": ["127.0.0.1", "::1", "::ffff:127.0.0.1"],
    }

    def fake(host, port, *args):
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (ip, 0)) for ip in answers[host]]

    monkeypatch.setattr(_auth.socket, "getaddrinfo", fake)
    assert _auth.is_loopback_host("loop.test") is True
    assert _auth.is_loopback_host("mixed.test") is False


@pytest.mark.parametrize("address", ["tcp:0.0.0.0:0", "0.0.0.0:0", ("0.0.0.0", 0)])
def test_listening_off_loopback_needs_a_key(backend, address):
    with pytest.raises(PermissionError) as info:
        backend.listen(address)
    message = str(info.value)
    assert "tcp:0.0.0.0:0" in message
    assert "authkey" in message
    assert "allow_unauthenticated=True" in message
    with backend.listen(address, allow_unauthenticated=True) as lst:
        assert lst.address.startswith("tcp:0.0.0.0:")
    with backend.listen(address, authkey=KEY) as lst:
        assert lst.address.startswith("tcp:0.0.0.0:")
    # Datagram sockets have no handshake and no pickles: unchanged.
    with backend.listen(address, kind="datagram") as dg:
        assert dg.address.startswith("udp:0.0.0.0:")


def test_a_name_with_one_outside_address_needs_a_key(backend, monkeypatch):
    def fake(host, port, *args):
        assert host == "mixed.test"
        return [
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", 0)),
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("192.0.2.7", 0)),
        ]

    monkeypatch.setattr(_auth.socket, "getaddrinfo", fake)
    with pytest.raises(PermissionError, match=r"tcp:mixed\.test:5000"):
        backend.listen("tcp:mixed.test:5000")


@pytest.mark.parametrize("address", ["tcp:127.0.0.1:0", "tcp:localhost:0", "tcp:[::1]:0"])
def test_loopback_tcp_needs_no_key(backend, address):
    try:
        lst = backend.listen(address)
    except OSError as e:
        if "::1" in address and e.errno == 99:  # EADDRNOTAVAIL: no IPv6 loopback here
            pytest.skip("no IPv6 loopback on this machine")
        raise
    with lst:
        assert lst.address.startswith("tcp:")


def test_windows_mode_loopback_is_tcp_with_keepalive_and_authkey(monkeypatch):
    # The fallback in its Windows behaviour: a remapped address is TCP loopback (any local user
    # can connect, so authkey matters there), which needs no key to listen.
    if "python" not in SELECTED:
        pytest.skip("the python backend is not selected by FASTIPC_TEST_BACKENDS")
    fallback = importlib.import_module("fastipc._fallback")
    platform = importlib.import_module("fastipc._fallback._platform")
    monkeypatch.setattr(platform, "WINDOWS", True)
    with fallback.listen("127.0.0.1:0") as open_lst:
        assert open_lst.path is None
    with fallback.listen("127.0.0.1:0", authkey=KEY) as lst:
        assert lst.path is None
        client = _Thread(lambda: fallback.connect(lst.address, authkey=KEY, timeout=10))
        with lst.accept(timeout=10) as conn, client.result() as peer:
            raw = socket.socket(fileno=os.dup(conn.fileno()))
            try:
                assert raw.family == socket.AF_INET
                assert raw.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
            finally:
                raw.close()
            peer.send(("over", "tcp"))
            assert conn.recv() == ("over", "tcp")
        outcome = _refuse_then_accept(
            fallback, lst, lambda: fallback.connect(lst.address, authkey=b"wrong", timeout=10)
        )
        assert isinstance(outcome, fastipc.AuthenticationError)
        assert lst.refused == 1
