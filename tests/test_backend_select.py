"""FASTIPC_BACKEND chooses the implementation behind the ``fastipc`` facade at import."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from _helpers import PYTHON_SRC
from conftest import SELECTED

PROBE = (
    "import fastipc, fastipc._fallback as fb\n"
    "print(fastipc.BACKEND, fastipc.Connection is fb.Connection, fastipc.listen is fb.listen)\n"
)


def _run(value: str | None) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=PYTHON_SRC)
    env.pop("FASTIPC_BACKEND", None)
    if value is not None:
        env["FASTIPC_BACKEND"] = value
    return subprocess.run(
        [sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, timeout=30
    )


def test_python_selected():
    if "python" not in SELECTED:
        pytest.skip("the python backend is not selected by FASTIPC_TEST_BACKENDS")
    proc = _run("python")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "python True True\n"


def test_rust_selected():
    if "rust" not in SELECTED:
        pytest.skip("the rust backend is not selected by FASTIPC_TEST_BACKENDS")
    proc = _run("rust")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "rust False False\n"
    default = _run(None)
    assert default.returncode == 0, default.stderr
    assert default.stdout == "rust False False\n"


def test_bad_choice_is_import_error():
    proc = _run("java")
    assert proc.returncode == 1
    assert "ImportError" in proc.stderr
    assert "FASTIPC_BACKEND" in proc.stderr


def test_facade_exceptions_are_shared():
    import fastipc
    from fastipc import _errors

    for name in (
        "BufferTooShort",
        "IPCError",
        "MessageTooLarge",
        "NotSupportedError",
        "SharedSocketDirWarning",
        "TruncatedMessage",
    ):
        assert getattr(fastipc, name) is getattr(_errors, name)
