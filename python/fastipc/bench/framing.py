"""What several mechanisms of ``fastipc bench`` share: the echo and client sides of framed
connections (``send_bytes``/``recv_bytes``, as fastipc and ``multiprocessing.connection`` have
them) and of length-prefixed messages on a stdlib stream socket (framed in Python as a careful
user would), and the bases of the listening mechanisms on a stdlib ``AF_UNIX`` socket and on
``fastipc.listen``. Nothing here is registered.
"""

from __future__ import annotations

import contextlib
import functools
import os
import socket
import struct
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, ClassVar, Literal, Protocol

from typing_extensions import Buffer

from .base import Client, Echo, Env, ListenerMechanism, Server, drain_loop

if TYPE_CHECKING:
    from .._fastipc import Connection, Listener

__all__ = [
    "CONNECT_TIMEOUT",
    "HEADER",
    "FastipcListenerServer",
    "FastipcListening",
    "FramedClient",
    "FramedConnection",
    "FramedEcho",
    "FramedIntoClient",
    "SocketClient",
    "SocketEcho",
    "SocketServer",
    "UnixSocketListening",
    "or_none",
    "recv_exact_into",
]

CONNECT_TIMEOUT = 10.0

HEADER = struct.Struct("!i")
"""The length prefix of a message on a stdlib stream socket."""
# Messages up to this size are sent as one concatenated buffer, larger ones with a vectored send
# (the same threshold as multiprocessing.connection).
_CONCAT_LIMIT = 16384


def or_none(recv: Callable[[], bytes]) -> Callable[[], bytes | None]:
    def first() -> bytes | None:
        try:
            return recv()
        except EOFError:
            return None

    return first


# -- framed connections: fastipc.Connection and multiprocessing.connection.Connection -------------


class FramedConnection(Protocol):
    def send_bytes(self, buf: Buffer, offset: int = 0, size: int | None = None) -> None: ...
    def recv_bytes(self, maxlength: int | None = None) -> bytes: ...
    def recv_bytes_into(self, buf: Buffer, offset: int = 0) -> int: ...
    def close(self) -> None: ...


class FramedEcho:
    """Echo with ``recv_bytes_into`` a preallocated buffer and ``send_bytes`` of its start."""

    def __init__(self, conn: FramedConnection, max_size: int) -> None:
        self.conn = conn
        self.max_size = max_size

    def serve(self) -> None:
        buf = bytearray(self.max_size)
        recv_into = self.conn.recv_bytes_into
        send = self.conn.send_bytes
        while True:
            try:
                n = recv_into(buf)
            except EOFError:
                return
            send(buf, 0, n)

    def drain(self) -> None:
        buf = bytearray(self.max_size)
        drain_loop(
            or_none(self.conn.recv_bytes),
            functools.partial(self.conn.recv_bytes_into, buf),
            self.conn.send_bytes,
        )

    def close(self) -> None:
        self.conn.close()


class FramedClient:
    """``send_bytes(payload)`` and ``recv_bytes()``: a new ``bytes`` per message, as users do."""

    def __init__(self, conn: FramedConnection) -> None:
        self.conn = conn

    def sender(self) -> Callable[[bytes], object]:
        return self.conn.send_bytes

    def receiver(self) -> Callable[[], object]:
        return self.conn.recv_bytes

    def received(self, result: object) -> bytes:
        assert isinstance(result, bytes)
        return result

    def close(self) -> None:
        self.conn.close()


class FramedIntoClient(FramedClient):
    """``send_bytes(payload)`` and ``recv_bytes_into`` one preallocated buffer."""

    def __init__(self, conn: FramedConnection, max_size: int) -> None:
        super().__init__(conn)
        self.buf = bytearray(max_size)

    def receiver(self) -> Callable[[], object]:
        return functools.partial(self.conn.recv_bytes_into, self.buf)

    def received(self, result: object) -> bytes:
        assert isinstance(result, int)
        return bytes(self.buf[:result])


# -- length-prefixed messages on a stdlib stream socket ------------------------------------------


def recv_exact_into(recv_into: Callable[[memoryview, int], int], view: memoryview) -> bool:
    """Fill ``view``; False on end of file before the first byte."""
    n = len(view)
    got = recv_into(view, n)
    if got == n:
        return True
    if got == 0:
        return False
    while got < n:
        k = recv_into(view[got:], n - got)
        if k == 0:
            raise EOFError(f"connection closed after {got} of {n} bytes")
        got += k
    return True


class SocketEcho:
    """Length-prefixed echo on a stdlib stream socket: one ``sendall`` of header and payload."""

    def __init__(self, sock: socket.socket, max_size: int) -> None:
        self.sock = sock
        self.max_size = max_size

    def serve(self) -> None:
        buf = bytearray(HEADER.size + self.max_size)
        view = memoryview(buf)
        header = view[: HEADER.size]
        recv_into = self.sock.recv_into
        sendall = self.sock.sendall
        unpack_from = HEADER.unpack_from
        with view, header:
            while True:
                if not recv_exact_into(recv_into, header):
                    return
                (n,) = unpack_from(buf)
                end = HEADER.size + n
                if n and not recv_exact_into(recv_into, view[HEADER.size : end]):
                    raise EOFError("connection closed inside a message")
                sendall(view[:end])

    def drain(self) -> None:
        client = SocketClient(self.sock, self.max_size)
        recv = client.receiver()

        def first() -> bytes | None:
            try:
                n = recv()
            except EOFError:
                return None
            assert isinstance(n, int)
            return client.received(n)

        drain_loop(first, recv, client.sender())  # type: ignore[arg-type]

    def close(self) -> None:
        self.sock.close()


class SocketClient:
    """Length-prefixed messages on a stdlib stream socket, written as a careful user would.

    Send: one ``sendall`` of header + payload up to 16 KiB, a vectored ``sendmsg`` above (no copy
    of the payload). Receive: ``recv_into`` a 4-byte header, then ``recv_into`` a preallocated
    buffer; the receiver returns the length.
    """

    def __init__(self, sock: socket.socket, max_size: int) -> None:
        self.sock = sock
        self.buf = bytearray(max_size)

    def sender(self) -> Callable[[bytes], object]:
        sendall = self.sock.sendall
        sendmsg = self.sock.sendmsg
        pack = HEADER.pack

        def send(payload: bytes) -> None:
            n = len(payload)
            if n <= _CONCAT_LIMIT:
                sendall(pack(n) + payload)
                return
            header = pack(n)
            sent = sendmsg([header, payload])
            if sent < HEADER.size + n:  # a partial send (a signal): finish the job
                if sent < HEADER.size:
                    sendall(header[sent:])
                    sent = HEADER.size
                sendall(memoryview(payload)[sent - HEADER.size :])

        return send

    def receiver(self) -> Callable[[], object]:
        recv_into = self.sock.recv_into
        header = bytearray(HEADER.size)
        header_view = memoryview(header)
        view = memoryview(self.buf)
        unpack_from = HEADER.unpack_from

        def recv() -> int:
            if not recv_exact_into(recv_into, header_view):
                raise EOFError("connection closed")
            (n,) = unpack_from(header)
            if n and not recv_exact_into(recv_into, view[:n] if n < len(view) else view):
                raise EOFError("connection closed inside a message")
            return int(n)

        return recv

    def received(self, result: object) -> bytes:
        assert isinstance(result, int)
        return bytes(self.buf[:result])

    def close(self) -> None:
        self.sock.close()


class SocketServer:
    """A listening stdlib socket whose connections are :class:`SocketEcho` sides."""

    def __init__(self, sock: socket.socket, address: str, max_size: int) -> None:
        self.sock = sock
        self._address = address
        self.max_size = max_size

    @property
    def address(self) -> str:
        return self._address

    def accept(self, timeout: float) -> Echo:
        self.sock.settimeout(timeout)
        conn, _ = self.sock.accept()
        conn.settimeout(None)
        if conn.family != getattr(socket, "AF_UNIX", None):
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return SocketEcho(conn, self.max_size)

    def close(self) -> None:
        path = self.sock.getsockname() if self.sock.family != socket.AF_INET else None
        self.sock.close()
        if isinstance(path, str) and path:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)


class UnixSocketListening(ListenerMechanism):
    """The base of the mechanisms on a stdlib ``AF_UNIX`` stream socket (not registered):
    :meth:`server` and :meth:`client` make the echo and client sides of the sockets."""

    def unavailable(self) -> str | None:
        if not hasattr(socket, "AF_UNIX"):
            return "no AF_UNIX here"
        return None

    def listen(self, env: Env) -> Server:
        path = os.path.join(env.socket_dir, f"{self.name}-{os.getpid()}.sock")
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.bind(path)
            sock.listen(1)
        except BaseException:
            sock.close()
            raise
        return self.server(sock, path, env.max_size)

    def connect(self, env: Env, address: str) -> Client:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(CONNECT_TIMEOUT)
            sock.connect(address)
            sock.settimeout(None)
        except BaseException:
            sock.close()
            raise
        return self.client(sock, env.max_size)

    def server(self, sock: socket.socket, path: str, max_size: int) -> Server:
        return SocketServer(sock, path, max_size)

    def client(self, sock: socket.socket, max_size: int) -> Client:
        return SocketClient(sock, max_size)


# -- fastipc's listeners ---------------------------------------------------------------------------


class FastipcListenerServer:
    """A fastipc listener whose connections are :class:`FramedEcho` sides."""

    def __init__(self, listener: Listener, max_size: int) -> None:
        self.listener = listener
        self.max_size = max_size

    @property
    def address(self) -> str:
        return self.listener.address

    def accept(self, timeout: float) -> Echo:
        return FramedEcho(self.listener.accept(timeout), self.max_size)

    def close(self) -> None:
        self.listener.close()


class FastipcListening(ListenerMechanism):
    """The base of the mechanisms on ``fastipc.listen``/``fastipc.connect`` (not registered)."""

    uses_fastipc = True
    listen_address: ClassVar[str] = "127.0.0.1:0"
    kind: ClassVar[Literal["stream", "seqpacket"]] = "stream"
    recv_into: ClassVar[bool] = False

    def listen(self, env: Env) -> Server:
        listener: Listener = env.fastipc().listen(
            self.listen_address,
            kind=self.kind,
            socket_dir=env.socket_dir,
            max_message=env.max_message,
        )
        return FastipcListenerServer(listener, env.max_size)

    def unavailable(self) -> str | None:
        if sys.platform == "win32" and not self.listen_address.startswith("tcp:"):
            return "no remapping on Windows (it is TCP there)"
        return None

    def connect(self, env: Env, address: str) -> Client:
        conn: Connection = env.fastipc().connect(
            address,
            kind=self.kind,
            timeout=CONNECT_TIMEOUT,
            socket_dir=env.socket_dir,
            max_message=env.max_message,
        )
        if self.recv_into:
            return FramedIntoClient(conn, env.max_size)
        return FramedClient(conn)
