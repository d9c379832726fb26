"""The socket mechanisms of ``fastipc bench``: fastipc's listeners (Unix stream remapped from
loopback, seqpacket, TCP) and socketpair, with their stdlib counterparts (``AF_UNIX`` and TCP
stream sockets framed in Python) and ``multiprocessing.Pipe``, the reference of every ratio.
"""

from __future__ import annotations

import multiprocessing
import socket
import sys
from typing import TYPE_CHECKING, ClassVar, Literal

from .base import REFERENCE, Client, Echo, Env, ListenerMechanism, PairMechanism, Server, register
from .framing import (
    CONNECT_TIMEOUT,
    FastipcListening,
    FramedClient,
    FramedEcho,
    SocketClient,
    SocketServer,
    UnixSocketListening,
)

if TYPE_CHECKING:
    from .._fastipc import Connection

__all__ = [
    "FastipcSeqpacket",
    "FastipcSocketpair",
    "FastipcTcp",
    "FastipcUnix",
    "FastipcUnixInto",
    "MultiprocessingPipe",
    "SocketTcp",
    "SocketUnix",
]


# -- the standard library ------------------------------------------------------------------------


@register
class MultiprocessingPipe(PairMechanism):
    name = REFERENCE
    summary = "multiprocessing.Pipe(): send_bytes/recv_bytes, one end forked (reference)"

    def pair(self, env: Env) -> tuple[Client, Echo]:
        client, echo = multiprocessing.Pipe()
        return FramedClient(client), FramedEcho(echo, env.max_size)


@register
class SocketUnix(UnixSocketListening):
    name = "socket-unix"
    summary = "stdlib AF_UNIX stream socket, 4-byte length prefix framed in Python"


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
        return SocketServer(sock, f"{host}:{port}", env.max_size)

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


# -- fastipc --------------------------------------------------------------------------------------


@register
class FastipcUnix(FastipcListening):
    name = "fastipc-unix"
    summary = 'fastipc.listen("127.0.0.1:0"): remapped to a Unix stream socket'
    listen_address = "127.0.0.1:0"
    counterpart = "socket-unix"


@register
class FastipcUnixInto(FastipcUnix):
    name = "fastipc-unix-into"
    summary = "fastipc-unix, receiving with recv_bytes_into a preallocated buffer"
    recv_into = True


@register
class FastipcSeqpacket(FastipcListening):
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
class FastipcTcp(FastipcListening):
    name = "fastipc-tcp"
    summary = 'fastipc.listen("tcp:127.0.0.1:0"): TCP loopback'
    listen_address = "tcp:127.0.0.1:0"
    counterpart = "socket-tcp"


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
