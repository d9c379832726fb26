"""A peer that announces a large message and sends nothing more must not cost the receiver the
announced size: memory follows the bytes that arrived."""

from __future__ import annotations

import os
import socket
import struct
import sys
import threading

import fastipc
import pytest
from _helpers import wait_blocked_in_kernel

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads VmRSS")

PEERS = 8
ANNOUNCED = 64 * 1024 * 1024


def rss() -> int:
    """The resident set of this process, in bytes."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS in /proc/self/status")  # pragma: no cover


def test_header_alone_costs_no_announced_memory(backend):
    pairs = [backend.socketpair() for _ in range(PEERS)]
    outcomes: list[BaseException | bytes] = []
    threads = []

    def receive(conn) -> None:
        try:
            outcomes.append(conn.recv_bytes())
        except BaseException as exc:
            outcomes.append(exc)

    try:
        before = rss()
        for sender, receiver in pairs:
            with socket.socket(fileno=os.dup(sender.fileno())) as raw:
                raw.sendall(struct.pack("!i", ANNOUNCED) + b"x")
            t = threading.Thread(target=receive, args=(receiver,))
            t.start()
            threads.append(t)
            wait_blocked_in_kernel(os.getpid(), t.native_id)
        grown = rss() - before
        # 8 headers announcing 64 MiB each: 512 MiB if the announced size were allocated.
        assert grown < 32 * 1024 * 1024, f"RSS grew by {grown / 2**20:.1f} MiB"
    finally:
        for sender, _ in pairs:
            sender.close()
        for t in threads:
            t.join(timeout=10)
        for _, receiver in pairs:
            receiver.close()
    assert not any(t.is_alive() for t in threads)
    assert len(outcomes) == PEERS
    for exc in outcomes:
        assert isinstance(exc, fastipc.TruncatedMessage), exc
        assert (exc.expected, exc.received) == (ANNOUNCED, 1)
