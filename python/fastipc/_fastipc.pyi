"""Type stubs for the Rust extension ``fastipc._fastipc``.

The pure-Python fallback (``fastipc._fallback``) implements exactly this API; the facade
(``fastipc``) re-exports whichever backend is active, typed by this file.
"""

import os
import sys
from collections.abc import Iterable
from types import TracebackType
from typing import Any, ClassVar, Final, Literal, Protocol, Self, final, overload

from typing_extensions import Buffer, disjoint_base

from ._records import LockHolder, SignalInfo
from ._types import Credentials

Address = str | tuple[str, int]

class _HasFileno(Protocol):
    def fileno(self) -> int: ...

_Fd = int | _HasFileno

StreamKind = Literal["stream", "seqpacket"]

__all__ = [
    "BACKEND",
    "DEFAULT_MAX_MESSAGE",
    "FIFO",
    "SCM_MAX_FD",
    "Channel",
    "Connection",
    "DatagramSocket",
    "FileLock",
    "JoinableQueue",
    "Listener",
    "Lock",
    "MessageView",
    "PipeReader",
    "PipeWriter",
    "Queue",
    "Reservation",
    "Semaphore",
    "SharedMemory",
    "build_info",
    "channel",
    "connect",
    "default_socket_dir",
    "fromfd",
    "kill_and_wait",
    "listen",
    "pipe",
    "resolve",
    "socketpair",
]
if sys.platform == "linux":
    __all__ += ["MessageQueue", "SignalReceiver", "unlink_message_queue"]
if sys.platform == "linux" or sys.platform == "android":
    __all__ += ["SysVMessageQueue", "ftok"]

DEFAULT_MAX_MESSAGE: Final[int]
SCM_MAX_FD: Final[int]
BACKEND: Final[str]

def build_info() -> dict[str, object]:
    """How this backend was built, for ``fastipc info`` and bug reports: ``backend``
    (``"rust"``/``"python"``), ``version`` (the crate's, the same as the package's), ``profile``
    (``"release"``/``"debug"``; ``None`` for the fallback), ``target`` (the Rust target triple;
    ``None`` for the fallback), ``features`` (the Cargo features compiled in) and ``gil_used``
    (whether the module asks a free-threaded interpreter to keep the GIL)."""

def default_socket_dir() -> str:
    """The socket directory used when none is given: ``FASTIPC_SOCKET_DIR``, else
    ``$XDG_RUNTIME_DIR/fastipc``, else ``/tmp/fastipc-<uid>``. Not created by this call."""

def resolve(address: Address, *, socket_dir: str | None = None) -> str:
    """What ``address`` means here, without touching the file system: ``"unix:<path>"`` for a
    remapped or Unix address, ``"unix:@name"`` for an abstract one, ``"tcp:<host>:<port>"`` for TCP.
    Raises ``ValueError`` for an address that cannot be parsed."""

@final
class Listener:
    """A listening stream or seqpacket socket. Created by :func:`listen`."""

    @property
    def address(self) -> str:
        """The logical address with the real port, to give to :func:`connect`."""
    @property
    def path(self) -> str | None:
        """The Unix socket path, or ``None`` for TCP (and abstract sockets)."""
    @property
    def kind(self) -> str: ...
    @property
    def closed(self) -> bool: ...
    @property
    def max_message(self) -> int: ...
    @property
    def refused(self) -> int:
        """How many connections ``allow_uids``/``allow_gids`` or the ``authkey`` handshake refused
        (closed at once)."""
    def accept(self, timeout: float | None = None) -> Connection:
        """Wait for a connection. ``TimeoutError`` at the deadline; ``OSError(EBADF)`` if closed."""
    def fileno(self) -> int: ...
    def close(self) -> None:
        """Close, and unlink the socket file if it is still this listener's own. Idempotent."""
    def __enter__(self) -> Self: ...
    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...

@final
class Connection:
    """A connected stream or seqpacket socket carrying framed messages and raw bytes.

    Framed messages use the wire format of ``multiprocessing.connection``; on seqpacket sockets a
    message is one packet. Blocking calls honour :meth:`settimeout` (``TimeoutError``), release the
    GIL and let Ctrl-C through.
    """

    @property
    def address(self) -> str:
        """The logical address of the other end (what was connected to, or the listener's)."""
    @property
    def kind(self) -> str: ...
    @property
    def closed(self) -> bool: ...
    @property
    def readable(self) -> bool: ...
    @property
    def writable(self) -> bool: ...
    @property
    def max_message(self) -> int: ...
    def send_bytes(
        self,
        buf: Buffer,
        offset: int = 0,
        size: int | None = None,
        *,
        fds: Iterable[_Fd] | None = None,
    ) -> None:
        """Send one message, with ``fds`` attached to it (Unix sockets; at most SCM_MAX_FD).
        ``BrokenPipeError`` if the peer is gone."""
    def recv_bytes_and_fds(
        self, maxlength: int | None = None, *, maxfds: int = 253
    ) -> tuple[bytes, list[int]]:
        """Receive one message and the descriptors sent with it, which the caller owns.
        More than ``maxfds``: all are closed and ``OSError(EMSGSIZE)``."""
    def send_fds(self, data: Buffer, fds: Iterable[_Fd]) -> int:
        """Send ``data`` on the raw stream with ``fds`` attached (as ``socket.send_fds``)."""
    def recv_fds(
        self, bufsize: int, maxfds: int, *, timeout: float | None = None
    ) -> tuple[bytes, list[int]]:
        """Receive raw bytes and descriptors (as ``socket.recv_fds``); ``timeout`` overrides
        ``settimeout`` for this call."""
    def peer_credentials(self) -> Credentials:
        """Who is at the other end (taken when the connection was made). Unix sockets only."""
    def peer_pidfd(self) -> int:
        """A pidfd of the peer process, owned by the caller (Linux 6.5 and later)."""
    def recv_bytes(self, maxlength: int | None = None) -> bytes:
        """Receive one message. ``EOFError`` on a clean close between messages,
        ``TruncatedMessage`` if the peer closed inside one, ``MessageTooLarge`` if it is longer
        than ``maxlength`` or ``max_message`` (the connection is then closed)."""
    def recv_bytes_into(self, buf: Buffer, offset: int = 0) -> int:
        """Receive one message into ``buf`` at ``offset``; returns its length. ``BufferTooShort``
        (holding the message) if it does not fit."""
    def poll(self, timeout: float | None = 0.0) -> bool:
        """Whether a message (or end of file) can be read within ``timeout`` seconds;
        ``None`` waits forever."""
    def send(self, obj: object) -> None:
        """Send a picklable object (pickle: for trusted peers only). Sockets, files and
        connections inside it travel as descriptors."""
    def recv(self) -> Any:
        """Receive a pickled object. Unpickling runs code chosen by the sender: call it only
        on connections whose peer is trusted (a Unix socket in the private socket directory or
        with ``allow_uids``, or an ``authkey`` handshake; not TCP without one, even on loopback).
        ``authkey`` authenticates, it does not encrypt. Typed ``Any``, as
        ``multiprocessing.connection.Connection.recv``."""
    def sendall(self, data: Buffer) -> None:
        """Send every byte of ``data`` on the raw stream (no framing)."""
    def recv_into(self, buffer: Buffer, nbytes: int = 0) -> int:
        """Read at most ``nbytes`` (default: the buffer's length) raw bytes; 0 at end of file."""
    def recv_exact(self, n: int) -> bytes:
        """Read exactly ``n`` raw bytes; ``EOFError`` if the stream ends before any,
        ``TruncatedMessage`` if it ends part way."""
    def settimeout(self, timeout: float | None) -> None: ...
    def gettimeout(self) -> float | None: ...
    def fileno(self) -> int: ...
    def shutdown(self, how: int = 2) -> None:
        """``socket.SHUT_RD``, ``SHUT_WR`` or ``SHUT_RDWR`` (the default)."""
    def close(self) -> None:
        """Close the socket. Idempotent."""
    def __enter__(self) -> Self: ...
    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...

@final
class DatagramSocket:
    """A datagram socket (Unix datagram when remapped, UDP otherwise)."""

    @property
    def address(self) -> str | None:
        """The local logical address, or ``None`` if unbound."""
    @property
    def path(self) -> str | None: ...
    @property
    def peer(self) -> str | None:
        """The address given to :meth:`connect`, or ``None``."""
    @property
    def kind(self) -> str: ...
    @property
    def closed(self) -> bool: ...
    def sendto(
        self,
        data: Buffer,
        address: Address,
        *,
        fds: Iterable[_Fd] | None = None,
        credentials: bool = False,
    ) -> int:
        """Send one datagram; ``fds`` attached, and this process's credentials when
        ``credentials`` (Linux)."""
    @overload
    def recvfrom(
        self, bufsize: int, *, credentials: Literal[False] = False
    ) -> tuple[bytes, str | None]:
        """Receive one datagram (at most ``bufsize`` bytes: the rest of a longer one is
        discarded, as with ``socket.recvfrom``) and its sender's logical address."""
    @overload
    def recvfrom(
        self, bufsize: int, *, credentials: Literal[True]
    ) -> tuple[bytes, str | None, Credentials | None]: ...
    def connect(self, address: Address) -> None: ...
    def send(
        self,
        data: Buffer,
        *,
        fds: Iterable[_Fd] | None = None,
        credentials: bool = False,
    ) -> int: ...
    def recv(self, bufsize: int) -> bytes: ...
    def send_fds(self, data: Buffer, fds: Iterable[_Fd], address: Address | None = None) -> int: ...
    def recv_fds(
        self, bufsize: int, maxfds: int, *, timeout: float | None = None
    ) -> tuple[bytes, list[int], str | None]: ...
    def settimeout(self, timeout: float | None) -> None: ...
    def gettimeout(self) -> float | None: ...
    def fileno(self) -> int: ...
    def close(self) -> None: ...
    def __enter__(self) -> Self: ...
    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...

@overload
def listen(
    address: Address,
    *,
    kind: StreamKind = "stream",
    backlog: int = 128,
    socket_dir: str | None = None,
    max_message: int = ...,
    allow_uids: Iterable[int] | None = None,
    allow_gids: Iterable[int] | None = None,
    authkey: bytes | None = None,
    handshake_timeout: float = 1.0,
    allow_unauthenticated: bool = False,
) -> Listener: ...
@overload
def listen(
    address: Address,
    *,
    kind: Literal["datagram"],
    backlog: int = 128,
    socket_dir: str | None = None,
    max_message: int = ...,
    allow_uids: Iterable[int] | None = None,
    allow_gids: Iterable[int] | None = None,
    authkey: bytes | None = None,
    handshake_timeout: float = 1.0,
    allow_unauthenticated: bool = False,
) -> DatagramSocket: ...
@overload
def connect(
    address: Address,
    *,
    kind: StreamKind = "stream",
    timeout: float | None = None,
    socket_dir: str | None = None,
    max_message: int = ...,
    authkey: bytes | None = None,
) -> Connection: ...
@overload
def connect(
    address: Address,
    *,
    kind: Literal["datagram"],
    timeout: float | None = None,
    socket_dir: str | None = None,
    max_message: int = ...,
    authkey: bytes | None = None,
) -> DatagramSocket: ...
@overload
def socketpair(kind: StreamKind = "stream") -> tuple[Connection, Connection]: ...
@overload
def socketpair(kind: Literal["datagram"]) -> tuple[DatagramSocket, DatagramSocket]: ...
@overload
def fromfd(
    fd: _Fd, *, kind: None = None, address: str | None = None, max_message: int = ...
) -> Connection | DatagramSocket:
    """A Connection or DatagramSocket on a duplicate of ``fd`` (which stays the caller's), of
    the kind the socket is. ``kind``, if given, is the kind the socket must be (``ValueError``
    otherwise), and tells a type checker which class comes back. ``address`` names the peer in
    errors and reprs."""

@overload
def fromfd(
    fd: _Fd, *, kind: StreamKind, address: str | None = None, max_message: int = ...
) -> Connection: ...
@overload
def fromfd(
    fd: _Fd, *, kind: Literal["datagram"], address: str | None = None, max_message: int = ...
) -> DatagramSocket: ...

# ---------------------------------------------------------------------------------------------
# The classic mechanisms: pipes, FIFOs, message queues, file locks, signals (docs/classic.md)

_Path = str | os.PathLike[str]

class _PipeEnd:
    @property
    def name(self) -> str:
        """``"pipe"``, or the FIFO's path."""
    @property
    def closed(self) -> bool: ...
    @property
    def capacity(self) -> int:
        """The pipe's capacity in bytes (Linux; ``NotSupportedError`` elsewhere)."""
    def set_capacity(self, size: int) -> int:
        """Sets the capacity (``F_SETPIPE_SZ``); returns the size the kernel chose."""
    def fileno(self) -> int: ...
    def settimeout(self, timeout: float | None) -> None:
        """Timeout of later operations: None waits forever, 0 tries once (TimeoutError)."""
    def gettimeout(self) -> float | None: ...
    def setblocking(self, flag: bool) -> None:
        """``False``: operations try once and raise ``BlockingIOError``."""
    def getblocking(self) -> bool: ...
    def set_inheritable(self, inheritable: bool) -> None:
        """Let the descriptor survive exec (for a child), which also makes it blocking."""
    def get_inheritable(self) -> bool: ...
    def detach(self) -> int:
        """Give up the descriptor without closing it and return it."""
    def close(self) -> None: ...
    def __enter__(self) -> Self: ...
    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...

@final
class PipeReader(_PipeEnd):
    """The reading end of a pipe or FIFO."""

    def read(self, n: int = 65536) -> bytes:
        """At most ``n`` bytes (1 MiB per call); ``b""`` at end of file."""
    def readinto(self, buffer: Buffer, nbytes: int = 0) -> int: ...
    def read_exact(self, n: int) -> bytes:
        """Exactly ``n`` bytes; ``EOFError`` (``TruncatedMessage`` part way) if the pipe ends."""
    def poll(self, timeout: float | None = 0.0) -> bool: ...
    def available(self) -> int:
        """Bytes waiting in the pipe."""

@final
class PipeWriter(_PipeEnd):
    """The writing end of a pipe or FIFO."""

    def write(self, data: Buffer) -> int:
        """Writes some of ``data``; ``BrokenPipeError`` once every reader is gone."""
    def write_all(self, data: Buffer) -> None: ...

def pipe(*, capacity: int | None = None) -> tuple[PipeReader, PipeWriter]:
    """A new pipe ``(reader, writer)``, close-on-exec."""

@final
class FIFO:
    """A named pipe. ``create=True`` makes it (exclusively, with exactly ``mode``)."""

    def __new__(cls, path: _Path, create: bool = False, *, mode: int = 0o600) -> Self: ...
    @property
    def path(self) -> str: ...
    def open_reader(self, timeout: float | None = None) -> PipeReader:
        """Waits until a writer opens the FIFO too; TimeoutError at the deadline."""
    def open_writer(self, timeout: float | None = None) -> PipeWriter:
        """Waits until a reader opens the FIFO too; TimeoutError at the deadline."""
    def unlink(self) -> None: ...
    def __enter__(self) -> Self: ...
    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...

# POSIX message queues: Linux only.
if sys.platform == "linux":
    @final
    class MessageQueue:
        """A POSIX message queue (Linux)."""

        def __new__(
            cls,
            name: str,
            create: bool = False,
            *,
            max_messages: int | None = None,
            max_message_size: int | None = None,
            mode: int = 0o600,
        ) -> Self: ...
        @property
        def name(self) -> str: ...
        @property
        def max_messages(self) -> int: ...
        @property
        def max_message_size(self) -> int: ...
        @property
        def current_messages(self) -> int: ...
        @property
        def closed(self) -> bool: ...
        def send(self, data: Buffer, priority: int = 0, timeout: float | None = None) -> None: ...
        def receive(self, timeout: float | None = None) -> tuple[bytes, int]: ...
        def fileno(self) -> int: ...
        def unlink(self) -> None: ...
        def close(self) -> None: ...
        def __enter__(self) -> Self: ...
        def __exit__(
            self,
            exc_type: type[BaseException] | None,
            exc: BaseException | None,
            tb: TracebackType | None,
        ) -> None: ...

    def unlink_message_queue(name: str) -> None: ...

# System V message queues: Linux and Android only.
if sys.platform == "linux" or sys.platform == "android":
    @final
    class SysVMessageQueue:
        """A System V message queue with typed retrieval (Linux)."""

        def __new__(
            cls,
            key: int | None = None,
            *,
            path: _Path | None = None,
            project_id: int | None = None,
            create: bool = False,
            mode: int = 0o600,
        ) -> Self: ...
        @property
        def key(self) -> int: ...
        @property
        def id(self) -> int: ...
        @property
        def current_messages(self) -> int: ...
        @property
        def max_bytes(self) -> int: ...
        @property
        def last_send_pid(self) -> int: ...
        @property
        def last_receive_pid(self) -> int: ...
        @property
        def mode(self) -> int: ...
        @property
        def closed(self) -> bool: ...
        def send(self, data: Buffer, type: int = 1, timeout: float | None = None) -> None: ...
        def receive(self, type: int = 0, timeout: float | None = None) -> tuple[bytes, int]:
            """type 0: the first message; > 0: the first of that type; < 0: the first of the
            lowest type up to its absolute value."""
        def remove(self) -> None: ...
        def close(self) -> None: ...
        def __enter__(self) -> Self: ...
        def __exit__(
            self,
            exc_type: type[BaseException] | None,
            exc: BaseException | None,
            tb: TracebackType | None,
        ) -> None: ...

    def ftok(path: _Path, project_id: int) -> int: ...

@final
class FileLock:
    """A record lock on a byte range (``length`` 0: to the end of the file).

    ``kind`` is ``"ofd"`` (open-file-description lock, the default on Linux) or ``"posix"``
    (classic ``fcntl(F_SETLK)`` lock, owned by the process)."""

    def __new__(
        cls,
        path: _Path,
        *,
        shared: bool = False,
        start: int = 0,
        length: int = 0,
        kind: Literal["ofd", "posix"] | None = None,
    ) -> Self: ...
    def acquire(self, blocking: bool = True, timeout: float | None = None) -> bool:
        """True once held; False if not taken (non-blocking, or at the timeout)."""
    def release(self) -> None:
        """RuntimeError if this object does not hold the lock."""
    @property
    def held(self) -> bool: ...
    def holder(self) -> LockHolder | None:
        """Who holds a conflicting lock (``F_GETLK``), or None."""
    @property
    def path(self) -> str: ...
    @property
    def shared(self) -> bool: ...
    @property
    def start(self) -> int: ...
    @property
    def length(self) -> int: ...
    @property
    def kind(self) -> str: ...
    @property
    def closed(self) -> bool: ...
    def fileno(self) -> int: ...
    def close(self) -> None: ...
    def __enter__(self) -> Self: ...
    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...

# signalfd: Linux only.
if sys.platform == "linux":
    @final
    class SignalReceiver:
        """A pollable receiver of chosen signals (signalfd on Linux)."""

        def __new__(cls, signals: Iterable[int]) -> Self: ...
        @property
        def signals(self) -> list[int]: ...
        @property
        def closed(self) -> bool: ...
        def receive(self, timeout: float | None = None) -> SignalInfo: ...
        def drain(self) -> list[SignalInfo]: ...
        def fileno(self) -> int: ...
        def close(self) -> None: ...
        def __enter__(self) -> Self: ...
        def __exit__(
            self,
            exc_type: type[BaseException] | None,
            exc: BaseException | None,
            tb: TracebackType | None,
        ) -> None: ...

def kill_and_wait(
    pid: int, sig: int = 15, *, timeout: float | None = None, group: bool = False
) -> None:
    """Send ``sig`` to ``pid`` (or process group ``pid``) and wait until it has exited."""

@final
class SharedMemory:
    """A shared memory segment: the API of ``multiprocessing.shared_memory.SharedMemory`` with
    POSIX names (``"/name"``; a name without the slash gets one), ``mode``, pages reserved at
    creation, and nothing tracked: the segment lives until :meth:`unlink`, as in POSIX.

    ``name=None`` with ``create=True`` generates a ``/fastipc-<hex>`` name. Creating an existing
    name raises ``FileExistsError``; opening a missing one ``FileNotFoundError``; a full
    ``/dev/shm`` fails at creation (``OSError(ENOSPC)``), never later with SIGBUS.
    """

    def __new__(
        cls, name: str | None = None, create: bool = False, size: int = 0, *, mode: int = 0o600
    ) -> Self: ...
    @classmethod
    def anonymous(cls, size: int) -> Self:
        """An unnamed segment to hand to another process by descriptor passing (:attr:`fd`). On
        Linux a memfd sealed against shrinking and growing, so no peer can make a mapping fault."""
    @classmethod
    def from_fd(cls, fd: int, *, require_sealed: bool = True) -> Self:
        """Map the segment behind a received descriptor (duplicated: close your own). With
        ``require_sealed``, a descriptor that could be shrunk under the mapping is a
        ``ValueError``."""
    @property
    def name(self) -> str | None:
        """The name in POSIX form, ``None`` for an anonymous segment."""
    @property
    def size(self) -> int: ...
    @property
    def buf(self) -> memoryview:
        """The segment's bytes, writable and zero-copy. ``OSError(EBADF)`` once closed."""
    @property
    def fd(self) -> int:
        """The descriptor, -1 once closed."""
    @property
    def closed(self) -> bool: ...
    def fileno(self) -> int: ...
    def close(self) -> None:
        """Unmap and close the descriptor (the segment lives on). ``BufferError`` while views
        of :attr:`buf` (memoryview slices, numpy arrays ...) are alive. Idempotent."""
    def unlink(self) -> None:
        """Remove the name; mappings stay valid. ``FileNotFoundError`` if it is gone already."""
    def __enter__(self) -> Self: ...
    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...

@final
class Semaphore:
    """A POSIX named semaphore, shared with C programs (``sem_open``) and posix_ipc under the same
    name. As a context manager it acquires on entry and releases on exit."""

    def __new__(
        cls, name: str | None = None, create: bool = False, value: int = 0, *, mode: int = 0o600
    ) -> Self: ...
    def acquire(self, blocking: bool = True, timeout: float | None = None) -> bool:
        """Decrement the value, waiting while it is zero. ``False`` if ``blocking`` is false or
        ``timeout`` seconds pass first. Releases the GIL; Ctrl-C raises ``KeyboardInterrupt``."""
    def release(self, n: int = 1) -> None:
        """Increment the value ``n`` times."""
    @property
    def value(self) -> int:
        """The current value; ``NotSupportedError`` where the platform cannot read it (macOS)."""
    @property
    def name(self) -> str: ...
    @property
    def closed(self) -> bool: ...
    def unlink(self) -> None:
        """Remove the name; open handles keep working."""
    def close(self) -> None:
        """Close this handle; the semaphore lives on until unlinked. Idempotent."""
    def __enter__(self) -> Self: ...
    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...

@final
class Lock:
    """A lock shared between processes that survives its holder's death: a robust
    process-shared mutex in a small shared memory segment named ``name``. When the holder dies,
    the next :meth:`acquire` succeeds and :attr:`recovered` is true. Not reentrant; released by
    the thread that acquired it. ``NotSupportedError`` where robust mutexes do not exist."""

    SIZE: ClassVar[int]
    """Bytes a lock takes in a SharedMemory (:meth:`in_buffer`)."""

    def __new__(
        cls, name: str | None = None, create: bool = False, *, mode: int = 0o600
    ) -> Self: ...
    @classmethod
    def in_buffer(cls, shm: SharedMemory, offset: int = 0, *, init: bool = False) -> Self:
        """A lock at ``offset`` (a multiple of 64) of ``shm``, next to the data it protects,
        taking :attr:`SIZE` bytes. One process initialises it with ``init=True`` before the
        others use it. ``shm`` cannot be closed while the lock is open (``BufferError``); the
        lock's :attr:`name` is ``"<segment name>@<offset>"`` and :meth:`unlink` is a
        ``ValueError``."""
    def acquire(self, blocking: bool = True, timeout: float | None = None) -> bool:
        """Take the lock; ``False`` if ``blocking`` is false or ``timeout`` seconds pass first.
        ``RuntimeError`` if this thread holds it already and would wait."""
    def release(self) -> None:
        """``RuntimeError`` if this thread does not hold the lock."""
    def locked(self) -> bool:
        """True while anyone holds the lock, in any process, a holder that died holding it
        included until an :meth:`acquire` takes it over (as ``threading.Lock.locked``). It takes
        nothing: it neither recovers a dead holder's lock nor changes :attr:`recovered`.
        ``NotSupportedError`` off Linux."""
    @property
    def recovered(self) -> bool:
        """Whether the most recent successful acquire found that the previous holder had died
        holding the lock (the protected data may need repair)."""
    @property
    def name(self) -> str: ...
    @property
    def closed(self) -> bool: ...
    def unlink(self) -> None: ...
    def close(self) -> None: ...
    def __enter__(self) -> Self: ...
    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...

# Shared-memory queues and channels (docs/channel.md).

@final
class MessageView:
    """A received message where it lies in the ring (zero-copy). ``with q.get_view() as view:``
    gives a read-only ``memoryview``; leaving the block releases the view and returns the
    message's space to the ring. Any use of the memoryview afterwards raises ``ValueError``
    (the memoryview is released). A view that is never entered is released by :meth:`release`
    or when garbage collected, from any thread of the process. While a view is held, other
    consumers of the same queue wait (documented)."""

    def __enter__(self) -> memoryview: ...
    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...
    def release(self) -> None:
        """Give the space back now. Idempotent."""
    def __len__(self) -> int: ...

@final
class Reservation:
    """``n`` writable bytes reserved in the ring (zero-copy send). ``with q.reserve(n) as view:``
    gives a writable ``memoryview``; leaving the block normally publishes the message (all ``n``
    bytes, or ``size`` bytes after :meth:`shrink`); leaving it by an exception discards it and
    nothing is delivered. Other producers wait while a reservation is held (documented); any
    thread of the process may commit or discard it."""

    def __enter__(self) -> memoryview: ...
    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...
    def shrink(self, size: int) -> None:
        """Publish only the first ``size`` bytes (``0 <= size <= n``, else ``ValueError``)."""
    def commit(self) -> None:
        """Publish now (what ``__exit__`` does without an exception). Idempotent."""
    def discard(self) -> None:
        """Drop the reservation; nothing is delivered. Idempotent; after commit a no-op."""
    def __len__(self) -> int: ...

@disjoint_base
class Queue:
    """``multiprocessing.Queue`` in shared memory: many producers and many consumers across
    processes, without a feeder thread. ``maxsize`` counts items as the stdlib's does (0: no
    limit but the ring's ``capacity`` in bytes). ``name=None``: an anonymous queue (a sealed memfd),
    shared by fork, by pickling into a ``multiprocessing.Process`` (fork, spawn, forkserver), or by
    descriptor passing; with a name, a POSIX shared-memory name created with O_EXCL and exactly
    ``mode`` (``FileExistsError`` if it exists), opened elsewhere with :meth:`open`.

    Objects go through pickle protocol 5, their out-of-band buffers written straight into the
    ring. A message larger than the ring travels in a segment of its own referenced from the
    ring (listed by ``fastipc ls``, freed when received or by ``fastipc clean``). ``put`` raises
    ``queue.Full`` and ``get`` ``queue.Empty`` as the stdlib's do. Blocking calls release the GIL,
    honour ``timeout``, and let Ctrl-C through; a timeout or an interrupt never loses or
    duplicates a message. A named queue whose segment another process truncates under this one
    raises ``IPCError("corrupt channel: the segment NAME was truncated ...")`` from then on, not
    a SIGBUS (docs/channel.md says what the pure-Python backend cannot promise)."""

    def __new__(
        cls,
        maxsize: int = 0,
        *,
        capacity: int = 1048576,
        name: str | None = None,
        mode: int = 0o600,
    ) -> Self: ...
    @classmethod
    def open(cls, name: str) -> Self:
        """Open the named queue another process created. ``FileNotFoundError`` if missing;
        ``IPCError`` ("not a fastipc queue" / "layout version N, expected M") if the segment is
        not a queue of this backend's layout."""
    @property
    def name(self) -> str | None: ...
    @property
    def capacity(self) -> int:
        """The ring's size in bytes."""
    @property
    def maxsize(self) -> int: ...
    @property
    def closed(self) -> bool: ...
    def put(self, obj: object, block: bool = True, timeout: float | None = None) -> None: ...
    def get(self, block: bool = True, timeout: float | None = None) -> Any: ...
    def put_nowait(self, obj: object) -> None: ...
    def get_nowait(self) -> Any: ...
    def put_bytes(self, buf: Buffer, block: bool = True, timeout: float | None = None) -> None:
        """One message of the bytes of ``buf`` (any buffer), no pickling."""
    def get_bytes(self, block: bool = True, timeout: float | None = None) -> bytes: ...
    def get_bytes_into(
        self, buffer: Buffer, block: bool = True, timeout: float | None = None
    ) -> int:
        """Copy the next message into ``buffer``; its length. A buffer too small raises
        ``fastipc.BufferTooShort`` (the message is consumed; ``args[0]`` is its bytes), as
        ``multiprocessing``'s ``recv_bytes_into`` does."""
    def put_many(
        self, items: Iterable[object], block: bool = True, timeout: float | None = None
    ) -> int:
        """Put every item (pickled); returns how many. Items go in order; with a timeout,
        ``queue.Full`` says how many went in (``args``) and none is half-written."""
    def get_many(self, max_items: int, timeout: float | None = None) -> list[Any]:
        """Wait (up to ``timeout``) for one item, then take what is there, up to ``max_items``.
        ``queue.Empty`` if nothing came."""
    def get_view(self, block: bool = True, timeout: float | None = None) -> MessageView: ...
    def reserve(self, n: int, block: bool = True, timeout: float | None = None) -> Reservation: ...
    def qsize(self) -> int:
        """Items in the queue now (exact at the moment of reading; others may change it)."""
    def empty(self) -> bool: ...
    def full(self) -> bool: ...
    def fileno(self) -> int:
        """A descriptor that polls readable when a message may be waiting (for ``select``,
        ``selectors`` and event loops). Created on first call; costs the fast path nothing while
        nobody asked for it. Spurious readiness is allowed: follow it with a non-blocking get."""
    def space_fileno(self) -> int:
        """As :meth:`fileno`, readable when space may have been freed for a ``put``."""
    def close(self) -> None:
        """Release this handle (idempotent); the queue lives on while others hold it."""
    def unlink(self) -> None:
        """Remove the name (named queues; a ``ValueError`` for anonymous ones)."""
    def join_thread(self) -> None:
        """Nothing to join (no feeder thread); for ``multiprocessing.Queue`` compatibility."""
    def cancel_join_thread(self) -> None:
        """As :meth:`join_thread`."""
    def __enter__(self) -> Self: ...
    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...
    def __reduce__(self) -> tuple[Any, ...]:
        """Pickles into a ``multiprocessing.Process`` (any start method); a ``TypeError``
        outside of one (an anonymous queue's memory cannot travel in bytes)."""

class JoinableQueue(Queue):
    """``multiprocessing.JoinableQueue``: the unfinished-task count lives in the segment."""

    def task_done(self) -> None:
        """``ValueError`` if called more times than there were items put."""
    def join(self, timeout: float | None = None) -> bool:
        """Wait until every item put has been marked done. ``True``; ``False`` if ``timeout``
        seconds passed first (an extension of the stdlib's ``join()``)."""

@disjoint_base
class Channel:
    """One end of a duplex pair of rings in shared memory with the ``Connection`` API: the
    shared-memory counterpart of ``multiprocessing.Pipe()``. No descriptor passing (that needs a
    socket). Made by :func:`channel`, or named: :meth:`create` / :meth:`open` (one opener: a
    second ``open`` while the first opener's end lives raises ``FileExistsError`` saying so).

    When the other end is closed or its process dies (even by SIGKILL), a blocked or later
    receive raises ``EOFError`` once the messages already in the ring are read, and a send raises
    ``BrokenPipeError``, within 100 ms. A named channel whose segment another process truncates
    under this one raises ``IPCError`` from then on, as a named :class:`Queue` does."""

    DEFAULT_CAPACITY: ClassVar[int]
    @classmethod
    def create(cls, name: str, *, capacity: int = 1048576, mode: int = 0o600) -> Self: ...
    @classmethod
    def open(cls, name: str) -> Self: ...
    @property
    def name(self) -> str | None: ...
    @property
    def capacity(self) -> int:
        """Bytes of each direction's ring."""
    @property
    def closed(self) -> bool: ...
    def send_bytes(self, buf: Buffer, offset: int = 0, size: int | None = None) -> None: ...
    def recv_bytes(self, maxlength: int | None = None) -> bytes: ...
    def recv_bytes_into(self, buf: Buffer, offset: int = 0) -> int: ...
    def send(self, obj: object) -> None: ...
    def recv(self) -> Any: ...
    def poll(self, timeout: float | None = 0.0) -> bool: ...
    def get_view(self, timeout: float | None = None) -> MessageView: ...
    def reserve(self, n: int, timeout: float | None = None) -> Reservation: ...
    def settimeout(self, timeout: float | None) -> None:
        """The timeout of ``send*``/``recv*`` (``None``: wait forever, the default);
        ``TimeoutError`` when it passes."""
    def gettimeout(self) -> float | None: ...
    def fileno(self) -> int:
        """Readable when a message may be waiting (see :meth:`Queue.fileno`); also usable with
        ``multiprocessing.connection.wait``."""
    def space_fileno(self) -> int: ...
    def close(self) -> None: ...
    def unlink(self) -> None:
        """Remove the name of a named channel (``ValueError`` for an anonymous one)."""
    def __enter__(self) -> Self: ...
    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...
    def __reduce__(self) -> tuple[Any, ...]:
        """Pickles into a ``multiprocessing.Process`` (any start method), as sockets do."""

def channel(capacity: int = 1048576) -> tuple[Channel, Channel]:
    """A connected pair of :class:`Channel` ends over an anonymous (sealed memfd) segment."""
