"""TCP connections of both backends enable keepalive, so that a vanished peer is detected."""

from __future__ import annotations

import os
import socket

#: fastipc's keepalive timing (docs/sockets.md): probes after 30 s idle, every 10 s, 3 of them.
EXPECTED = {"TCP_KEEPIDLE": 30, "TCP_KEEPINTVL": 10, "TCP_KEEPCNT": 3}


def _options(fd: int) -> dict[str, int]:
    sock = socket.socket(fileno=os.dup(fd))
    try:
        got = {"SO_KEEPALIVE": sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE)}
        for name in EXPECTED:
            if hasattr(socket, name):
                got[name] = sock.getsockopt(socket.IPPROTO_TCP, getattr(socket, name))
        return got
    finally:
        sock.close()


def _expected() -> dict[str, int]:
    want = {"SO_KEEPALIVE": 1}
    want.update({name: value for name, value in EXPECTED.items() if hasattr(socket, name)})
    return want


def test_both_ends_of_a_tcp_connection_keep_alive(backend):
    with backend.listen("tcp:127.0.0.1:0") as lst:
        with backend.connect(lst.address, timeout=10) as client, lst.accept(timeout=10) as server:
            assert _options(client.fileno()) == _expected()
            assert _options(server.fileno()) == _expected()
