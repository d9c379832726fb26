"""Peer credentials, admission by uid/gid, peer pidfds and datagram credentials."""

from __future__ import annotations

import errno
import os
import signal
import socket
import uuid

import fastipc
import pytest
from conftest import assert_oserror

NOBODY = 65534

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="dropping to another uid needs root")


def _abstract() -> str:
    return f"unix:@fastipc-test-{os.getpid()}-{uuid.uuid4().hex[:12]}"


CONNECT_AND_REPORT = """
if ARGS.get("drop"):
    os.setgroups([])
    os.setgid(ARGS["drop"])
    os.setuid(ARGS["drop"])
conn = B.connect(ARGS["address"], kind=ARGS.get("kind", "stream"), timeout=10)
report(connected=True, pid=os.getpid(), uid=os.getuid(), gid=os.getgid(),
       euid=os.geteuid(), egid=os.getegid())
try:
    msg = conn.recv_bytes()
except EOFError:
    report(refused=True)
else:
    peer = conn.peer_credentials()
    report(message=msg.decode(), peer=[peer.pid, peer.uid, peer.gid])
conn.close()
"""


@pytest.mark.parametrize("kind", ["stream", "seqpacket"])
def test_peer_credentials_of_a_child(backend, sock_dir, spawn, kind):
    with backend.listen("127.0.0.1:0", kind=kind, socket_dir=sock_dir) as lst:
        child = spawn(CONNECT_AND_REPORT, args={"address": lst.address, "kind": kind})
        me = child.expect("connected")
        with lst.accept(timeout=10) as conn:
            creds = conn.peer_credentials()
            assert isinstance(creds, fastipc.Credentials)
            assert creds == fastipc.Credentials(me["pid"], me["uid"], me["gid"])
            assert (creds.pid, creds.uid, creds.gid) == (child.pid, os.getuid(), os.getgid())
            conn.send_bytes(b"hello")
            assert child.expect("message") == {
                "message": "hello",
                "peer": [os.getpid(), os.geteuid(), os.getegid()],
            }
    child.finish()


def test_socketpair_credentials_are_ours(backend):
    a, b = backend.socketpair()
    with a, b:
        assert a.peer_credentials() == (os.getpid(), os.geteuid(), os.getegid())
        assert type(b.peer_credentials()) is fastipc.Credentials


def test_abstract_listener_refuses_other_users_by_default(backend, spawn):
    with backend.listen(_abstract()) as lst:
        assert lst.refused == 0
        other = spawn(CONNECT_AND_REPORT, args={"address": lst.address, "drop": NOBODY})
        assert other.expect("connected")["euid"] == NOBODY
        mine = spawn(CONNECT_AND_REPORT, args={"address": lst.address})
        me = mine.expect("connected")
        # The refused connection is first in the queue: accept closes it and goes on waiting.
        with lst.accept(timeout=10) as conn:
            assert lst.refused == 1
            assert conn.peer_credentials() == (me["pid"], 0, 0)
            conn.send_bytes(b"admitted")
            assert mine.expect("message")["message"] == "admitted"
        assert other.expect("refused") == {"refused": True}
    other.finish()
    mine.finish()


def test_allow_uids_admits_and_reports_the_real_uid(backend, spawn, sock_dir):
    with backend.listen(_abstract(), allow_uids=[NOBODY]) as lst:
        child = spawn(CONNECT_AND_REPORT, args={"address": lst.address, "drop": NOBODY})
        me = child.expect("connected")
        assert (me["uid"], me["gid"]) == (NOBODY, NOBODY)
        with lst.accept(timeout=10) as conn:
            assert conn.peer_credentials() == fastipc.Credentials(child.pid, NOBODY, NOBODY)
            assert lst.refused == 0
            conn.send_bytes(b"welcome")
            assert child.expect("message") == {
                "message": "welcome",
                "peer": [os.getpid(), 0, 0],
            }
    child.finish()


def test_allow_uids_refuses_on_a_path_listener(backend, spawn, sock_dir):
    with backend.listen("127.0.0.1:0", socket_dir=sock_dir, allow_uids=[NOBODY]) as lst:
        child = spawn(CONNECT_AND_REPORT, args={"address": lst.address})
        child.expect("connected")
        with pytest.raises(TimeoutError):
            lst.accept(timeout=0.5)
        assert lst.refused == 1
        assert child.expect("refused") == {"refused": True}
    child.finish()


def test_allow_gids(backend, spawn):
    with backend.listen(_abstract(), allow_uids=[0, NOBODY], allow_gids=[0]) as lst:
        other = spawn(CONNECT_AND_REPORT, args={"address": lst.address, "drop": NOBODY})
        other.expect("connected")
        mine = spawn(CONNECT_AND_REPORT, args={"address": lst.address})
        me = mine.expect("connected")
        with lst.accept(timeout=10) as conn:
            assert conn.peer_credentials().pid == me["pid"]
            assert lst.refused == 1
        assert other.expect("refused") == {"refused": True}
        assert mine.expect("refused") == {"refused": True}
    other.finish()
    mine.finish()


def test_refused_of_a_closed_listener(backend, sock_dir):
    lst = backend.listen("127.0.0.1:0", socket_dir=sock_dir)
    lst.close()
    with pytest.raises(OSError) as info:
        _ = lst.refused
    assert_oserror(info.value, errno.EBADF)


EXIT_SEVEN = """
conn = B.connect(ARGS["address"], timeout=10)
report(connected=True)
wait_parent()
conn.close()
sys.exit(7)
"""


def test_peer_pidfd_names_the_child(backend, sock_dir, spawn):
    with backend.listen("127.0.0.1:0", socket_dir=sock_dir) as lst:
        child = spawn(EXIT_SEVEN, args={"address": lst.address})
        child.expect("connected")
        with lst.accept(timeout=10) as conn:
            try:
                pidfd = conn.peer_pidfd()
            except fastipc.NotSupportedError:
                pytest.skip("this kernel has no SO_PEERPIDFD")
            try:
                assert os.get_inheritable(pidfd) is False
                signal.pidfd_send_signal(pidfd, 0)
                child.send(go=True)
                info = os.waitid(os.P_PIDFD, pidfd, os.WEXITED | os.WNOWAIT)
                assert info is not None
                assert (info.si_pid, info.si_code, info.si_status) == (
                    child.pid,
                    os.CLD_EXITED,
                    7,
                )
            finally:
                os.close(pidfd)
    child.finish(returncode=7)


DATAGRAM_CREDS = """
s = B.connect(ARGS["address"], kind="datagram")
s.send(b"with", credentials=True)
s.sendto(b"to", ARGS["address"], credentials=True)
s.send(b"plain")
report(sent=True, pid=os.getpid(), uid=os.getuid(), gid=os.getgid(), address=s.address)
s.close()
"""


def test_datagram_credentials(backend, sock_dir, spawn):
    with backend.listen("127.0.0.1:0", kind="datagram", socket_dir=sock_dir) as server:
        child = spawn(DATAGRAM_CREDS, args={"address": server.address})
        me = child.expect("sent")
        creds = fastipc.Credentials(me["pid"], me["uid"], me["gid"])
        assert creds.pid == child.pid
        server.settimeout(10)
        assert server.recvfrom(100, credentials=True) == (b"with", me["address"], creds)
        assert server.recvfrom(100, credentials=True) == (b"to", me["address"], creds)
        # SO_PASSCRED was on before the bind: the kernel vouches for every sender.
        data, sender, got = server.recvfrom(100, credentials=True)
        assert (data, sender, got) == (b"plain", me["address"], creds)
    child.finish()


def test_datagram_recvfrom_without_credentials(backend):
    a, b = backend.socketpair("datagram")
    with a, b:
        a.send(b"x", credentials=True)
        assert b.recvfrom(10) == (b"x", None)


def test_datagram_placeholder_credentials_are_none(backend):
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    with a, b:
        a.send(b"before")
        # Turned on after the datagram was queued: the kernel can only give a placeholder
        # (pid 0, the overflow uid), which must not read as a user.
        b.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        a.send(b"after")
        with backend.fromfd(b) as r:
            assert r.recvfrom(10, credentials=True) == (b"before", None, None)
            assert r.recvfrom(10, credentials=True) == (
                b"after",
                None,
                fastipc.Credentials(os.getpid(), os.geteuid(), os.getegid()),
            )
