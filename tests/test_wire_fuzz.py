"""A live listener of each backend, fed hostile byte streams (hypothesis).

A child process listens and receives with one of the receiving methods; the test connects raw
Unix sockets and sends generated streams: bad and negative length prefixes, huge lengths,
truncated frames, descriptors on garbage bytes, a pickle that would run code, many small writes,
closes at any point. After each stream the listener must have ended that connection with one of
the protocol's exceptions, hold as many descriptors as before (``/proc/PID/fd``), never have
unpickled anything, and keep accepting; at the end a normal client still gets an echo.

``FASTIPC_WIRE_FUZZ_EXAMPLES`` sets the number of streams per backend (default 30, a few
seconds); ``benches/fuzz.sh`` runs it long (docs/fuzzing.md).
"""

from __future__ import annotations

import os
import pickle
import socket
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

EXAMPLES = int(os.environ.get("FASTIPC_WIRE_FUZZ_EXAMPLES", "30"))
MAX_MESSAGE = 1 << 20

SERVER = """
import pickle

def _unpickled(*args, **kwargs):
    open(ARGS["marker"] + ".loads", "w").close()
    raise AssertionError("the listener unpickled received bytes")

pickle.loads = pickle.load = _unpickled

def receive(conn, method):
    if method == "bytes":
        conn.recv_bytes()
    elif method == "maxlength":
        conn.recv_bytes(16)
    elif method == "into":
        try:
            conn.recv_bytes_into(bytearray(64))
        except fastipc.BufferTooShort:
            pass
    else:
        _, fds = conn.recv_bytes_and_fds(maxfds=2)
        for fd in fds:
            os.close(fd)

def serve(conn, method):
    if method == "echo":
        conn.send_bytes(conn.recv_bytes())
        return "echoed"
    while True:
        try:
            receive(conn, method)
        except EOFError:
            return "EOFError"
        except Exception as exc:
            return type(exc).__name__

lst = B.listen("127.0.0.1:0", max_message=ARGS["max_message"])
report(path=lst.path, address=lst.address)
while (cmd := wait_parent()) is not None:
    conn = lst.accept(timeout=20)
    try:
        outcome = serve(conn, cmd["method"])
    finally:
        conn.close()
    report(outcome=outcome)
lst.close()
"""

#: How a connection may end: a clean end of file or one of the protocol's errors.
OUTCOMES = {
    "EOFError",
    "TruncatedMessage",
    "MessageTooLarge",
    "ValueError",
    "OSError",
    "ConnectionResetError",
}
METHODS = ["bytes", "maxlength", "into", "fds"]


class _Evil:
    """Unpickling this creates the marker directory."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.mkdir, (self.marker,))


def header(n: int) -> bytes:
    if n <= 0x7FFF_FFFF:
        return n.to_bytes(4, "big")
    return b"\xff\xff\xff\xff" + n.to_bytes(8, "big")


def frame(payload: bytes) -> tuple[str, bytes]:
    return ("raw", header(len(payload)) + payload)


PIECES = st.one_of(
    st.binary(max_size=64).map(lambda b: ("raw", b)),
    st.integers(-(2**31), 2**31 - 1).map(lambda n: ("raw", n.to_bytes(4, "big", signed=True))),
    st.integers(0, 2**64 - 1).map(lambda n: ("raw", b"\xff\xff\xff\xff" + n.to_bytes(8, "big"))),
    st.binary(max_size=300).map(frame),
    st.just(("evil", b"")),
    st.integers(0, 2**21).map(lambda n: ("raw", header(n) + bytes(min(n, 4096)))),
    st.integers(1, 70_000).map(lambda n: ("raw", header(n) + bytes(n // 2))),
    st.tuples(st.binary(min_size=1, max_size=16), st.integers(1, 4)).map(
        lambda t: ("fds", t[0], t[1])
    ),
    st.binary(min_size=1, max_size=32).map(lambda b: ("bytewise", b)),
)


def fd_count(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def send_piece(sock: socket.socket, piece: tuple[Any, ...], evil: bytes, null: int) -> None:
    kind, data = piece[0], piece[1]
    if kind == "evil":
        sock.sendall(frame(evil)[1])
    elif kind == "fds":
        socket.send_fds(sock, [data], [null] * piece[2])
    elif kind == "bytewise":
        for i in range(len(data)):
            sock.sendall(data[i : i + 1])
    else:
        sock.sendall(data)


def send_stream(path: str, pieces: list[tuple[Any, ...]], end: str, evil: bytes, null: int) -> None:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.connect(path)
        try:
            for piece in pieces:
                send_piece(sock, piece, evil, null)
            if end == "shutdown":
                sock.shutdown(socket.SHUT_WR)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the listener ended this connection already


def test_hostile_streams_leave_the_listener_serving(backend_name, backend, spawn, tmp_path):
    marker = str(tmp_path / "unpickled")
    child = spawn(SERVER, args={"marker": marker, "max_message": MAX_MESSAGE})
    ready = child.expect("path")
    evil = pickle.dumps(_Evil(marker))
    null = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
    try:
        # One well-formed connection first: whatever a backend opens lazily is open by now.
        child.send(method="bytes")
        send_stream(ready["path"], [frame(b"warm-up")], "close", evil, null)
        assert child.expect("outcome")["outcome"] == "EOFError"
        baseline = fd_count(child.pid)
        seen: set[str] = set()

        @settings(max_examples=EXAMPLES)
        @given(
            pieces=st.lists(PIECES, max_size=12),
            method=st.sampled_from(METHODS),
            end=st.sampled_from(["close", "shutdown"]),
        )
        def one_stream(pieces: list[tuple[Any, ...]], method: str, end: str) -> None:
            child.send(method=method)
            send_stream(ready["path"], pieces, end, evil, null)
            outcome = child.expect("outcome")["outcome"]
            seen.add(outcome)
            assert outcome in OUTCOMES, (outcome, pieces, method)
            assert fd_count(child.pid) == baseline, (pieces, method)
            assert not Path(marker).exists() and not Path(marker + ".loads").exists()

        one_stream()
        # Still serving: a normal client gets its echo.
        child.send(method="echo")
        with backend.connect(ready["address"]) as conn:
            conn.send_bytes(b"still here")
            assert conn.recv_bytes() == b"still here"
        assert child.expect("outcome")["outcome"] == "echoed"
        assert fd_count(child.pid) == baseline
        child.finish()
    finally:
        os.close(null)
    assert seen, "no stream was sent"


@pytest.mark.parametrize("value", [0, 1, 0x7FFF_FFFF, 0x8000_0000, 2**64 - 1])
def test_header_encoding_of_this_module(value):
    # The generator's headers are the wire format's (docs/wire.md): short up to 2**31 - 1.
    got = header(value)
    assert len(got) == (4 if value <= 0x7FFF_FFFF else 12)
    assert int.from_bytes(got[-8:] if len(got) == 12 else got, "big") == value
