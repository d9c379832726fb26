"""The ``authkey`` handshake of :mod:`fastipc._auth`, on an awaited connection: the same
messages, digests and checks, without blocking the loop while the peer answers."""

from __future__ import annotations

import asyncio
import os

from .. import _auth
from .._errors import AuthenticationError
from ._conn import Connection

__all__ = ["client_handshake", "server_handshake"]


async def _deliver_challenge(conn: Connection, authkey: bytes) -> None:
    challenge = b"{sha256}" + os.urandom(_auth._MESSAGE_LENGTH)
    await conn.send_bytes(_auth._CHALLENGE + challenge)
    answer = await conn.recv_bytes(_auth._MAX_LENGTH)
    try:
        _auth._verify(authkey, challenge, answer)
    except AuthenticationError:
        await conn.send_bytes(_auth._FAILURE)
        raise
    await conn.send_bytes(_auth._WELCOME)


async def _answer_challenge(conn: Connection, authkey: bytes) -> None:
    message = await conn.recv_bytes(_auth._MAX_LENGTH)
    if not message.startswith(_auth._CHALLENGE):
        raise AuthenticationError("protocol error: the peer sent no challenge")
    challenge = message[len(_auth._CHALLENGE) :]
    if len(challenge) < _auth._LEGACY_LENGTHS[0]:
        raise AuthenticationError(f"challenge too short: {len(challenge)} bytes")
    await conn.send_bytes(_auth._response(authkey, challenge))
    if await conn.recv_bytes(_auth._MAX_LENGTH) != _auth._WELCOME:
        raise AuthenticationError("the peer rejected our answer: is the authkey the same?")


async def server_handshake(conn: Connection, authkey: bytes, timeout: float) -> bool:
    """The listener's side within ``timeout``; False, with ``conn`` closed, if the peer failed
    it, whatever it did (wrong key, garbage, too long, too slow, gone)."""
    try:
        async with asyncio.timeout(timeout):
            await _deliver_challenge(conn, authkey)
            await _answer_challenge(conn, authkey)
    except (AuthenticationError, EOFError, OSError, ValueError):
        # TimeoutError is an OSError, MessageTooLarge a ValueError.
        conn.close()
        return False
    except BaseException:
        conn.close()
        raise
    return True


async def client_handshake(conn: Connection, authkey: bytes, timeout: float | None) -> None:
    """The connecting side within ``timeout``: ``AuthenticationError`` for a wrong key or a
    peer that does not speak the handshake; ``conn`` is closed on any failure."""
    try:
        async with asyncio.timeout(timeout):
            await _answer_challenge(conn, authkey)
            await _deliver_challenge(conn, authkey)
    except (EOFError, ValueError) as e:
        conn.close()
        raise AuthenticationError(f"authentication failed: {e or type(e).__name__}") from e
    except BaseException:
        conn.close()
        raise
