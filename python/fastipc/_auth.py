"""The ``authkey`` handshake of ``multiprocessing.connection``, shared by both backends.

Wire-compatible with the standard library: the challenger sends ``#CHALLENGE#`` and a random
message, the other side answers with an HMAC of it keyed by ``authkey``, and the challenger says
``#WELCOME#`` or ``#FAILURE#``; then the roles swap, so that each side proves it holds the key.
fastipc challenges in the form of Python 3.12+ (``{sha256}`` and 40 random bytes, answered by
``{sha256}`` and the HMAC-SHA256), and accepts the legacy answer of Python 3.11 and earlier (a bare
HMAC-MD5 of the whole challenge); it answers a legacy challenge (20 bytes, no prefix) with a bare
HMAC-MD5, as 3.12 does. Every handshake message is read with a limit of 256 bytes and compared as
bytes: nothing the peer sends is unpickled before it is authenticated.

The listener's side runs under a deadline (``handshake_timeout``, within ``accept``'s own), and a
peer that fails it is closed and counted in ``refused``: one scanner cannot hold up an accept loop.
"""

from __future__ import annotations

import hmac
import ipaddress
import os
import socket
import time
from typing import Protocol

from ._errors import AuthenticationError

__all__ = [
    "HANDSHAKE_TIMEOUT",
    "answer_challenge",
    "client_handshake",
    "deliver_challenge",
    "options",
    "refuse_exposed",
    "server_handshake",
]

#: How long a listener waits for a peer to finish the handshake, by default (seconds).
HANDSHAKE_TIMEOUT = 1.0

_CHALLENGE = b"#CHALLENGE#"
_WELCOME = b"#WELCOME#"
_FAILURE = b"#FAILURE#"
#: Random bytes in a challenge (as Python 3.12+; 3.11 sends 20).
_MESSAGE_LENGTH = 40
#: What a handshake message may be at most (the standard library's limit too).
_MAX_LENGTH = 256
#: The digests the standard library accepts in a ``{name}`` prefix.
_ALLOWED_DIGESTS = frozenset({b"md5", b"sha256", b"sha384", b"sha3_256", b"sha3_384"})
_MAX_DIGEST_LEN = max(len(name) for name in _ALLOWED_DIGESTS)
#: A legacy challenge (20 bytes) or a legacy answer (HMAC-MD5, 16 bytes): no prefix.
_LEGACY_LENGTHS = (20, 16)


class _Framed(Protocol):
    def send_bytes(self, buf: bytes) -> None: ...
    def recv_bytes(self, maxlength: int | None = None) -> bytes: ...
    def settimeout(self, timeout: float | None) -> None: ...
    def close(self) -> None: ...


def _digest_and_payload(message: bytes) -> tuple[str, bytes]:
    """The digest a challenge or answer names (``""``: legacy HMAC-MD5) and what follows it."""
    if len(message) in _LEGACY_LENGTHS:
        return "", message
    if message.startswith(b"{"):
        curly = message.find(b"}", 1, _MAX_DIGEST_LEN + 2)
        if curly > 0 and message[1:curly] in _ALLOWED_DIGESTS:
            return message[1:curly].decode("ascii"), message[curly + 1 :]
    raise AuthenticationError(
        f"unsupported handshake message ({len(message)} bytes): no known digest prefix"
    )


def _response(authkey: bytes, challenge: bytes) -> bytes:
    name, _ = _digest_and_payload(challenge)
    if not name:
        return hmac.new(authkey, challenge, "md5").digest()
    # The MAC covers the whole challenge, its prefix included.
    return b"{%s}%s" % (name.encode("ascii"), hmac.new(authkey, challenge, name).digest())


def _verify(authkey: bytes, challenge: bytes, answer: bytes) -> None:
    name, mac = _digest_and_payload(answer)
    try:
        expected = hmac.new(authkey, challenge, name or "md5").digest()
    except ValueError:
        raise AuthenticationError(f"digest {name!r} is not available") from None
    if len(expected) != len(mac) or not hmac.compare_digest(expected, mac):
        raise AuthenticationError("the peer's answer to the challenge was wrong")


def check_key(authkey: object) -> bytes:
    """``authkey`` as the handshake needs it: non-empty ``bytes``."""
    if not isinstance(authkey, bytes):
        raise TypeError(f"authkey must be bytes, not {type(authkey).__name__}")
    if not authkey:
        raise ValueError("authkey must not be empty")
    return authkey


def options(kind: str, authkey: object, handshake_timeout: float) -> tuple[bytes, float] | None:
    """The key and per-peer handshake deadline of ``listen``/``connect``'s arguments, or None."""
    if authkey is None:
        return None
    if kind == "datagram":
        raise ValueError("authkey needs a connection: datagram sockets have no handshake")
    if isinstance(handshake_timeout, bool) or not isinstance(handshake_timeout, (int, float)):
        raise TypeError("handshake_timeout must be a number of seconds")
    if not handshake_timeout > 0:
        raise ValueError("handshake_timeout must be a positive number of seconds")
    return check_key(authkey), float(handshake_timeout)


def deliver_challenge(conn: _Framed, authkey: bytes, digest_name: str = "sha256") -> None:
    """Challenges the peer to prove it holds ``authkey``; ``AuthenticationError`` if it does not."""
    challenge = b"{%s}%s" % (digest_name.encode("ascii"), os.urandom(_MESSAGE_LENGTH))
    conn.send_bytes(_CHALLENGE + challenge)
    answer = conn.recv_bytes(_MAX_LENGTH)
    try:
        _verify(authkey, challenge, answer)
    except AuthenticationError:
        conn.send_bytes(_FAILURE)
        raise
    conn.send_bytes(_WELCOME)


def answer_challenge(conn: _Framed, authkey: bytes) -> None:
    """Answers the peer's challenge; ``AuthenticationError`` if the peer refuses the answer."""
    message = conn.recv_bytes(_MAX_LENGTH)
    if not message.startswith(_CHALLENGE):
        raise AuthenticationError("protocol error: the peer sent no challenge")
    challenge = message[len(_CHALLENGE) :]
    if len(challenge) < _LEGACY_LENGTHS[0]:
        raise AuthenticationError(f"challenge too short: {len(challenge)} bytes")
    conn.send_bytes(_response(authkey, challenge))
    if conn.recv_bytes(_MAX_LENGTH) != _WELCOME:
        raise AuthenticationError("the peer rejected our answer: is the authkey the same?")


class _Deadline:
    """Sets the connection's timeout to what is left before each step."""

    def __init__(self, conn: _Framed, timeout: float | None) -> None:
        self._conn = conn
        self._end = None if timeout is None else time.monotonic() + timeout

    def step(self) -> None:
        if self._end is None:
            return
        left = self._end - time.monotonic()
        if left <= 0:
            raise TimeoutError("the authentication handshake timed out")
        self._conn.settimeout(left)


class _Timed:
    """A connection whose every receive runs under one deadline."""

    def __init__(self, conn: _Framed, timeout: float | None) -> None:
        self._conn = conn
        self._deadline = _Deadline(conn, timeout)

    def send_bytes(self, buf: bytes) -> None:
        self._deadline.step()
        self._conn.send_bytes(buf)

    def recv_bytes(self, maxlength: int | None = None) -> bytes:
        self._deadline.step()
        return self._conn.recv_bytes(maxlength)

    def settimeout(self, timeout: float | None) -> None:
        self._conn.settimeout(timeout)

    def close(self) -> None:
        self._conn.close()


def server_handshake(
    conn: _Framed, authkey: bytes, handshake_timeout: float, accept_left: float | None
) -> bool:
    """The listener's side (challenge, then answer), within ``handshake_timeout`` and what is
    left of ``accept``'s timeout. False, with ``conn`` closed, if the peer failed, whatever it
    did (wrong key, garbage, too long, too slow, gone)."""
    timeout = handshake_timeout if accept_left is None else min(handshake_timeout, accept_left)
    timed = _Timed(conn, max(timeout, 0.0))
    try:
        deliver_challenge(timed, authkey)
        answer_challenge(timed, authkey)
        conn.settimeout(None)
    except (AuthenticationError, EOFError, OSError, ValueError):
        # MessageTooLarge is a ValueError, TimeoutError and the peer's reset are OSErrors.
        conn.close()
        return False
    return True


def client_handshake(conn: _Framed, authkey: bytes, timeout: float | None) -> None:
    """The connecting side (answer, then challenge), within ``timeout``. Any failure closes
    ``conn``; a wrong key, or a peer that does not speak the handshake, is
    ``AuthenticationError``."""
    timed = _Timed(conn, timeout)
    try:
        answer_challenge(timed, authkey)
        deliver_challenge(timed, authkey)
        conn.settimeout(None)
    except (EOFError, ValueError) as e:
        conn.close()
        # A listener that drops a wrong key closes, or sends what is no handshake.
        raise AuthenticationError(f"authentication failed: {e or type(e).__name__}") from e
    except BaseException:
        conn.close()
        raise


def is_loopback_host(host: str) -> bool:
    """Whether every address ``host`` stands for is a loopback one (127/8, ``::1``, and
    IPv4-mapped 127/8). A name that does not resolve is not loopback."""
    try:
        ip = ipaddress.ip_address(host.strip("[]").split("%", 1)[0])
    except ValueError:
        pass
    else:
        return _loopback_ip(ip)
    try:
        infos = socket.getaddrinfo(host, None, 0, socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        return False
    ips = {ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]) for info in infos}
    return bool(ips) and all(_loopback_ip(ip) for ip in ips)


def _loopback_ip(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped.is_loopback
    return ip.is_loopback


def refuse_exposed(tcp_host: str, address: str, allow_unauthenticated: bool) -> None:
    """Refuses (``PermissionError``) a listener without ``authkey`` on a TCP host that is not
    loopback, unless ``allow_unauthenticated``: other hosts could reach it, and ``recv()``
    unpickles what arrives."""
    if allow_unauthenticated or is_loopback_host(tcp_host):
        return
    raise PermissionError(
        f"refusing to listen on {address} without authentication: other hosts can reach it, "
        "and recv() unpickles what arrives. Pass authkey=b'...' (and the same key to "
        "connect), or allow_unauthenticated=True if every peer that can reach it is trusted."
    )
