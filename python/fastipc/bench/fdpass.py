"""The descriptor-passing mechanisms of ``fastipc bench`` (not run by default): one descriptor
rides with every message, ``send_bytes(fds=)``/``recv_bytes_and_fds`` of fastipc against the
stdlib's ``socket.send_fds``/``socket.recv_fds`` with the same 4-byte framing.
"""

from __future__ import annotations

import functools
import os
import socket
from collections.abc import Callable
from typing import TYPE_CHECKING

from typing_extensions import Buffer

from .base import Client, Echo, Env, Server, register
from .framing import (
    HEADER,
    FastipcListenerServer,
    FastipcListening,
    FramedClient,
    FramedEcho,
    SocketEcho,
    SocketServer,
    UnixSocketListening,
    recv_exact_into,
)

if TYPE_CHECKING:
    from .._fastipc import Connection

__all__ = ["FastipcUnixFds", "SocketUnixFds"]


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
    while len(data) < HEADER.size:
        more = sock.recv(HEADER.size - len(data))
        if not more:
            raise EOFError("connection closed inside a message header")
        data += more
    end = HEADER.size + HEADER.unpack_from(data)[0]
    if len(data) < end:
        rest = bytearray(end - len(data))
        with memoryview(rest) as view:
            if not recv_exact_into(sock.recv_into, view):
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
        self.bufsize = HEADER.size + max_size

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
        SocketEcho(self.sock, self.bufsize - HEADER.size).drain()

    def close(self) -> None:
        self.sock.close()


class SocketFdsClient:
    """Length-prefixed frames with one descriptor each, by ``socket.send_fds`` and
    ``socket.recv_fds``; the descriptor that comes back is closed."""

    def __init__(self, sock: socket.socket, max_size: int) -> None:
        self.sock = sock
        self.bufsize = HEADER.size + max_size
        self.fd = _null_fd()

    def sender(self) -> Callable[[bytes], object]:
        sock, fds, pack = self.sock, [self.fd], HEADER.pack

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
        return result[HEADER.size :]

    def close(self) -> None:
        self.sock.close()
        os.close(self.fd)


class _SocketFdsServer(SocketServer):
    def accept(self, timeout: float) -> Echo:
        self.sock.settimeout(timeout)
        conn, _ = self.sock.accept()
        conn.settimeout(None)
        return SocketFdsEcho(conn, self.max_size)


@register
class SocketUnixFds(UnixSocketListening):
    name = "socket-unix-fds"
    summary = "stdlib AF_UNIX stream socket, socket.send_fds/recv_fds with one descriptor a message"
    default = False

    def server(self, sock: socket.socket, path: str, max_size: int) -> Server:
        return _SocketFdsServer(sock, path, max_size)

    def client(self, sock: socket.socket, max_size: int) -> Client:
        return SocketFdsClient(sock, max_size)


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


class _FastipcFdsServer(FastipcListenerServer):
    def accept(self, timeout: float) -> Echo:
        return FastipcFdsEcho(self.listener.accept(timeout), self.max_size)


@register
class FastipcUnixFds(FastipcListening):
    name = "fastipc-unix-fds"
    summary = "fastipc-unix, send_bytes(fds=)/recv_bytes_and_fds with one descriptor a message"
    counterpart = "socket-unix-fds"
    default = False

    def listen(self, env: Env) -> Server:
        server = super().listen(env)
        assert isinstance(server, FastipcListenerServer)
        return _FastipcFdsServer(server.listener, env.max_size)

    def connect(self, env: Env, address: str) -> Client:
        client = super().connect(env, address)
        assert isinstance(client, FramedClient)
        return FastipcFdsClient(client.conn)  # type: ignore[arg-type]
