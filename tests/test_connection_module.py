"""fastipc.connection: programs written for multiprocessing.connection run unchanged with
``import fastipc.connection as mpc`` and print exactly what they print with the standard library;
its listeners and clients interoperate with the standard library's; its connections, and
fastipc's own, pass to a multiprocessing.Process under each start method. Both backends.

The programs run in child interpreters (``python program.py``): the spawn and forkserver start
methods re-import their main module, and the forkserver process they leave behind belongs to the
child, not to the test process.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.connection as std
import os
import subprocess
import sys
import textwrap
import threading
import time
import warnings

import pytest
from test_auth import NEW_CLIENT, NEW_LISTENER, NEWER

STDLIB = "multiprocessing.connection"
FASTIPC = "fastipc.connection"
TIMEOUT = 120


@pytest.fixture
def mpc(backend, backend_name, monkeypatch):
    """fastipc.connection on the backend under test."""
    import fastipc
    import fastipc.connection as module

    if backend_name != fastipc.BACKEND:
        # The facade was loaded with the other backend: point the module's names at this one.
        monkeypatch.setattr(fastipc, "listen", backend.listen)
        monkeypatch.setattr(fastipc, "connect", backend.connect)
        monkeypatch.setattr(fastipc, "socketpair", backend.socketpair)
        monkeypatch.setattr(fastipc, "fromfd", backend.fromfd)
        monkeypatch.setattr(fastipc, "resolve", backend.resolve)
    return module


def run(tmp_path, program: str, module: str, backend_name: str, sock_dir: str) -> str:
    """Runs ``program`` (its ``MODULE`` replaced by ``module``) in a child interpreter; its
    stdout. The child must exit 0."""
    path = tmp_path / f"prog_{module.replace('.', '_')}.py"
    path.write_text(textwrap.dedent(program).replace("MODULE", module))
    env = dict(os.environ, FASTIPC_BACKEND=backend_name, FASTIPC_SOCKET_DIR=sock_dir)
    proc = subprocess.run(
        [sys.executable, str(path)],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        env=env,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, f"{module}: exit {proc.returncode}\n{proc.stderr}"
    return proc.stdout


def same_output(tmp_path, program: str, backend_name: str, sock_dir: str) -> str:
    """The program's output with the standard library and with fastipc.connection, which must
    be the same; returned for the test to check."""
    ours = run(tmp_path, program, FASTIPC, backend_name, sock_dir)
    theirs = run(tmp_path, program, STDLIB, backend_name, sock_dir)
    assert ours == theirs
    return ours


# ---------------------------------------------------------------------------------------------
# the same programs, once per module

ECHO = """
    import threading
    import MODULE as mpc


    def serve(listener):
        with listener.accept() as conn:
            while True:
                try:
                    msg = conn.recv()
                except EOFError:
                    break
                conn.send(("echo", msg))
            print("server: peer gone")


    if __name__ == "__main__":
        with mpc.Listener(("localhost", 0)) as listener:
            host, port = listener.address
            print("listening on", host, type(port).__name__, 0 < port < 65536)
            server = threading.Thread(target=serve, args=(listener,))
            server.start()
            with mpc.Client(listener.address) as conn:
                for msg in [1, "two", b"three", [4.0, None], {"five": 5}, "x" * 100000]:
                    conn.send(msg)
                    reply = conn.recv()
                    print(repr(reply)[:60], len(repr(reply)))
                print("poll", conn.poll(0))
            server.join()
            print("last accepted from", listener.last_accepted[0])
        print("done")
"""


def test_echo_server_and_client(tmp_path, backend_name, sock_dir):
    out = same_output(tmp_path, ECHO, backend_name, sock_dir)
    assert out.splitlines()[0] == "listening on 127.0.0.1 int True"
    assert out.splitlines()[-3:] == ["server: peer gone", "last accepted from 127.0.0.1", "done"]


PIPE_BETWEEN_PROCESSES = """
    import multiprocessing as mp
    import MODULE as mpc


    def child(conn, tag):
        n = conn.recv()
        conn.send([tag, n * 2])
        conn.send_bytes(b"bytes:" + bytes([n * 2]))
        conn.close()


    def writer(conn):
        conn.send("one way")
        conn.close()


    if __name__ == "__main__":
        for method in ("fork", "spawn", "forkserver"):
            ctx = mp.get_context(method)
            a, b = mpc.Pipe()
            p = ctx.Process(target=child, args=(b, method))
            p.start()
            b.close()
            a.send(21)
            print(method, a.recv())
            buf = bytearray(16)
            n = a.recv_bytes_into(buf)
            print(method, bytes(buf[:n]))
            try:
                a.recv()
            except EOFError:
                print(method, "EOF")
            p.join()
            print(method, "exit", p.exitcode)
            a.close()
            r, w = mpc.Pipe(duplex=False)
            p = ctx.Process(target=writer, args=(w,))
            p.start()
            w.close()
            print(method, r.recv())
            p.join()
            r.close()
"""


def test_pipe_between_processes_with_each_start_method(tmp_path, backend_name, sock_dir):
    out = same_output(tmp_path, PIPE_BETWEEN_PROCESSES, backend_name, sock_dir)
    expected = []
    for method in ("fork", "spawn", "forkserver"):
        expected += [
            f"{method} [{method!r}, 42]",
            f"{method} b'bytes:*'",
            f"{method} EOF",
            f"{method} exit 0",
            f"{method} one way",
        ]
    assert out.splitlines() == expected


WAIT = """
    import socket
    import threading
    import multiprocessing.connection
    import MODULE as mpc


    def produce(conn, i):
        for j in range(50):
            conn.send((i, j))
        conn.close()


    if __name__ == "__main__":
        readers, threads = [], []
        for i in range(4):
            r, w = mpc.Pipe(duplex=False)
            readers.append(r)
            threads.append(threading.Thread(target=produce, args=(w, i)))
        for t in threads:
            t.start()
        got = []
        while readers:
            for r in mpc.wait(readers):
                try:
                    got.append(r.recv())
                except EOFError:
                    readers.remove(r)
                    r.close()
        for t in threads:
            t.join()
        print(len(got), sorted(got) == [(i, j) for i in range(4) for j in range(50)])
        print("in order", all([m for m in got if m[0] == i] == [(i, j) for j in range(50)]
                              for i in range(4)))

        a, b = mpc.Pipe()
        print("nothing yet", mpc.wait([a, b], timeout=0.05))
        b.send("x")
        print("a is ready", [c is a for c in mpc.wait([a, b], timeout=30)])
        print(a.recv())
        # Two messages sent, one received: the other is ready, wherever it waits (a fastipc
        # connection may have read it ahead already).
        for n in range(20):
            b.send_bytes(b"first")
            b.send_bytes(b"second")
            assert a.recv_bytes() == b"first"
            assert mpc.wait([a], timeout=0) == [a], n
            assert a.recv_bytes() == b"second"
        print("read ahead is ready")

        # mixed: the standard library's connections, sockets, descriptors
        s1, s2 = socket.socketpair()
        p1, p2 = multiprocessing.connection.Pipe()
        r, w = socket.socketpair()
        everything = [a, s1, p1, r.fileno()]
        print("none", mpc.wait(everything, timeout=0))
        s2.send(b"!")
        p2.send("stdlib")
        w.send(b"?")
        b.send("fastipc")
        ready = mpc.wait(everything, timeout=30)
        while len(ready) < 4:
            ready = mpc.wait(everything, timeout=30)
        print("all four", [everything.index(x) for x in ready])
        print(a.recv(), s1.recv(1), p1.recv(), r.recv(1))
        for c in (a, b, s1, s2, p1, p2, r, w):
            c.close()
"""


def test_wait_over_several_connections(tmp_path, backend_name, sock_dir):
    out = same_output(tmp_path, WAIT, backend_name, sock_dir)
    lines = out.splitlines()
    assert lines == [
        "200 True",
        "in order True",
        "nothing yet []",
        "a is ready [True]",
        "x",
        "read ahead is ready",
        "none []",
        "all four [0, 1, 2, 3]",
        "fastipc b'!' stdlib b'?'",
    ]


AUTH = """
    import multiprocessing
    import os
    import threading
    import MODULE as mpc


    def serve(listener, results, n):
        for _ in range(n):
            try:
                with listener.accept() as conn:
                    results.append(("accepted", conn.recv()))
                    conn.send("welcome")
            except multiprocessing.AuthenticationError as e:
                results.append(("refused", type(e).__name__))


    def client(address, key, results):
        try:
            with mpc.Client(address, authkey=key) as conn:
                conn.send(key)
                results.append(("client", conn.recv()))
        except multiprocessing.AuthenticationError as e:
            results.append(("client refused", type(e).__name__))


    if __name__ == "__main__":
        for address, family in [(("localhost", 0), None), (None, "AF_UNIX")]:
            with mpc.Listener(address, family=family, authkey=b"secret") as listener:
                print(type(listener.address).__name__)
                path = listener.address if family else None
                if path:
                    print("path", os.path.basename(path).startswith("listener-"))
                server_results, client_results = [], []
                server = threading.Thread(target=serve, args=(listener, server_results, 3))
                server.start()
                for key in (b"secret", b"wrong", b"secret"):
                    client(listener.address, key, client_results)
                server.join()
                print(server_results)
                print(client_results)
            if path:
                print("removed", not os.path.exists(path))
"""


def test_authenticated_listener_and_client_and_a_wrong_key(tmp_path, backend_name, sock_dir):
    out = same_output(tmp_path, AUTH, backend_name, sock_dir)
    results = [
        "[('accepted', b'secret'), ('refused', 'AuthenticationError'), ('accepted', b'secret')]",
        "[('client', 'welcome'), ('client refused', 'AuthenticationError'), ('client', 'welcome')]",
    ]
    assert out.splitlines() == [
        "tuple",
        *results,
        "str",
        "path True",
        *results,
        "removed True",
    ]


# ---------------------------------------------------------------------------------------------
# fastipc's own connections, and fastipc.connection's, as Process arguments

PASS_TO_PROCESS = """
    import multiprocessing as mp
    import threading
    import fastipc
    import fastipc.connection as mpc


    def child(label, conns):
        for conn in conns:
            conn.send((label, type(conn) is fastipc.Connection, conn.recv()))
            conn.close()


    if __name__ == "__main__":
        assert fastipc.BACKEND == ARGS_BACKEND
        listener = mpc.Listener(("localhost", 0), authkey=b"k")
        for method in ("fork", "spawn", "forkserver"):
            ctx = mp.get_context(method)
            mine = []
            theirs = []
            a, b = fastipc.socketpair()
            mine.append(a)
            theirs.append(b)
            c, d = mpc.Pipe()
            mine.append(c)
            theirs.append(d)
            accepted = []
            t = threading.Thread(target=lambda: accepted.append(listener.accept()))
            t.start()
            client = mpc.Client(listener.address, authkey=b"k")
            t.join()
            mine.append(accepted[0])
            theirs.append(client)
            p = ctx.Process(target=child, args=(method, theirs))
            p.start()
            for conn in theirs:
                conn.close()
            for i, conn in enumerate(mine):
                conn.send(i)
                print(method, conn.recv())
                conn.close()
            p.join()
            print(method, "exit", p.exitcode)
        listener.close()
"""


def test_connections_pass_to_a_process_with_each_start_method(tmp_path, backend_name, sock_dir):
    program = PASS_TO_PROCESS.replace("ARGS_BACKEND", repr(backend_name))
    out = run(tmp_path, program, FASTIPC, backend_name, sock_dir)
    expected = []
    for method in ("fork", "spawn", "forkserver"):
        expected += [f"{method} ({method!r}, True, {i})" for i in range(3)]
        expected.append(f"{method} exit 0")
    assert out.splitlines() == expected


# ---------------------------------------------------------------------------------------------
# interoperation with the standard library, in this process


def _serve_once(listener, results: list) -> threading.Thread:
    def serve() -> None:
        try:
            with listener.accept() as conn:
                results.append(conn.recv())
                conn.send("from the listener")
        except Exception as e:  # reported to the test
            results.append(e)

    t = threading.Thread(target=serve)
    t.start()
    return t


@pytest.mark.parametrize("where", ["tcp", "path"])
def test_stdlib_client_to_fastipc_listener(mpc, where, sock_dir):
    address = "tcp:127.0.0.1:0" if where == "tcp" else os.path.join(sock_dir, "interop.sock")
    with mpc.Listener(address, authkey=b"key") as listener:
        expected = ("127.0.0.1",) if where == "tcp" else address
        if where == "tcp":
            assert listener.address[0] == "127.0.0.1" and listener.address[1] > 0
        else:
            assert listener.address == expected
        results: list = []
        t = _serve_once(listener, results)
        with std.Client(listener.address, authkey=b"key") as conn:
            conn.send(["stdlib", 1])
            assert conn.recv() == "from the listener"
        t.join()
        assert results == [["stdlib", 1]]
        if where == "tcp":
            assert listener.last_accepted[0] == "127.0.0.1"
        else:
            assert listener.last_accepted == ""
        # A wrong key: the standard library's client is refused, our accept raises.
        t = _serve_once(listener, results)
        with pytest.raises(multiprocessing.AuthenticationError):
            std.Client(listener.address, authkey=b"other")
        t.join()
        assert type(results[-1]) is mpc.AuthenticationError
        assert isinstance(results[-1], multiprocessing.AuthenticationError)


@pytest.mark.parametrize("where", ["tuple", "path"])
def test_fastipc_client_to_stdlib_listener(mpc, backend, where, sock_dir):
    """A loopback tuple with no fastipc listener behind it reaches the standard library's TCP
    listener on that port."""
    address = ("127.0.0.1", 0) if where == "tuple" else os.path.join(sock_dir, "std.sock")
    with std.Listener(address, authkey=b"key") as listener:
        results: list = []
        t = _serve_once(listener, results)
        with mpc.Client(listener.address, authkey=b"key") as conn:
            assert isinstance(conn, backend.Connection)
            conn.send(("fastipc", 2))
            assert conn.recv() == "from the listener"
        t.join()
        assert results == [("fastipc", 2)]
        t = _serve_once(listener, results)
        with pytest.raises(mpc.AuthenticationError):
            mpc.Client(listener.address, authkey=b"other")
        t.join()
        assert isinstance(results[-1], multiprocessing.AuthenticationError)


def test_stdlib_client_cannot_reach_a_remapped_tuple(mpc):
    """The documented difference: a loopback tuple is a Unix socket, which a TCP client does not
    reach; fastipc's client does."""
    with mpc.Listener(("127.0.0.1", 0)) as listener:
        with pytest.raises(ConnectionRefusedError):
            std.Client(listener.address)
        results: list = []
        t = _serve_once(listener, results)
        with mpc.Client(listener.address) as conn:
            conn.send("remapped")
            assert conn.recv() == "from the listener"
        t.join()
        assert results == ["remapped"]
        assert listener.last_accepted == ("127.0.0.1", 0)


# ---------------------------------------------------------------------------------------------
# where fastipc.connection differs from fastipc.listen


def test_a_peer_without_the_handshake_is_an_authentication_error(mpc, monkeypatch):
    monkeypatch.setattr(mpc, "HANDSHAKE_TIMEOUT", 0.2)
    with mpc.Listener(("127.0.0.1", 0), authkey=b"key") as listener:
        results: list = []
        t = _serve_once(listener, results)
        silent = mpc.Client(listener.address)  # no key: it never answers the challenge
        start = time.monotonic()
        t.join(timeout=10)
        assert 0.2 <= time.monotonic() - start < 5
        assert type(results[0]) is mpc.AuthenticationError
        assert isinstance(results[0].__cause__, TimeoutError)
        silent.close()
        # The listener goes on: the next peer is served.
        t = _serve_once(listener, results)
        with mpc.Client(listener.address, authkey=b"key") as conn:
            conn.send("next")
            assert conn.recv() == "from the listener"
        t.join()
        assert results[1] == "next"


def test_unauthenticated_listener_off_loopback_warns(mpc):
    with pytest.warns(mpc.UnauthenticatedListenerWarning, match="without authkey"):
        listener = mpc.Listener(("0.0.0.0", 0))
    with listener:
        assert listener.address[0] == "0.0.0.0"
        assert listener.address[1] > 0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with mpc.Listener(("0.0.0.0", 0), authkey=b"key"):
            pass
        with mpc.Listener(("127.0.0.1", 0)):
            pass
        with mpc.Listener("tcp:127.0.0.1:0"):
            pass
    assert issubclass(mpc.UnauthenticatedListenerWarning, RuntimeWarning)
    # Warnings made errors: the listener is not left open behind the exception.
    with warnings.catch_warnings():
        warnings.simplefilter("error", mpc.UnauthenticatedListenerWarning)
        with pytest.raises(mpc.UnauthenticatedListenerWarning) as info:
            mpc.Listener(("0.0.0.0", 0))
    assert info.value.args[0].startswith("fastipc.connection.Listener on ('0.0.0.0', ")


def test_the_warning_points_at_the_caller(mpc):
    with pytest.warns(mpc.UnauthenticatedListenerWarning) as record:
        listener = mpc.Listener(("0.0.0.0", 0))
    listener.close()
    assert [w.filename for w in record] == [__file__]


def test_addresses_and_families(mpc, sock_dir):
    with mpc.Listener() as listener:
        assert isinstance(listener.address, str)
        assert os.path.basename(listener.address).startswith("listener-")
        assert listener.last_accepted is None
    assert not os.path.exists(listener.address)
    with mpc.Listener(family="AF_INET") as listener:
        assert listener.address[0] == "127.0.0.1"
    with mpc.Listener(family="AF_INET6") as listener:
        assert listener.address[:1] == ("::1",) and len(listener.address) == 4
        results: list = []
        t = _serve_once(listener, results)
        with mpc.Client(listener.address) as conn:
            conn.send(6)
            assert conn.recv() == "from the listener"
        t.join()
    if sys.platform.startswith("linux"):
        name = f"\0fastipc-test-{os.getpid()}"
        with mpc.Listener(name) as listener:
            assert listener.address == name
            with mpc.Client(name) as conn:
                assert mpc.wait([conn], timeout=0) == []
                listener.accept().close()
    with pytest.raises(ValueError, match="not recognized"):
        mpc.Listener(family="AF_PIPE")
    with pytest.raises(ValueError, match="unrecognized"):
        mpc.Client(42)
    with pytest.raises(TypeError, match="byte string"):
        mpc.Listener(authkey="text")
    with pytest.raises(TypeError):
        mpc.Listener("a path", family="AF_INET")
    assert mpc.address_type(("h", 1)) == std.address_type(("h", 1)) == "AF_INET"
    assert mpc.address_type("/p") == std.address_type("/p") == "AF_UNIX"


def test_closed_listener_and_the_challenge_functions(mpc):
    listener = mpc.Listener(("127.0.0.1", 0))
    assert repr(listener).startswith("<fastipc.connection.Listener ('127.0.0.1', ")
    listener.close()
    listener.close()
    assert repr(listener).endswith(" closed>")
    with pytest.raises(OSError, match="closed"):
        listener.accept()
    a, b = mpc.Pipe()
    with a, b:
        with pytest.raises(ValueError, match="bytes"):
            mpc.deliver_challenge(a, "text")
        t = threading.Thread(target=mpc.answer_challenge, args=(b, b"k"))
        t.start()
        mpc.deliver_challenge(a, b"k")
        t.join()
        errors: list = []

        def answer() -> None:
            try:
                mpc.answer_challenge(b, b"wrong")
            except mpc.AuthenticationError as e:
                errors.append(e)

        t = threading.Thread(target=answer)
        t.start()
        with pytest.raises(mpc.AuthenticationError):
            mpc.deliver_challenge(a, b"k")
        t.join()
        assert len(errors) == 1


def test_messages_of_any_size_as_the_stdlib(mpc):
    """No 64 MiB limit (fastipc's default): the standard library has none."""
    import fastipc

    big = b"m" * (fastipc.DEFAULT_MAX_MESSAGE + 1)
    a, b = mpc.Pipe()
    with a, b:
        assert a.max_message == b.max_message == mpc.MAX_MESSAGE
        t = threading.Thread(target=a.send_bytes, args=(big,))
        t.start()
        assert b.recv_bytes() == big
        t.join()
    with mpc.Listener(("127.0.0.1", 0)) as listener:
        results: list = []
        t = _serve_once(listener, results)
        with mpc.Client(listener.address) as conn:
            assert conn.max_message == mpc.MAX_MESSAGE
            conn.send(big)
            assert conn.recv() == "from the listener"
        t.join()
        assert results == [big]


def test_one_way_pipe(mpc):
    r, w = mpc.Pipe(duplex=False)
    with r, w:
        w.send("down")
        assert r.recv() == "down"
        with pytest.raises(BrokenPipeError):
            r.send("up")
        with pytest.raises(EOFError):
            w.recv()


def test_the_module_has_the_stdlib_names(mpc):
    import inspect

    for name in [*std.__all__, "answer_challenge", "deliver_challenge", "Connection"]:
        assert hasattr(mpc, name), name

    def params(f: object) -> list[tuple[str, object]]:
        return [(p.name, p.default) for p in inspect.signature(f).parameters.values()]  # type: ignore[arg-type]

    for name in ("Listener", "Client", "Pipe", "wait"):
        assert params(getattr(mpc, name)) == params(getattr(std, name)), name
    # 3.12 added deliver_challenge's digest_name, which fastipc has on every version.
    empty = inspect.Parameter.empty
    assert params(mpc.answer_challenge) == [("connection", empty), ("authkey", empty)]
    assert params(mpc.deliver_challenge) == [
        ("connection", empty),
        ("authkey", empty),
        ("digest_name", "sha256"),
    ]
    assert params(std.answer_challenge) == params(mpc.answer_challenge)
    assert (
        params(std.deliver_challenge)
        == params(mpc.deliver_challenge)[: len(params(std.deliver_challenge))]
    )
    assert issubclass(mpc.AuthenticationError, multiprocessing.AuthenticationError)
    assert issubclass(mpc.BufferTooShort, multiprocessing.BufferTooShort)


# ---------------------------------------------------------------------------------------------
# the standard library of Python 3.12+ ({sha256} challenges), where pyenv has it


def _newer_client(python: str, target: str, family: str, key: bytes) -> subprocess.Popen:
    return subprocess.Popen(
        [python, "-c", NEW_CLIENT, target, family, key.decode()],
        stdout=subprocess.PIPE,
        text=True,
    )


def _outcome(child: subprocess.Popen) -> str:
    try:
        out, _ = child.communicate(timeout=30)
    finally:
        child.kill()
        child.wait()
    return out.strip()


@pytest.mark.skipif(not NEWER, reason="no Python 3.12+ interpreter on this machine (pyenv)")
@pytest.mark.parametrize("python", NEWER)
@pytest.mark.parametrize("where", ["tcp", "path"])
def test_newer_stdlib_client_to_listener(mpc, python, where, sock_dir):
    address = "tcp:127.0.0.1:0" if where == "tcp" else os.path.join(sock_dir, "new.sock")
    with mpc.Listener(address, authkey=b"key") as listener:
        if where == "tcp":
            target, family = "{}:{}".format(*listener.address), "AF_INET"
        else:
            target, family = listener.address, "AF_UNIX"
        child = _newer_client(python, target, family, b"key")
        with listener.accept() as conn:
            conn.send_bytes(b"abc")
            assert conn.recv_bytes() == b"cba"
        assert _outcome(child) == "ok"
        child = _newer_client(python, target, family, b"wrong")
        with pytest.raises(mpc.AuthenticationError):
            listener.accept()
        assert _outcome(child) == "AuthenticationError"


@pytest.mark.skipif(not NEWER, reason="no Python 3.12+ interpreter on this machine (pyenv)")
@pytest.mark.parametrize("python", NEWER)
def test_client_to_newer_stdlib_listener(mpc, python):
    """A loopback tuple naming a standard-library TCP listener, as a program would."""
    child = subprocess.Popen([python, "-c", NEW_LISTENER, "key"], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None
        port = int(child.stdout.readline())
        with mpc.Client(("127.0.0.1", port), authkey=b"key") as conn:
            conn.send_bytes(b"ab")
            assert conn.recv_bytes() == b"abab"
        assert child.stdout.readline().split() == ["ok"]
        with pytest.raises(mpc.AuthenticationError):
            mpc.Client(("127.0.0.1", port), authkey=b"wrong")
        assert child.stdout.readline().split() == ["AuthenticationError"]
        child.wait(timeout=10)
    finally:
        child.kill()
        child.wait()
        if child.stdout is not None:
            child.stdout.close()
