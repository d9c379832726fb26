"""Across hosts: two network namespaces joined by a veth pair, made (and removed) by the test, a
fastipc listener on one "host" and a client on the other, with and without the ``authkey``.

Needs ``ip netns`` (root, or CAP_SYS_ADMIN and CAP_NET_ADMIN); skipped, with the reason, where it
is not permitted. The private addresses exist only inside the namespaces the test made.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator

import pytest

SERVER_IP = "10.231.7.1"
CLIENT_IP = "10.231.7.2"
KEY = "cross-host-key"

SERVER = """
import json, sys, fastipc
key, ip = sys.argv[1].encode(), sys.argv[2]
def say(**kw):
    print(json.dumps(kw), flush=True)
try:
    fastipc.listen(f"tcp:{ip}:0")
except PermissionError as e:
    say(unauthenticated_refused=str(e))
with fastipc.listen(f"tcp:{ip}:0", authkey=key, handshake_timeout=1.0) as lst:
    say(address=lst.address)
    with lst.accept(timeout=60) as conn:
        conn.send_bytes(conn.recv_bytes()[::-1])
        say(refused=lst.refused, echoed=True)
"""

CLIENT = """
import json, sys, fastipc
address, key = sys.argv[1], sys.argv[2].encode()
out = {}
try:
    fastipc.connect(address, authkey=b"wrong key", timeout=10)
except fastipc.AuthenticationError as e:
    out["wrong_key"] = type(e).__name__
with fastipc.connect(address, timeout=10) as bare:
    # No key: the first message is the listener's challenge, never our data's answer.
    out["no_key_got_challenge"] = bare.recv_bytes().startswith(b"#CHALLENGE#")
with fastipc.connect(address, authkey=key, timeout=10) as conn:
    conn.send_bytes(b"across hosts")
    out["echo"] = conn.recv_bytes().decode()
print(json.dumps(out), flush=True)
"""


def _ip(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30)


class Hosts:
    """Two namespaces, ``server`` and ``client``, on one veth link."""

    def __init__(self) -> None:
        tag = uuid.uuid4().hex[:8]
        self.server = f"fipc-s-{tag}"
        self.client = f"fipc-c-{tag}"
        self.links = (f"fvs{tag}", f"fvc{tag}")  # at most 15 characters

    def exec(self, ns: str) -> list[str]:
        return ["ip", "netns", "exec", ns]

    def setup(self) -> None:
        steps = [
            ("link", "add", self.links[0], "type", "veth", "peer", "name", self.links[1]),
            ("link", "set", self.links[0], "netns", self.server),
            ("link", "set", self.links[1], "netns", self.client),
            ("-n", self.server, "addr", "add", f"{SERVER_IP}/24", "dev", self.links[0]),
            ("-n", self.client, "addr", "add", f"{CLIENT_IP}/24", "dev", self.links[1]),
            ("-n", self.server, "link", "set", self.links[0], "up"),
            ("-n", self.client, "link", "set", self.links[1], "up"),
            ("-n", self.server, "link", "set", "lo", "up"),
            ("-n", self.client, "link", "set", "lo", "up"),
        ]
        for step in steps:
            done = _ip(*step)
            if done.returncode != 0:
                raise RuntimeError(f"ip {' '.join(step)}: {done.stderr.strip()}")

    def teardown(self) -> None:
        # Deleting a namespace deletes the veth end inside it, and so the pair.
        for ns in (self.server, self.client):
            _ip("netns", "delete", ns)


@pytest.fixture
def hosts() -> Iterator[Hosts]:
    if sys.platform != "linux" or shutil.which("ip") is None:
        pytest.skip("needs Linux and the ip command (iproute2)")
    h = Hosts()
    made = _ip("netns", "add", h.server)
    if made.returncode != 0:
        pytest.skip(f"ip netns is not permitted here: {made.stderr.strip()}")
    try:
        if _ip("netns", "add", h.client).returncode != 0:
            pytest.skip("ip netns is not permitted here (second namespace)")
        try:
            h.setup()
        except RuntimeError as e:
            pytest.skip(f"cannot make a veth pair here: {e}")
        yield h
    finally:
        h.teardown()


def test_listener_and_client_on_two_hosts(hosts, backend_name, sock_dir):
    env = dict(os.environ, FASTIPC_BACKEND=backend_name, FASTIPC_SOCKET_DIR=sock_dir)
    server = subprocess.Popen(
        [*hosts.exec(hosts.server), sys.executable, "-c", SERVER, KEY, SERVER_IP],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert server.stdout is not None
        refused = json.loads(server.stdout.readline())
        assert f"tcp:{SERVER_IP}:0" in refused["unauthenticated_refused"]
        address = json.loads(server.stdout.readline())["address"]
        assert address.startswith(f"tcp:{SERVER_IP}:")
        client = subprocess.run(
            [*hosts.exec(hosts.client), sys.executable, "-c", CLIENT, address, KEY],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
        )
        assert client.returncode == 0, client.stderr
        assert json.loads(client.stdout) == {
            "wrong_key": "AuthenticationError",
            "no_key_got_challenge": True,
            "echo": "stsoh ssorca",
        }
        # The wrong key and the keyless client were refused; the right one got through.
        assert json.loads(server.stdout.readline()) == {"refused": 2, "echoed": True}
        assert server.wait(timeout=30) == 0, server.stderr.read() if server.stderr else ""
    finally:
        server.kill()
        server.wait()
        for stream in (server.stdout, server.stderr):
            if stream is not None:
                stream.close()
