"""The mechanisms that ``fastipc bench`` and ``benches/`` measure.

A mechanism is one way of carrying a message to another process and back. Each one provides an
echo side, which runs in a separate process and returns every message it receives, and a client
side, which sends a message and waits for it to come back. There are two topologies:

- :class:`ListenerMechanism`: the echo process listens and reports an address; the client connects.
- :class:`PairMechanism`: the client process creates a connected pair and forks the echo process
  (a connected pair cannot be handed to an unrelated process otherwise).

To add a mechanism, subclass one of them and decorate the class with :func:`register`. The
timing loop calls ``send(payload)`` then ``recv()``, the two callables a :class:`Client` returns;
make them bound methods of the transport where possible, so that the loop adds no Python frame.
"""

from __future__ import annotations

import abc
import contextlib
import functools
import multiprocessing
import multiprocessing.connection
import os
import socket
import struct
import sys
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import TYPE_CHECKING, ClassVar, Literal, Protocol, TypeVar

from typing_extensions import Buffer

from . import _backend

if TYPE_CHECKING:
    from ._fastipc import Connection, Listener

__all__ = [
    "REFERENCE",
    "REGISTRY",
    "Client",
    "Echo",
    "Env",
    "ListenerMechanism",
    "Mechanism",
    "PairMechanism",
    "Server",
    "register",
]

Topology = Literal["listener", "pair", "external"]

#: The mechanism every other one is compared with.
REFERENCE = "mp-pipe"

ACCEPT_TIMEOUT = 30.0
CONNECT_TIMEOUT = 10.0

_HEADER = struct.Struct("!i")
# Messages up to this size are sent as one concatenated buffer, larger ones with a vectored send
# (the same threshold as multiprocessing.connection).
_CONCAT_LIMIT = 16384


@dataclass(frozen=True)
class Env:
    """What a mechanism needs to know to set itself up."""

    socket_dir: str
    """A private directory for socket files, removed by whoever created it."""
    max_size: int
    """The largest message the echo side must be able to return."""
    impl: ModuleType | None = None
    """The fastipc backend module; ``None`` for the one ``import fastipc`` chose."""

    def fastipc(self) -> ModuleType:
        if self.impl is not None:
            return self.impl
        return _backend.load()

    @property
    def max_message(self) -> int:
        """A ``max_message`` for fastipc connections large enough for every message."""
        default: int = self.fastipc().DEFAULT_MAX_MESSAGE
        return max(default, self.max_size + 16)


class Echo(Protocol):
    """The echo side of a connection."""

    def serve(self) -> None:
        """Return every message until the client closes the connection."""

    def drain(self) -> None:
        """The receiving side of the one-way stream, until the client closes the connection:
        batches of a count message (ASCII digits), that many messages, then one message back
        with the number of payload bytes received (ASCII digits). See :func:`drain_loop`."""

    def close(self) -> None: ...


class Client(Protocol):
    """The client side of a connection."""

    def sender(self) -> Callable[[bytes], object]:
        """A callable that sends one message."""

    def receiver(self) -> Callable[[], object]:
        """A callable that receives one message and returns it, or its length."""

    def received(self, result: object) -> bytes:
        """The message that a call of the receiver returned ``result`` for (for verification)."""

    def close(self) -> None: ...


class Server(Protocol):
    """A listening echo side."""

    @property
    def address(self) -> str:
        """What the client passes to :meth:`ListenerMechanism.connect`."""

    def accept(self, timeout: float) -> Echo: ...

    def close(self) -> None: ...


class Mechanism(abc.ABC):
    """One way of doing a round trip: see :class:`ListenerMechanism` and :class:`PairMechanism`."""

    name: ClassVar[str]
    summary: ClassVar[str]
    topology: ClassVar[Topology]
    uses_fastipc: ClassVar[bool] = False
    counterpart: ClassVar[str | None] = None
    """The stdlib mechanism this one is compared with (besides the reference)."""
    default: ClassVar[bool] = True
    """Whether ``fastipc bench`` runs it when ``--mechanisms`` is not given."""
    family: ClassVar[str] = "stdlib"
    """``fastipc``, ``stdlib``, ``optional`` (a package of the ``bench`` extra) or ``limit``."""

    def unavailable(self) -> str | None:
        """Why this mechanism cannot run here, or ``None`` if it can."""
        return None


class ListenerMechanism(Mechanism):
    topology: ClassVar[Topology] = "listener"

    @abc.abstractmethod
    def listen(self, env: Env) -> Server: ...

    @abc.abstractmethod
    def connect(self, env: Env, address: str) -> Client: ...


class PairMechanism(Mechanism):
    topology: ClassVar[Topology] = "pair"

    def unavailable(self) -> str | None:
        if not hasattr(os, "fork"):
            return "needs os.fork to give one end of the pair to another process"
        return None

    @abc.abstractmethod
    def pair(self, env: Env) -> tuple[Client, Echo]: ...


REGISTRY: dict[str, Mechanism] = {}

FAMILIES = ("limit", "stdlib", "optional", "fastipc")
"""The order of the rows in a table: the machine's limit, the alternatives, then fastipc."""

_M = TypeVar("_M", bound=type[Mechanism])


def register(cls: _M) -> _M:
    """Class decorator: add an instance of ``cls`` to :data:`REGISTRY`."""
    if cls.name in REGISTRY:
        raise ValueError(f"mechanism {cls.name!r} is registered twice")
    REGISTRY[cls.name] = cls()
    return cls


def drain_loop(
    first: Callable[[], bytes | None],
    receive: Callable[[], int],
    ack: Callable[[bytes], object],
) -> None:
    """The stream protocol of :meth:`Echo.drain` on three primitives: ``first`` receives the
    count message (``None`` at end of file), ``receive`` one message and returns its length,
    ``ack`` sends a message back."""
    while True:
        count = first()
        if count is None:
            return
        total = 0
        for _ in range(int(count)):
            total += receive()
        ack(str(total).encode())


def _or_none(recv: Callable[[], bytes]) -> Callable[[], bytes | None]:
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
            _or_none(self.conn.recv_bytes),
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


# -- the standard library ------------------------------------------------------------------------


@register
class MultiprocessingPipe(PairMechanism):
    name = REFERENCE
    summary = "multiprocessing.Pipe(): send_bytes/recv_bytes, one end forked (reference)"

    def pair(self, env: Env) -> tuple[Client, Echo]:
        client, echo = multiprocessing.Pipe()
        return FramedClient(client), FramedEcho(echo, env.max_size)


def _recv_exact_into(recv_into: Callable[[memoryview, int], int], view: memoryview) -> bool:
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
        buf = bytearray(_HEADER.size + self.max_size)
        view = memoryview(buf)
        header = view[: _HEADER.size]
        recv_into = self.sock.recv_into
        sendall = self.sock.sendall
        unpack_from = _HEADER.unpack_from
        with view, header:
            while True:
                if not _recv_exact_into(recv_into, header):
                    return
                (n,) = unpack_from(buf)
                end = _HEADER.size + n
                if n and not _recv_exact_into(recv_into, view[_HEADER.size : end]):
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
        pack = _HEADER.pack

        def send(payload: bytes) -> None:
            n = len(payload)
            if n <= _CONCAT_LIMIT:
                sendall(pack(n) + payload)
                return
            header = pack(n)
            sent = sendmsg([header, payload])
            if sent < _HEADER.size + n:  # a partial send (a signal): finish the job
                if sent < _HEADER.size:
                    sendall(header[sent:])
                    sent = _HEADER.size
                sendall(memoryview(payload)[sent - _HEADER.size :])

        return send

    def receiver(self) -> Callable[[], object]:
        recv_into = self.sock.recv_into
        header = bytearray(_HEADER.size)
        header_view = memoryview(header)
        view = memoryview(self.buf)
        unpack_from = _HEADER.unpack_from

        def recv() -> int:
            if not _recv_exact_into(recv_into, header_view):
                raise EOFError("connection closed")
            (n,) = unpack_from(header)
            if n and not _recv_exact_into(recv_into, view[:n] if n < len(view) else view):
                raise EOFError("connection closed inside a message")
            return int(n)

        return recv

    def received(self, result: object) -> bytes:
        assert isinstance(result, int)
        return bytes(self.buf[:result])

    def close(self) -> None:
        self.sock.close()


class _SocketServer:
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


@register
class SocketUnix(ListenerMechanism):
    name = "socket-unix"
    summary = "stdlib AF_UNIX stream socket, 4-byte length prefix framed in Python"

    def unavailable(self) -> str | None:
        if not hasattr(socket, "AF_UNIX"):
            return "no AF_UNIX here"
        return None

    def listen(self, env: Env) -> Server:
        path = os.path.join(env.socket_dir, f"socket-unix-{os.getpid()}.sock")
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.bind(path)
            sock.listen(1)
        except BaseException:
            sock.close()
            raise
        return _SocketServer(sock, path, env.max_size)

    def connect(self, env: Env, address: str) -> Client:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(CONNECT_TIMEOUT)
            sock.connect(address)
            sock.settimeout(None)
        except BaseException:
            sock.close()
            raise
        return SocketClient(sock, env.max_size)


@register
class SocketTcp(ListenerMechanism):
    name = "socket-tcp"
    summary = "stdlib TCP loopback socket with TCP_NODELAY, the same framing"

    def listen(self, env: Env) -> Server:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.bind(("127.0.0.1", 0))
            sock.listen(1)
        except BaseException:
            sock.close()
            raise
        host, port = sock.getsockname()
        return _SocketServer(sock, f"{host}:{port}", env.max_size)

    def connect(self, env: Env, address: str) -> Client:
        host, _, port = address.rpartition(":")
        sock = socket.create_connection((host, int(port)), timeout=CONNECT_TIMEOUT)
        try:
            sock.settimeout(None)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except BaseException:
            sock.close()
            raise
        return SocketClient(sock, env.max_size)


# -- descriptor passing: one descriptor rides with every message -----------------------------------


def _null_fd() -> int:
    """The descriptor a descriptor-passing client sends with every message."""
    return os.open(os.devnull, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))


def _close_fds(fds: list[int]) -> None:
    for fd in fds:
        os.close(fd)


def _recv_frame_fds(sock: socket.socket, bufsize: int) -> tuple[bytes, list[int]] | None:
    """One length-prefixed frame read with ``socket.recv_fds`` (the descriptors ride on its first
    bytes); ``None`` at end of file."""
    data, fds, _, _ = socket.recv_fds(sock, bufsize, 1)
    if not data:
        return None
    while len(data) < _HEADER.size:
        more = sock.recv(_HEADER.size - len(data))
        if not more:
            raise EOFError("connection closed inside a message header")
        data += more
    end = _HEADER.size + _HEADER.unpack_from(data)[0]
    if len(data) < end:
        rest = bytearray(end - len(data))
        with memoryview(rest) as view:
            if not _recv_exact_into(sock.recv_into, view):
                raise EOFError("connection closed inside a message")
        data += rest
    return data, fds


def _send_frame_fds(sock: socket.socket, frame: Buffer, fds: list[int]) -> None:
    sent = socket.send_fds(sock, [frame], fds)
    with memoryview(frame) as view:
        if sent < len(view):  # a partial send: the rest goes without descriptors
            sock.sendall(view[sent:])


class SocketFdsEcho:
    """Echo on a stdlib stream socket with ``socket.recv_fds``/``socket.send_fds``: every frame
    goes back with the descriptors that came with it (then closed)."""

    def __init__(self, sock: socket.socket, max_size: int) -> None:
        self.sock = sock
        self.bufsize = _HEADER.size + max_size

    def serve(self) -> None:
        sock, bufsize = self.sock, self.bufsize
        while True:
            got = _recv_frame_fds(sock, bufsize)
            if got is None:
                return
            frame, fds = got
            try:
                _send_frame_fds(sock, frame, fds)
            finally:
                _close_fds(fds)

    def drain(self) -> None:
        SocketEcho(self.sock, self.bufsize - _HEADER.size).drain()

    def close(self) -> None:
        self.sock.close()


class SocketFdsClient:
    """Length-prefixed frames with one descriptor each, by ``socket.send_fds`` and
    ``socket.recv_fds``; the descriptor that comes back is closed."""

    def __init__(self, sock: socket.socket, max_size: int) -> None:
        self.sock = sock
        self.bufsize = _HEADER.size + max_size
        self.fd = _null_fd()

    def sender(self) -> Callable[[bytes], object]:
        sock, fds, pack = self.sock, [self.fd], _HEADER.pack

        def send(payload: bytes) -> None:
            _send_frame_fds(sock, pack(len(payload)) + payload, fds)

        return send

    def receiver(self) -> Callable[[], object]:
        sock, bufsize = self.sock, self.bufsize

        def recv() -> bytes:
            got = _recv_frame_fds(sock, bufsize)
            if got is None:
                raise EOFError("connection closed")
            frame, fds = got
            _close_fds(fds)
            return frame

        return recv

    def received(self, result: object) -> bytes:
        assert isinstance(result, bytes)
        return result[_HEADER.size :]

    def close(self) -> None:
        self.sock.close()
        os.close(self.fd)


class _SocketFdsServer(_SocketServer):
    def accept(self, timeout: float) -> Echo:
        self.sock.settimeout(timeout)
        conn, _ = self.sock.accept()
        conn.settimeout(None)
        return SocketFdsEcho(conn, self.max_size)


@register
class SocketUnixFds(SocketUnix):
    name = "socket-unix-fds"
    summary = "stdlib AF_UNIX stream socket, socket.send_fds/recv_fds with one descriptor a message"
    default = False

    def listen(self, env: Env) -> Server:
        server = super().listen(env)
        assert isinstance(server, _SocketServer)
        return _SocketFdsServer(server.sock, server.address, env.max_size)

    def connect(self, env: Env, address: str) -> Client:
        client = super().connect(env, address)
        assert isinstance(client, SocketClient)
        return SocketFdsClient(client.sock, env.max_size)


# -- fastipc --------------------------------------------------------------------------------------


class _FastipcListenerServer:
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


class _FastipcListening(ListenerMechanism):
    uses_fastipc = True
    listen_address: ClassVar[str]
    kind: ClassVar[Literal["stream", "seqpacket"]] = "stream"
    recv_into: ClassVar[bool] = False

    def listen(self, env: Env) -> Server:
        listener: Listener = env.fastipc().listen(
            self.listen_address,
            kind=self.kind,
            socket_dir=env.socket_dir,
            max_message=env.max_message,
        )
        return _FastipcListenerServer(listener, env.max_size)

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


@register
class FastipcUnix(_FastipcListening):
    name = "fastipc-unix"
    summary = 'fastipc.listen("127.0.0.1:0"): remapped to a Unix stream socket'
    listen_address = "127.0.0.1:0"
    counterpart = "socket-unix"

    def unavailable(self) -> str | None:
        if sys.platform == "win32":
            return "no remapping on Windows (it is TCP there)"
        return None


@register
class FastipcUnixInto(FastipcUnix):
    name = "fastipc-unix-into"
    summary = "fastipc-unix, receiving with recv_bytes_into a preallocated buffer"
    recv_into = True


@register
class FastipcSeqpacket(_FastipcListening):
    name = "fastipc-seqpacket"
    summary = 'fastipc.listen("127.0.0.1:0", kind="seqpacket"): one packet per message'
    listen_address = "127.0.0.1:0"
    kind = "seqpacket"
    counterpart = "socket-unix"

    def unavailable(self) -> str | None:
        if sys.platform == "win32" or not hasattr(socket, "SOCK_SEQPACKET"):
            return "no Unix seqpacket sockets on this platform"
        return None


@register
class FastipcTcp(_FastipcListening):
    name = "fastipc-tcp"
    summary = 'fastipc.listen("tcp:127.0.0.1:0"): TCP loopback'
    listen_address = "tcp:127.0.0.1:0"
    counterpart = "socket-tcp"


class FastipcFdsEcho:
    """Echo with ``recv_bytes_and_fds``/``send_bytes(..., fds=)``: every message goes back with
    the descriptors that came with it (then closed)."""

    def __init__(self, conn: Connection, max_size: int = 1 << 20) -> None:
        self.conn = conn
        self.max_size = max_size

    def serve(self) -> None:
        recv = self.conn.recv_bytes_and_fds
        send = self.conn.send_bytes
        while True:
            try:
                data, fds = recv()
            except EOFError:
                return
            try:
                send(data, fds=fds)
            finally:
                _close_fds(fds)

    def drain(self) -> None:
        FramedEcho(self.conn, self.max_size).drain()

    def close(self) -> None:
        self.conn.close()


class FastipcFdsClient:
    """``send_bytes(payload, fds=[fd])`` and ``recv_bytes_and_fds()``; the descriptor that comes
    back is closed."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.fd = _null_fd()

    def sender(self) -> Callable[[bytes], object]:
        return functools.partial(self.conn.send_bytes, fds=(self.fd,))

    def receiver(self) -> Callable[[], object]:
        recv = self.conn.recv_bytes_and_fds

        def receive() -> bytes:
            data, fds = recv()
            _close_fds(fds)
            return data

        return receive

    def received(self, result: object) -> bytes:
        assert isinstance(result, bytes)
        return result

    def close(self) -> None:
        self.conn.close()
        os.close(self.fd)


class _FastipcFdsServer(_FastipcListenerServer):
    def accept(self, timeout: float) -> Echo:
        return FastipcFdsEcho(self.listener.accept(timeout), self.max_size)


@register
class FastipcUnixFds(FastipcUnix):
    name = "fastipc-unix-fds"
    summary = "fastipc-unix, send_bytes(fds=)/recv_bytes_and_fds with one descriptor a message"
    counterpart = "socket-unix-fds"
    default = False

    def listen(self, env: Env) -> Server:
        server = super().listen(env)
        assert isinstance(server, _FastipcListenerServer)
        return _FastipcFdsServer(server.listener, env.max_size)

    def connect(self, env: Env, address: str) -> Client:
        client = super().connect(env, address)
        assert isinstance(client, FramedClient)
        return FastipcFdsClient(client.conn)  # type: ignore[arg-type]


class _FastipcPair(PairMechanism):
    uses_fastipc = True
    kind: ClassVar[Literal["stream", "seqpacket"]] = "stream"

    def pair(self, env: Env) -> tuple[Client, Echo]:
        pair: tuple[Connection, Connection] = env.fastipc().socketpair(self.kind)
        client, echo = pair
        return FramedClient(client), FramedEcho(echo, env.max_size)


@register
class FastipcSocketpair(_FastipcPair):
    name = "fastipc-socketpair"
    summary = "fastipc.socketpair(): a connected Unix stream pair, one end forked"
    counterpart = "mp-pipe"


def fork_echo(echo: Echo, client: Client, cpu: int | None, *, drain: bool = False) -> int:
    """Fork a process that serves ``echo`` (pinned to ``cpu``) and return its pid; with
    ``drain``, it is the receiving side of the one-way stream (:meth:`Echo.drain`) instead.

    The forked process closes its copy of the client's end so that it sees end of file when the
    client closes or dies, and leaves with ``os._exit``; the caller's copy of ``echo`` is closed.
    """
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the forked process
        status = 0
        try:
            client.close()
            if cpu is not None:
                pin(cpu)
            if drain:
                echo.drain()
            else:
                echo.serve()
        except BaseException:
            status = 1
        finally:
            os._exit(status)
    echo.close()
    return pid


def pin(cpu: int) -> None:
    """Run the calling process on ``cpu`` only (where the platform can)."""
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {cpu})


def family(mechanism: Mechanism) -> str:
    """The group of a mechanism in the table (see :data:`FAMILIES`)."""
    return "fastipc" if mechanism.uses_fastipc else mechanism.family


def ordered(names: list[str]) -> list[str]:
    """``names`` in table order: by family, then in the order they were registered."""
    rank = {name: i for i, name in enumerate(REGISTRY)}
    return sorted(
        names, key=lambda n: (FAMILIES.index(family(REGISTRY[n])), rank.get(n, len(rank)))
    )


# The other mechanisms register themselves when imported; every user of REGISTRY sees them all.
from . import _benchalt, _benchclassic, _benchshm, _refpeer  # noqa: E402, F401
