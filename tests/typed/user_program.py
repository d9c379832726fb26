"""A user's program, typed as a user would type it: ``mypy --strict`` accepts it without a single
cast (``tests/test_typing.py``), and it runs (exit 0, nothing left behind).

``recv()`` is ``Any``, as ``multiprocessing.connection.Connection.recv``: what comes back is
whatever the peer sent, and the program says what it expects by annotating. ``fromfd(...,
kind=...)`` tells the type checker which class it returns.
"""

from __future__ import annotations

import os
import socket
import threading

import fastipc
import fastipc.connection as mpc


def serve_once(server: fastipc.Listener) -> None:
    with server.accept(timeout=5) as conn:
        creds: fastipc.Credentials = conn.peer_credentials()
        request: dict[str, int] = conn.recv()
        conn.send({"uid": creds.uid, "doubled": 2 * request["n"]})


def ask(address: str) -> dict[str, int]:
    with fastipc.connect(address, timeout=5) as conn:
        conn.settimeout(5.0)
        conn.send({"n": 21})
        reply: dict[str, int] = conn.recv()
        return reply


def sockets() -> None:
    with fastipc.listen("127.0.0.1:0", allow_uids=[os.getuid()]) as server:
        with fastipc.connect(server.address, timeout=5) as client:
            client.send({"n": 21})
            serve_once(server)
            reply: dict[str, int] = client.recv()
            assert reply == {"uid": os.getuid(), "doubled": 42}
    a, b = fastipc.socketpair("seqpacket")
    with a, b:
        a.send_bytes(b"ping")
        data: bytes = b.recv_bytes()
        b.send([len(data)])
        lengths: list[int] = a.recv()
        assert lengths == [4]


def adopted() -> None:
    s1, s2 = socket.socketpair()
    with s1, s2, fastipc.fromfd(s2, kind="stream", address="peer") as conn:
        s1.sendall(len(b"hi").to_bytes(4, "big") + b"hi")  # the framing of multiprocessing
        message: bytes = conn.recv_bytes()
        assert message == b"hi"
    d1, d2 = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    with d1, d2, fastipc.fromfd(d2.fileno(), kind="datagram") as dgram:
        d1.send(b"datagram")
        payload: bytes = dgram.recv(64)
        assert payload == b"datagram"
    x, y = fastipc.socketpair("datagram")
    with x, y, fastipc.fromfd(y) as either:  # no kind: Connection | DatagramSocket
        assert isinstance(either, fastipc.DatagramSocket)
        x.send(b"narrowed")
        assert either.recv(64) == b"narrowed"


def drop_in() -> None:
    """A program written for multiprocessing.connection, on fastipc.connection."""
    with mpc.Listener(("localhost", 0), authkey=b"key") as listener:
        host, port = listener.address
        assert host == "127.0.0.1" and port > 0

        def serve() -> None:
            with listener.accept() as conn:
                conn.send(conn.recv() * 2)

        server = threading.Thread(target=serve)
        server.start()
        with mpc.Client(listener.address, authkey=b"key") as client:
            client.send(21)
            answer: int = client.recv()
            assert answer == 42
        server.join()
    a, b = mpc.Pipe()
    with a, b:
        b.send_bytes(b"ready")
        ready: list[mpc.Connection] = mpc.wait([a], timeout=5)
        assert ready == [a] and a.recv_bytes() == b"ready"


def shared_memory() -> None:
    shm = fastipc.SharedMemory(create=True, size=4096)
    ready = fastipc.Semaphore(create=True, value=0)
    try:
        view: memoryview = shm.buf
        view[:5] = b"hello"
        ready.release()
        acquired: bool = ready.acquire(timeout=1)
        assert acquired
        name: str | None = shm.name
        assert name is not None
        with fastipc.SharedMemory(name) as other:
            assert bytes(other.buf[:5]) == b"hello"
        del view
    finally:
        shm.close()
        shm.unlink()
        ready.close()
        ready.unlink()


def main() -> None:
    sockets()
    adopted()
    drop_in()
    shared_memory()
    print("ok")


if __name__ == "__main__":
    main()
