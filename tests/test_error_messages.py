"""The two backends say the same thing about the same bad input: the same exception type and the
same message, word for word, with the user's text quoted as Python's ``repr`` quotes it."""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType
from typing import Any

import pytest
from conftest import SELECTED, load_backend

pytestmark = pytest.mark.skipif(
    SELECTED != ["rust", "python"], reason="compares the two backends; one is not selected"
)

Call = Callable[[ModuleType], Any]

CASES: dict[str, Call] = {
    "kind": lambda b: b.socketpair("bogus"),
    "kind with a quote": lambda b: b.socketpair("it's"),
    "file lock kind": lambda b: b.FileLock("/nonexistent-dir/x", kind="z'z"),
    "empty unix path": lambda b: b.resolve("unix:"),
    "no port": lambda b: b.resolve("bad addr:xx"),
    "no colon": lambda b: b.resolve("tcp:0"),
    "empty port": lambda b: b.resolve("host:"),
    "unclosed bracket": lambda b: b.resolve("[fe80::1"),
    "bracket without port": lambda b: b.resolve("[fe80::1]x"),
    "IPv6 without brackets": lambda b: b.resolve("fe80::1:80"),
    "port out of range": lambda b: b.resolve(('h"x', 70000)),
    "port far out of range": lambda b: b.resolve(("h", 2**63)),
    "host with a quote": lambda b: b.resolve(("it's", 70000)),
    "host not a str": lambda b: b.resolve((1, 70)),
    "port not an int": lambda b: b.resolve(("h", "x")),
    "port a bool": lambda b: b.resolve(("h", True)),
    "tuple of three": lambda b: b.resolve(("h", 1, 2)),
    "empty host": lambda b: b.resolve(("", 1)),
    "empty bracketed host": lambda b: b.resolve(("[]", 1)),
    "NUL in host": lambda b: b.resolve(("a\0b", 1)),
    "queue name": lambda b: b.MessageQueue("/a/b", create=True),
    "semaphore NUL": lambda b: b.Semaphore("/a\0b", create=True),
    "segment name": lambda b: b.SharedMemory("/a/b", create=True, size=10),
    "ftok NUL": lambda b: b.ftok("/nonexistent\0", 1),
}


def _outcome(backend: ModuleType, call: Call) -> tuple[str, str]:
    with pytest.raises(Exception) as info:
        call(backend)
    return type(info.value).__name__, str(info.value)


@pytest.mark.parametrize("case", list(CASES))
def test_same_error_on_both_backends(case: str) -> None:
    call = CASES[case]
    if case in ("queue name", "ftok NUL") and not hasattr(load_backend("rust"), "ftok"):
        pytest.skip("POSIX/System V message queues are Linux-only")
    rust = _outcome(load_backend("rust"), call)
    python = _outcome(load_backend("python"), call)
    assert rust == python


def test_user_text_is_quoted_as_python_repr() -> None:
    assert _outcome(load_backend("rust"), CASES["semaphore NUL"]) == (
        "ValueError",
        "invalid semaphore name '/a\\x00b': it contains a NUL byte",
    )
