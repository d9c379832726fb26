"""What ``listen(..., allow_uids=, allow_gids=)`` accepts, on both backends, and that the policy
it builds is the one in force."""

from __future__ import annotations

import os

import pytest

#: Every kind of iterable of ints the stub's ``Iterable[int]`` promises.
ITERABLES = {
    "list": list,
    "tuple": tuple,
    "set": set,
    "frozenset": frozenset,
    "generator": lambda ids: (i for i in ids),
    "dict-keys": lambda ids: dict.fromkeys(ids).keys(),
    "iterator": iter,
}


def _admitted(backend, sock_dir, **policy) -> bool:
    """Whether a connection from this process gets through a listener with ``policy``."""
    with backend.listen("127.0.0.1:0", socket_dir=sock_dir, **policy) as lst:
        with backend.connect(lst.address, socket_dir=sock_dir, timeout=5) as client:
            try:
                conn = lst.accept(timeout=0.2)
            except TimeoutError:
                assert lst.refused == 1
                # The refused peer sees the end of the connection.
                with pytest.raises(EOFError):
                    client.recv_bytes()
                return False
            with conn:
                assert lst.refused == 0
                return True


@pytest.mark.parametrize("make", ITERABLES.values(), ids=ITERABLES.keys())
def test_allow_uids_takes_any_iterable_of_ints(backend, sock_dir, make):
    me = os.geteuid()
    assert _admitted(backend, sock_dir, allow_uids=make([me + 1, me])) is True
    assert _admitted(backend, sock_dir, allow_uids=make([me + 1])) is False


@pytest.mark.parametrize("make", ITERABLES.values(), ids=ITERABLES.keys())
def test_allow_gids_takes_any_iterable_of_ints(backend, sock_dir, make):
    me = os.getegid()
    assert _admitted(backend, sock_dir, allow_gids=make([me, me + 1])) is True
    assert _admitted(backend, sock_dir, allow_gids=make([me + 1])) is False


@pytest.mark.parametrize("option", ["allow_uids", "allow_gids"])
@pytest.mark.parametrize("ids", [[True], [False], [0, True], [1.0], ["0"], [None]], ids=repr)
def test_ids_that_are_not_ints_are_type_errors(backend, sock_dir, option, ids):
    with pytest.raises(TypeError, match="user and group ids are ints"):
        backend.listen("127.0.0.1:0", socket_dir=sock_dir, **{option: ids})


@pytest.mark.parametrize("option", ["allow_uids", "allow_gids"])
def test_a_non_iterable_is_a_type_error(backend, sock_dir, option):
    with pytest.raises(TypeError):
        backend.listen("127.0.0.1:0", socket_dir=sock_dir, **{option: 0})


@pytest.mark.parametrize("option", ["allow_uids", "allow_gids"])
@pytest.mark.parametrize("bad", [-1, 2**32, 2**64])
def test_ids_out_of_range_are_overflow_errors(backend, sock_dir, option, bad):
    with pytest.raises(OverflowError, match=f"id {bad} out of range"):
        backend.listen("127.0.0.1:0", socket_dir=sock_dir, **{option: [0, bad]})


EMPTY = {
    "list": lambda: [],
    "set": set,
    "generator": lambda: (i for i in ()),
    "dict-keys": lambda: {}.keys(),
}


@pytest.mark.parametrize("make", EMPTY.values(), ids=EMPTY.keys())
@pytest.mark.parametrize("option", ["allow_uids", "allow_gids"])
@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("127.0.0.1:0", "stream"),
        ("127.0.0.1:0", "seqpacket"),
        ("unix:@fastipc-test-empty-policy", "stream"),
        ("tcp:127.0.0.1:0", "stream"),
        ("127.0.0.1:0", "datagram"),
    ],
    ids=["remapped", "seqpacket", "abstract", "tcp", "datagram"],
)
def test_an_empty_allow_list_is_a_value_error(backend, sock_dir, make, option, address, kind):
    # An empty list (an empty config) must not mean "everyone": nothing is bound.
    address = address.replace("policy", f"policy-{os.getpid()}")
    with pytest.raises(ValueError, match=f"{option} is empty: it would admit no one") as info:
        backend.listen(address, kind=kind, socket_dir=sock_dir, **{option: make()})
    assert type(info.value) is ValueError
    assert os.listdir(sock_dir) == []


def test_an_empty_allow_list_beside_a_full_one_is_a_value_error(backend, sock_dir):
    with pytest.raises(ValueError, match="allow_gids is empty"):
        backend.listen("127.0.0.1:0", socket_dir=sock_dir, allow_uids=[os.geteuid()], allow_gids=[])
