"""FASTIPC_BACKEND chooses the implementation behind the ``fastipc`` facade at import."""

from __future__ import annotations

import os
import subprocess
import sys

import fastipc
import pytest
from conftest import SELECTED

PROBE = (
    "import fastipc, fastipc._fallback as fb\n"
    "print(fastipc.BACKEND, fastipc.Connection is fb.Connection, fastipc.listen is fb.listen)\n"
)


def _run(value: str | None) -> subprocess.CompletedProcess:
    env = dict(os.environ)
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


def test_children_import_the_package_under_test():
    """Child processes inherit the interpreter and environment, nothing more: they import the
    same fastipc as the tests (installed, or the source tree of an editable install)."""
    proc = subprocess.run(
        [sys.executable, "-c", "import fastipc; print(fastipc.__file__)"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == f"{fastipc.__file__}\n"


def test_build_info_has_the_same_keys_on_both_backends(both_backends):
    rust, python = (b.build_info() for b in both_backends)
    assert list(rust) == list(python) == [
        "backend", "version", "profile", "target", "features", "gil_used"
    ]  # fmt: skip
    assert (rust["backend"], python["backend"]) == ("rust", "python")
    # one version, written in Cargo.toml: the extension's and the package metadata's
    assert rust["version"] == python["version"] == fastipc.__version__
    assert rust["profile"] in ("release", "debug")
    assert isinstance(rust["target"], str) and rust["target"].startswith(os.uname().machine)
    assert rust["features"] == ["python"]
    assert rust["gil_used"] is True  # #[pymodule(gil_used = true)], docs/architecture.md
    assert (python["profile"], python["target"], python["features"]) == (None, None, [])
    assert python["gil_used"] is False


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
