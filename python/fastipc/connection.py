"""``multiprocessing.connection`` on fastipc: change one import.

``import fastipc.connection as mpc`` gives a program written for the standard library's module the
same names and signatures (:class:`Listener`, :func:`Client`, :func:`Pipe`, :func:`wait`,
:func:`answer_challenge`, :func:`deliver_challenge`, ``Connection``, ``AuthenticationError``,
``BufferTooShort``) over fastipc's connections. Addresses are the standard library's: a
``(host, port)`` tuple (family ``'AF_INET'``; ``'AF_INET6'`` is accepted too), a path (family
``'AF_UNIX'``; a Linux abstract name starts with ``'\\0'``), or ``None`` for an arbitrary one. As
everywhere in fastipc, a loopback tuple is served by a Unix socket in the private socket
directory; the differences that follow from it, and the others, are listed in
``docs/connection.md``.
"""

from __future__ import annotations

import os
import selectors
import socket
import sys
import time
import warnings
from collections.abc import Iterable
from types import TracebackType
from typing import TYPE_CHECKING, Any, Protocol, Self

from . import _auth
from ._errors import AuthenticationError, BufferTooShort
from ._handles import loaded_connection_types

if TYPE_CHECKING:
    from ._fastipc import Connection
    from ._fastipc import Listener as _FastipcListener
else:
    from . import Connection

__all__ = [
    "AuthenticationError",
    "BufferTooShort",
    "Client",
    "Connection",
    "Listener",
    "Pipe",
    "UnauthenticatedListenerWarning",
    "answer_challenge",
    "deliver_challenge",
    "wait",
]

#: The families an address may name (the standard library's, and ``'AF_INET6'``).
families = ["AF_INET", "AF_INET6", "AF_UNIX"]
#: The family of ``Listener()`` without an address, as in the standard library on Unix.
default_family = "AF_UNIX"

#: How long ``Listener.accept`` waits for a peer to finish the ``authkey`` handshake (seconds).
HANDSHAKE_TIMEOUT = _auth.HANDSHAKE_TIMEOUT

#: The ``max_message`` of this module's connections: no limit but memory, as the standard library
#: (``fastipc.listen``/``connect`` default to 64 MiB).
MAX_MESSAGE = sys.maxsize

_TCP = "tcp:"
_LOOPBACK_FALLBACK = (FileNotFoundError, ConnectionRefusedError)


class UnauthenticatedListenerWarning(RuntimeWarning):
    """A :class:`Listener` without ``authkey`` on a TCP address that is not loopback: any host
    that reaches the port may connect, and ``recv()`` unpickles what it sends. The standard
    library allows it silently; ``fastipc.listen`` refuses it (``PermissionError``) unless told
    ``allow_unauthenticated=True``; this module allows it, with this warning."""


class _Framed(Protocol):
    def send_bytes(self, buf: bytes) -> None: ...
    def recv_bytes(self, maxlength: int | None = None) -> bytes: ...
    def settimeout(self, timeout: float | None) -> None: ...
    def close(self) -> None: ...


# ---------------------------------------------------------------------------------------------
# addresses


def address_type(address: object) -> str:
    """The family of ``address``, as the standard library's ``address_type``: ``'AF_INET'``
    for a tuple, ``'AF_UNIX'`` for a path (or a Linux abstract name); ``ValueError`` else."""
    if type(address) is tuple:
        return "AF_INET"
    if type(address) is str or (isinstance(address, bytes) and address.startswith(b"\0")):
        return "AF_UNIX"
    raise ValueError(f"address type of {address!r} unrecognized")


def arbitrary_address(family: str) -> Any:
    """An address of ``family`` that nothing uses, as the standard library picks it: a fresh
    path in ``multiprocessing``'s temporary directory for ``'AF_UNIX'``, ``('localhost', 0)``
    for ``'AF_INET'`` (a free port is chosen at bind), ``('::1', 0)`` for ``'AF_INET6'``."""
    _validate_family(family)
    if family == "AF_INET6":
        return ("::1", 0)
    if family == "AF_INET":
        return ("localhost", 0)
    # The standard library's name: a path nobody has taken in a private temporary directory,
    # removed at exit.
    import tempfile
    from multiprocessing import util

    return tempfile.mktemp(prefix="listener-", dir=util.get_temp_dir())


def _validate_family(family: str) -> None:
    if family not in families:
        raise ValueError(f"Family {family} is not recognized.")


def _host_port(address: tuple[Any, ...]) -> tuple[str, int]:
    if len(address) not in (2, 4) or not isinstance(address[0], str):
        raise TypeError(f"a socket address must be (host, port), not {address!r}")
    return address[0], address[1]


def _fastipc_address(address: object, family: str) -> str | tuple[str, int]:
    """What fastipc's ``listen``/``connect`` take for a standard-library address."""
    _validate_family(family)
    if isinstance(address, tuple):
        if family == "AF_UNIX":
            raise TypeError(f"an AF_UNIX address is a path, not {address!r}")
        return _host_port(address)
    if isinstance(address, bytes) and address.startswith(b"\0"):
        address = address.decode()
    if not isinstance(address, str):
        raise ValueError(f"address type of {address!r} unrecognized")
    if address.startswith(_TCP):
        return address  # fastipc's own form: TCP, never remapped
    if family != "AF_UNIX":
        raise TypeError(f"an {family} address must be a (host, port) tuple, not {address!r}")
    if address.startswith("\0"):
        return "unix:@" + address[1:]
    return "unix:" + address


def _tuple_of(logical: str) -> tuple[Any, ...]:
    """``127.0.0.1:5000``, ``tcp:[::1]:5000`` ... as the tuple ``getsockname`` gives."""
    text = logical.removeprefix(_TCP)
    host, _, port = text.rpartition(":")
    if host.startswith("["):
        return (host[1:-1], int(port), 0, 0)
    return (host, int(port))


def _sockname(fd: int, peer: bool) -> Any:
    """``getsockname()`` (or ``getpeername()``) of the socket ``fd``, which stays open."""
    with socket.socket(fileno=os.dup(fd)) as sock:
        return sock.getpeername() if peer else sock.getsockname()


# ---------------------------------------------------------------------------------------------
# the handshake


def deliver_challenge(connection: _Framed, authkey: bytes, digest_name: str = "sha256") -> None:
    """Challenges the peer to prove it holds ``authkey`` (the standard library's function, in
    its Python 3.12+ form: a ``{digest_name}`` challenge; a 3.11 peer's answer is accepted).
    ``AuthenticationError`` if the answer is wrong; ``ValueError`` if ``authkey`` is not
    bytes."""
    _check_bytes(authkey)
    _auth.deliver_challenge(connection, authkey, digest_name)


def answer_challenge(connection: _Framed, authkey: bytes) -> None:
    """Answers the peer's challenge with ``authkey`` (3.12+ and 3.11 challenges alike).
    ``AuthenticationError`` if the peer rejects the answer or sends no challenge."""
    _check_bytes(authkey)
    _auth.answer_challenge(connection, authkey)


def _check_bytes(authkey: object) -> None:
    if not isinstance(authkey, bytes):
        raise ValueError(f"Authkey must be bytes, not {type(authkey)!s}")


def _check_authkey(authkey: object) -> bytes | None:
    if authkey is not None and not isinstance(authkey, bytes):
        raise TypeError("authkey should be a byte string")
    return authkey


class _Within:
    """A connection whose handshake messages all fall within one deadline."""

    def __init__(self, conn: Connection, timeout: float) -> None:
        self._conn = conn
        self._end = time.monotonic() + timeout

    def _step(self) -> None:
        left = self._end - time.monotonic()
        if left <= 0:
            raise TimeoutError("the peer did not finish the authkey handshake in time")
        self._conn.settimeout(left)

    def send_bytes(self, buf: bytes) -> None:
        self._step()
        self._conn.send_bytes(buf)

    def recv_bytes(self, maxlength: int | None = None) -> bytes:
        self._step()
        return self._conn.recv_bytes(maxlength)

    def settimeout(self, timeout: float | None) -> None:
        self._conn.settimeout(timeout)

    def close(self) -> None:
        self._conn.close()


def _serve_handshake(conn: Connection, authkey: bytes) -> None:
    """The listener's side, within :data:`HANDSHAKE_TIMEOUT`. Whatever the peer did wrong is
    ``AuthenticationError`` (the cause chained), with ``conn`` closed."""
    timed = _Within(conn, HANDSHAKE_TIMEOUT)
    try:
        _auth.deliver_challenge(timed, authkey)
        _auth.answer_challenge(timed, authkey)
        conn.settimeout(None)
    except (AuthenticationError, EOFError, OSError, ValueError) as e:
        conn.close()
        if isinstance(e, AuthenticationError):
            raise
        raise AuthenticationError(f"authentication failed: {e or type(e).__name__}") from e


# ---------------------------------------------------------------------------------------------
# Listener and Client


class Listener:
    """A listening socket, as ``multiprocessing.connection.Listener``.

    ``address`` is a ``(host, port)`` tuple, a path, or ``None`` (an arbitrary address of
    ``family``, by the standard library's rules). With ``authkey``, :meth:`accept` runs the
    challenge/response and raises ``AuthenticationError`` for a peer that fails it (within
    :data:`HANDSHAKE_TIMEOUT`; the listener stays open). Without one, a TCP address that is not
    loopback is allowed with an :class:`UnauthenticatedListenerWarning`.
    """

    def __init__(
        self,
        address: Any = None,
        family: str | None = None,
        backlog: int = 1,
        authkey: bytes | None = None,
    ) -> None:
        import fastipc

        family = family or (address and address_type(address)) or default_family
        if family == "AF_INET" and isinstance(address, tuple) and ":" in str(address[0]):
            family = "AF_INET6"
        address = address or arbitrary_address(family)
        target = _fastipc_address(address, family)
        self._authkey = _check_authkey(authkey)
        self._listener: _FastipcListener | None = fastipc.listen(
            target, backlog=backlog, max_message=MAX_MESSAGE, allow_unauthenticated=True
        )
        try:
            self._tcp = self._listener.path is None and self._listener.address.startswith(_TCP)
            self._address = self._public_address(address)
            self._last_accepted: Any = None
            if self._tcp and not self._authkey:
                self._warn_if_exposed()
        except BaseException:  # the warning raised (-W error), say: no listener is left open
            self.close()
            raise

    def _public_address(self, given: Any) -> Any:
        assert self._listener is not None
        if self._tcp:
            return _sockname(self._listener.fileno(), peer=False)
        if isinstance(given, tuple):
            return _tuple_of(self._listener.address)
        return given  # a path, as given (getsockname gives it back so)

    def _warn_if_exposed(self) -> None:
        host = str(self._address[0])
        if not _auth.is_loopback_host(host):
            warnings.warn(
                f"fastipc.connection.Listener on {self._address!r} without authkey: any host "
                "that reaches it can connect, and recv() unpickles what arrives",
                UnauthenticatedListenerWarning,
                stacklevel=3,
            )

    def accept(self) -> Connection:
        """Waits for a connection and returns it, after the ``authkey`` handshake if the
        listener has a key. ``AuthenticationError`` if the peer fails it (its connection is
        closed; call ``accept`` again); ``OSError`` if the listener is closed."""
        listener = self._listener
        if listener is None:
            raise OSError("listener is closed")
        conn = listener.accept()
        self._last_accepted = self._peer_of(conn)
        if self._authkey:
            _serve_handshake(conn, self._authkey)
        return conn

    def _peer_of(self, conn: Connection) -> Any:
        if self._tcp:
            return _sockname(conn.fileno(), peer=True)
        if isinstance(self._address, tuple):
            # A loopback tuple served by a Unix socket: the peer has no port.
            return (self._address[0], 0, *self._address[2:])
        return ""  # a Unix socket's unnamed peer, as socket.accept reports it

    def close(self) -> None:
        """Closes the listening socket (and removes its socket file). Idempotent."""
        listener = self._listener
        if listener is not None:
            self._listener = None
            listener.close()

    @property
    def address(self) -> Any:
        """The address, as the standard library's ``getsockname`` gives it: a ``(host, port)``
        tuple with the real port, or the path."""
        return self._address

    @property
    def last_accepted(self) -> Any:
        """The peer of the last :meth:`accept`: its ``(host, port)`` over TCP, ``(host, 0)``
        for a loopback tuple (served by a Unix socket), ``''`` for a path; ``None`` before
        the first."""
        return self._last_accepted

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        exc_tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        state = " closed" if self._listener is None else ""
        return f"<fastipc.connection.Listener {self._address!r}{state}>"


def Client(address: Any, family: str | None = None, authkey: bytes | None = None) -> Connection:
    """A connection to the :class:`Listener` at ``address`` (and with ``authkey``, the
    challenge/response: ``AuthenticationError`` on a wrong key). A loopback tuple reaches a
    fastipc listener through its Unix socket and, when there is none, a TCP listener on that
    port (a standard library one, say)."""
    import fastipc

    family = family or address_type(address)
    target = _fastipc_address(address, family)
    key = _check_authkey(authkey)
    try:
        conn = fastipc.connect(target, max_message=MAX_MESSAGE)
    except _LOOPBACK_FALLBACK:
        if not isinstance(target, tuple) or fastipc.resolve(target).startswith(_TCP):
            raise
        conn = fastipc.connect(_tcp_form(target), max_message=MAX_MESSAGE)
    if key is not None:
        try:
            _auth.answer_challenge(conn, key)
            _auth.deliver_challenge(conn, key)
        except BaseException:
            conn.close()
            raise
    return conn


def _tcp_form(address: tuple[str, int]) -> str:
    host, port = address
    return f"tcp:[{host}]:{port}" if ":" in host else f"tcp:{host}:{port}"


def Pipe(duplex: bool = True) -> tuple[Connection, Connection]:
    """A pair of connected connections (``fastipc.socketpair()``). With ``duplex=False`` the
    first only receives and the second only sends (each end's other direction is shut down:
    a send on the first is ``BrokenPipeError``, as is a receive on the second ``EOFError``)."""
    import fastipc

    # The sockets of fastipc.socketpair(), without its limit on a message's size.
    pair = fastipc.socketpair()
    ends: list[Connection] = []
    try:
        for end in pair:
            ends.append(
                fastipc.fromfd(
                    end.fileno(), kind="stream", address=end.address, max_message=MAX_MESSAGE
                )
            )
    except BaseException:
        for conn in ends:
            conn.close()
        raise
    finally:
        for end in pair:
            end.close()
    a, b = ends
    if not duplex:
        a.shutdown(socket.SHUT_WR)
        b.shutdown(socket.SHUT_RD)
    return a, b


# ---------------------------------------------------------------------------------------------
# wait


def wait(object_list: Iterable[Any], timeout: float | None = None) -> list[Any]:
    """Waits until an object of ``object_list`` is ready to be read (or at end of file), at
    most ``timeout`` seconds; returns those that are, ``[]`` at the timeout. The objects are
    fastipc connections, ``multiprocessing`` connections, sockets, descriptors, or anything with
    ``fileno()``. A fastipc connection that holds a message it has already read ahead counts as
    ready, although its socket may have nothing more."""
    objects = list(object_list)
    fastipc_types = loaded_connection_types()
    buffered = [o for o in objects if isinstance(o, fastipc_types) and _has_message(o)]
    found = _select(objects, 0.0 if buffered else timeout)
    ready = {id(o) for o in buffered} | {id(o) for o in found}
    return [o for o in objects if id(o) in ready]


def _has_message(conn: Any) -> bool:
    return bool(conn.poll(0))


def _select(objects: list[Any], timeout: float | None) -> list[Any]:
    selector_class = getattr(selectors, "PollSelector", selectors.SelectSelector)
    with selector_class() as selector:
        for obj in objects:
            selector.register(obj, selectors.EVENT_READ)
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            ready = selector.select(timeout)
            if ready:
                return [key.fileobj for key, _ in ready]
            if deadline is not None:
                timeout = deadline - time.monotonic()
                if timeout < 0:
                    return []
