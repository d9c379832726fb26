"""Address parsing, ``resolve()`` and ``default_socket_dir()`` (pure: no sockets are made)."""

from __future__ import annotations

import errno
import os

import fastipc
import pytest
from conftest import assert_oserror
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

# ------------------------------------------------------------------------------ unit tests


def test_backend_constants(backend, backend_name):
    assert backend.DEFAULT_MAX_MESSAGE == 64 * 1024 * 1024
    assert isinstance(backend.BACKEND, str)
    assert backend_name == backend.BACKEND


@pytest.mark.parametrize(
    ("address", "tail"),
    [
        ("127.0.0.1:5000", "127.0.0.1:5000"),
        (("127.0.0.1", 5000), "127.0.0.1:5000"),
        ("localhost:5000", "127.0.0.1:5000"),
        (("localhost", 5000), "127.0.0.1:5000"),
        ("127.1.2.3:80", "127.1.2.3:80"),
        ("127.255.255.254:65535", "127.255.255.254:65535"),
        ("127.0.0.1:0", "127.0.0.1:0"),
        ("[::1]:5000", "[::1]:5000"),
        (("::1", 5000), "[::1]:5000"),
    ],
)
def test_resolve_remapped(backend, sock_dir, address, tail):
    assert backend.resolve(address, socket_dir=sock_dir) == f"unix:{sock_dir}/{tail}"


def test_resolve_remapped_uses_env_socket_dir(backend, sock_dir, tmp_path, monkeypatch):
    other = str(tmp_path / "elsewhere")
    monkeypatch.setenv("FASTIPC_SOCKET_DIR", other)
    assert backend.resolve("127.0.0.1:7") == f"unix:{other}/127.0.0.1:7"
    # the argument wins over the environment
    assert backend.resolve("127.0.0.1:7", socket_dir=sock_dir) == f"unix:{sock_dir}/127.0.0.1:7"
    # and nothing was created: resolve does not touch the file system
    assert not os.path.exists(other)


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        ("unix:/run/app.sock", "unix:/run/app.sock"),
        ("unix:@name", "unix:@name"),
        ("unix:@a b/c", "unix:@a b/c"),
        ("tcp:127.0.0.1:5000", "tcp:127.0.0.1:5000"),
        ("tcp:[::1]:5000", "tcp:[::1]:5000"),
        ("10.1.2.3:5000", "tcp:10.1.2.3:5000"),
        (("10.1.2.3", 5000), "tcp:10.1.2.3:5000"),
        (("example.org", 80), "tcp:example.org:80"),
        ("example.org:80", "tcp:example.org:80"),
        ("0.0.0.0:5000", "tcp:0.0.0.0:5000"),
        ("128.0.0.1:1", "tcp:128.0.0.1:1"),
        ("tcp:10.0.0.1:0", "tcp:10.0.0.1:0"),
    ],
)
def test_resolve_not_remapped(backend, sock_dir, address, expected):
    assert backend.resolve(address, socket_dir=sock_dir) == expected


def test_resolve_tcp_localhost_is_tcp(backend, sock_dir):
    got = backend.resolve("tcp:localhost:5000", socket_dir=sock_dir)
    assert got in ("tcp:localhost:5000", "tcp:127.0.0.1:5000")


def test_resolve_udp_is_synonym_of_tcp(backend, sock_dir):
    assert backend.resolve("udp:127.0.0.1:53", socket_dir=sock_dir) == backend.resolve(
        "tcp:127.0.0.1:53", socket_dir=sock_dir
    )


def test_resolve_relative_unix_path(backend, sock_dir):
    got = backend.resolve("unix:app.sock", socket_dir=sock_dir)
    assert got.startswith("unix:")
    assert got.endswith("app.sock")
    assert not got.startswith(f"unix:{sock_dir}")  # relative to the cwd, not the socket dir


BAD_ADDRESSES = [
    "127.0.0.1",
    "127.0.0.1:",
    "127.0.0.1:65536",
    "127.0.0.1:99999",
    "127.0.0.1:-1",
    "127.0.0.1:abc",
    "127.0.0.1:5000x",
    ":5000",
    "localhost",
    "unix:",
    "unix:/a\0b",
    "tcp:",
    "tcp:127.0.0.1",
    "tcp::80",
    "tcp:127.0.0.1:70000",
    "[::1]",
    "[::1:5000",
    "[]:5000",
    "",
    "10.0.0.1:80\0",
    ("127.0.0.1", 65536),
    ("127.0.0.1", -1),
    ("", 5000),
    ("127.0.0.1\0", 5000),
]


@pytest.mark.parametrize("address", BAD_ADDRESSES, ids=repr)
def test_bad_address_value_error(backend, sock_dir, address):
    with pytest.raises(ValueError) as info:
        backend.resolve(address, socket_dir=sock_dir)
    assert not isinstance(info.value, OSError)
    text = str(info.value)
    shown = address if isinstance(address, str) else address[0]
    assert (
        shown.replace("\0", "") in text.replace("\\x00", "").replace("\\0", "")
        or repr(address) in text
    ), f"the error does not name the address: {text!r}"


@pytest.mark.parametrize("address", ["127.0.0.1", "127.0.0.1:65536", "unix:"], ids=repr)
def test_bad_address_rejected_by_listen_and_connect(backend, sock_dir, address):
    with pytest.raises(ValueError):
        backend.listen(address, socket_dir=sock_dir)
    with pytest.raises(ValueError):
        backend.connect(address, socket_dir=sock_dir)
    assert os.listdir(sock_dir) == []


@pytest.mark.parametrize("address", [5000, None, ("127.0.0.1",), ("127.0.0.1", "80")])
def test_wrong_type_address(backend, sock_dir, address):
    with pytest.raises((TypeError, ValueError)):
        backend.resolve(address, socket_dir=sock_dir)


def test_default_socket_dir(backend, monkeypatch, tmp_path):
    monkeypatch.setenv("FASTIPC_SOCKET_DIR", str(tmp_path / "x"))
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "run"))
    assert backend.default_socket_dir() == str(tmp_path / "x")
    monkeypatch.delenv("FASTIPC_SOCKET_DIR")
    assert backend.default_socket_dir() == str(tmp_path / "run" / "fastipc")
    monkeypatch.delenv("XDG_RUNTIME_DIR")
    assert backend.default_socket_dir() == f"/tmp/fastipc-{os.geteuid()}"
    # not created by the call
    assert not os.path.exists(tmp_path / "run")


def test_resolve_without_socket_dir_uses_default(backend, monkeypatch, tmp_path):
    monkeypatch.delenv("FASTIPC_SOCKET_DIR")
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    assert backend.resolve("127.0.0.1:1") == f"unix:{tmp_path}/fastipc/127.0.0.1:1"
    assert not os.path.exists(tmp_path / "fastipc")


def test_long_unix_path_enametoolong(backend, sock_dir):
    long_path = os.path.join(sock_dir, "x" * (120 - len(sock_dir)))
    assert len(long_path) > 108
    for call in (
        lambda: backend.listen(f"unix:{long_path}"),
        lambda: backend.connect(f"unix:{long_path}"),
        lambda: backend.listen(f"unix:{long_path}", kind="datagram"),
    ):
        with pytest.raises(OSError) as info:
            call()
        assert_oserror(info.value, errno.ENAMETOOLONG)
    assert os.listdir(sock_dir) == []


def test_long_socket_dir_enametoolong(backend, sock_dir):
    deep = os.path.join(sock_dir, "d" * (100 - len(sock_dir)))
    os.mkdir(deep, 0o700)
    try:
        with pytest.raises(OSError) as info:
            backend.listen("127.0.0.1:5000", socket_dir=deep)
        assert_oserror(info.value, errno.ENAMETOOLONG)
        with pytest.raises(OSError) as info:
            backend.connect("127.0.0.1:5000", socket_dir=deep)
        assert_oserror(info.value, errno.ENAMETOOLONG)
        assert os.listdir(deep) == []
    finally:
        os.rmdir(deep)


def test_path_of_107_bytes_works(backend, sock_dir):
    path = os.path.join(sock_dir, "p" * (107 - len(sock_dir) - 1))
    assert len(path) == 107
    with backend.listen(f"unix:{path}") as lst:
        assert lst.path == path
        with backend.connect(f"unix:{path}") as c, lst.accept(timeout=5) as s:
            c.send_bytes(b"ok")
            assert s.recv_bytes() == b"ok"


# ------------------------------------------------------------------------------ properties

octet = st.integers(0, 255)
port = st.integers(0, 65535)
loopback_v4 = st.builds(lambda a, b, c: f"127.{a}.{b}.{c}", octet, octet, octet)
other_v4 = st.builds(
    lambda a, b, c, d: f"{a}.{b}.{c}.{d}",
    st.integers(1, 255).filter(lambda x: x != 127),
    octet,
    octet,
    octet,
)
label = st.text("abcdefghijklmnopqrstuvwxyz0123456789-", min_size=1, max_size=12).filter(
    lambda s: not s.startswith("-") and not s.endswith("-")
)
hostname = (
    st.lists(label, min_size=1, max_size=3)
    .map(".".join)
    .filter(lambda h: h != "localhost" and not h.replace(".", "").isdigit())
)
path_text = st.text(
    st.characters(blacklist_characters="\0", blacklist_categories=("Cs",)), min_size=1, max_size=60
)


@given(host=loopback_v4, p=port)
def test_prop_loopback_remapped(backend, sock_dir, host, p):
    expected = f"unix:{sock_dir}/{host}:{p}"
    assert backend.resolve(f"{host}:{p}", socket_dir=sock_dir) == expected
    assert backend.resolve((host, p), socket_dir=sock_dir) == expected
    assert backend.resolve(f"tcp:{host}:{p}", socket_dir=sock_dir) == f"tcp:{host}:{p}"


# A host spelled as a scheme is that scheme in the text form ("unix:0" is the path "0"); as a
# tuple, or after "tcp:", it is a host like any other.
SCHEMES = {"unix", "tcp", "udp"}


@given(host=st.one_of(other_v4, hostname), p=port)
def test_prop_other_hosts_are_tcp(backend, sock_dir, host, p):
    if host not in SCHEMES:
        assert backend.resolve(f"{host}:{p}", socket_dir=sock_dir) == f"tcp:{host}:{p}"
    assert backend.resolve((host, p), socket_dir=sock_dir) == f"tcp:{host}:{p}"
    assert backend.resolve(f"tcp:{host}:{p}", socket_dir=sock_dir) == f"tcp:{host}:{p}"


@pytest.mark.parametrize("host", sorted(SCHEMES))
def test_host_spelled_as_a_scheme(backend, sock_dir, host):
    assert backend.resolve((host, 7), socket_dir=sock_dir) == f"tcp:{host}:7"
    assert backend.resolve(f"tcp:{host}:7", socket_dir=sock_dir) == f"tcp:{host}:7"
    if host == "unix":
        assert backend.resolve("unix:7", socket_dir=sock_dir) == "unix:7"
    else:
        with pytest.raises(ValueError, match=f"'{host}:7'"):
            backend.resolve(f"{host}:7", socket_dir=sock_dir)


@given(host=st.one_of(loopback_v4, other_v4, hostname), p=st.integers(65536, 10**7))
def test_prop_port_out_of_range(backend, sock_dir, host, p):
    if host not in SCHEMES:  # ("unix:70000" is a path)
        with pytest.raises(ValueError):
            backend.resolve(f"{host}:{p}", socket_dir=sock_dir)
    with pytest.raises(ValueError):
        backend.resolve((host, p), socket_dir=sock_dir)


@given(name=path_text)
def test_prop_unix_paths(backend, sock_dir, name):
    assume(not name.startswith("@"))
    absolute = "/" + name
    assert backend.resolve(f"unix:{absolute}", socket_dir=sock_dir) == f"unix:{absolute}"
    assert backend.resolve(f"unix:@{name}", socket_dir=sock_dir) == f"unix:@{name}"


@given(name=path_text, where=st.integers(0, 60))
def test_prop_nul_byte_rejected(backend, sock_dir, name, where):
    where = min(where, len(name))
    bad = name[:where] + "\0" + name[where:]
    with pytest.raises(ValueError):
        backend.resolve(f"unix:/{bad}", socket_dir=sock_dir)
    with pytest.raises(ValueError):
        backend.resolve(f"unix:@{bad}", socket_dir=sock_dir)


def _outcome(mod, address, sock_dir):
    try:
        return ("ok", mod.resolve(address, socket_dir=sock_dir))
    except ValueError:
        return ("ValueError", None)


address_text = st.one_of(
    st.text(max_size=40),
    st.text("0123456789.:[]abcdeflocahstunxp@/-", max_size=30),
    st.builds(
        lambda pre, h, p: f"{pre}{h}:{p}",
        st.sampled_from(["", "tcp:", "udp:", "unix:"]),
        st.one_of(loopback_v4, other_v4, hostname, st.just("[::1]"), st.just("localhost")),
        st.integers(-5, 70000),
    ),
)
address_tuple = st.tuples(
    st.one_of(
        loopback_v4, other_v4, hostname, st.just("::1"), st.just("localhost"), st.text(max_size=10)
    ),
    st.integers(-5, 70000),
)


@settings(max_examples=1000)  # a parser: more than the profile's 200
@given(address=st.one_of(address_text, address_tuple))
@example(address="tcp:localhost:5000")
@example(address="udp:LocalHost:53")
@example(address="LOCALHOST:5000")
@example(address="[::ffff:127.0.0.1]:5")
@example(address=("::1", 0))
def test_prop_backends_agree(both_backends, sock_dir, address):
    rust, python = both_backends
    assert _outcome(rust, address, sock_dir) == _outcome(python, address, sock_dir)


@settings(max_examples=1000)  # a parser: more than the profile's 200
@given(address=st.one_of(address_text, address_tuple))
def test_prop_resolve_total(backend, sock_dir, address):
    """Any input gives a well-formed answer or ValueError, never another exception."""
    kind, value = _outcome(backend, address, sock_dir)
    if kind == "ok":
        assert value.startswith(("unix:", "tcp:")), value
        assert "\0" not in value
    assert os.listdir(sock_dir) == []


def test_facade_exports_same_exceptions(backend):
    assert issubclass(fastipc.MessageTooLarge, ValueError)
    assert issubclass(fastipc.TruncatedMessage, EOFError)
    assert issubclass(fastipc.NotSupportedError, NotImplementedError)
