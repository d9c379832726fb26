"""The pure-Python fallback forced into its Windows behaviour on Linux: loopback is TCP."""

from __future__ import annotations

import importlib
import os
import re
import socket

import fastipc
import pytest
from conftest import SELECTED


@pytest.fixture
def windows_fallback(monkeypatch):
    if "python" not in SELECTED:
        pytest.skip("the python backend is not selected by FASTIPC_TEST_BACKENDS")
    fallback = importlib.import_module("fastipc._fallback")
    try:
        platform = importlib.import_module("fastipc._fallback._platform")
    except ImportError:
        pytest.skip("the fallback has no _platform module to force Windows mode with")
    if not hasattr(platform, "WINDOWS"):
        pytest.skip("the fallback exposes no WINDOWS flag to force Windows mode with")
    monkeypatch.setattr(platform, "WINDOWS", True)
    return fallback


def test_windows_mode_remaps_to_tcp(windows_fallback, sock_dir):
    fb = windows_fallback
    assert fb.resolve("127.0.0.1:5000") == "tcp:127.0.0.1:5000"
    assert fb.resolve(("localhost", 5000)) == "tcp:127.0.0.1:5000"
    with fb.listen("127.0.0.1:0") as lst:
        m = re.fullmatch(r"127\.0\.0\.1:(\d+)", lst.address)
        assert m, lst.address
        port = int(m.group(1))
        assert port > 0
        assert lst.path is None
        raw = socket.socket(fileno=os.dup(lst.fileno()))
        with raw:
            assert raw.family == socket.AF_INET
            assert raw.getsockname() == ("127.0.0.1", port)
        with fb.connect(lst.address, timeout=5) as c, lst.accept(timeout=5) as s:
            assert c.address == lst.address
            c.send_bytes(b"over tcp")
            assert s.recv_bytes() == b"over tcp"
            s.send(("obj", 1))
            assert c.recv() == ("obj", 1)
    assert os.listdir(sock_dir) == []  # no socket files in Windows mode


def test_windows_mode_datagram_is_udp(windows_fallback, sock_dir):
    fb = windows_fallback
    with fb.listen("127.0.0.1:0", kind="datagram") as server:
        assert server.path is None
        with fb.connect(server.address, kind="datagram") as c:
            c.send(b"ping")
            data, sender = server.recvfrom(100)
            assert data == b"ping"
            assert sender is not None
            server.sendto(b"pong", sender)
            c.settimeout(5)
            assert c.recv(100) == b"pong"
    assert os.listdir(sock_dir) == []


@pytest.mark.parametrize(
    "call",
    [
        lambda fb, d: fb.listen(f"unix:{d}/x.sock"),
        lambda fb, d: fb.connect(f"unix:{d}/x.sock"),
        lambda fb, d: fb.listen("unix:@fastipc-win"),
        lambda fb, d: fb.listen("127.0.0.1:0", kind="seqpacket"),
        lambda fb, d: fb.socketpair("seqpacket"),
    ],
    ids=["listen-unix", "connect-unix", "abstract", "seqpacket", "seqpacket-pair"],
)
def test_windows_mode_not_supported(windows_fallback, sock_dir, call):
    with pytest.raises(fastipc.NotSupportedError):
        call(windows_fallback, sock_dir)
    assert os.listdir(sock_dir) == []


def test_windows_mode_stream_socketpair(windows_fallback):
    a, b = windows_fallback.socketpair()
    with a, b:
        a.send_bytes(b"pair")
        assert b.recv_bytes() == b"pair"
