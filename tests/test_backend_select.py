"""FASTIPC_BACKEND chooses the implementation behind the ``fastipc`` facade at import."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from types import ModuleType

import fastipc
import pytest
from conftest import SELECTED
from fastipc import _backend, _fallback

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
        "UnpicklingError",
    ):
        assert getattr(fastipc, name) is getattr(_errors, name)


# --------------------------------------------------------------------------------------------
# the choice in-process, with a fake extension module in sys.modules

EXTENSION = "fastipc._fastipc"
#: What the extension built off Unix (src/py_unsupported.rs) holds, and all it holds.
REASON = (
    "fastipc's Rust backend is built on Unix only, not on windows: this extension has none of it"
)


def _no_backend_extension() -> ModuleType:
    fake = ModuleType(EXTENSION)
    fake.AVAILABLE = False  # type: ignore[attr-defined]
    fake.UNAVAILABLE_REASON = REASON  # type: ignore[attr-defined]
    return fake


@pytest.fixture
def no_backend(monkeypatch: pytest.MonkeyPatch) -> None:
    """The extension as built off Unix: it imports, and says it is no backend."""
    monkeypatch.setitem(sys.modules, EXTENSION, _no_backend_extension())
    monkeypatch.delenv("FASTIPC_BACKEND", raising=False)


@pytest.fixture
def no_extension(monkeypatch: pytest.MonkeyPatch) -> None:
    """No extension at all: importing it raises ImportError."""
    monkeypatch.setitem(sys.modules, EXTENSION, None)
    monkeypatch.delenv("FASTIPC_BACKEND", raising=False)


def test_an_extension_that_is_no_backend_selects_the_fallback_with_its_reason(no_backend):
    selection = _backend.choose()
    assert selection.module is _fallback
    assert selection.fallback_reason == REASON
    assert _backend.load() is _fallback


def test_rust_required_but_the_extension_is_no_backend(no_backend, monkeypatch):
    monkeypatch.setenv("FASTIPC_BACKEND", "rust")
    with pytest.raises(ImportError) as info:
        _backend.choose()
    assert (
        str(info.value) == f"FASTIPC_BACKEND=rust, but the Rust extension is no backend: {REASON}"
    )


def test_python_required_beside_an_extension_that_is_no_backend(no_backend, monkeypatch):
    monkeypatch.setenv("FASTIPC_BACKEND", "python")
    assert _backend.choose() == (_fallback, "FASTIPC_BACKEND=python")


def test_an_extension_without_a_reason_still_selects_the_fallback(monkeypatch):
    fake = ModuleType(EXTENSION)
    fake.AVAILABLE = False  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, EXTENSION, fake)
    monkeypatch.delenv("FASTIPC_BACKEND", raising=False)
    assert _backend.choose() == (_fallback, "it says it is not available")


def test_no_extension_selects_the_fallback_with_the_import_error(no_extension):
    selection = _backend.choose()
    assert selection.module is _fallback
    assert selection.fallback_reason == (
        "the Rust extension did not load: import of fastipc._fastipc halted; None in sys.modules"
    )


def test_rust_required_but_no_extension(no_extension, monkeypatch):
    monkeypatch.setenv("FASTIPC_BACKEND", "rust")
    with pytest.raises(ImportError, match=r"^import of fastipc\._fastipc halted"):
        _backend.choose()


def test_the_built_extension_is_a_backend(monkeypatch):
    if "rust" not in SELECTED:
        pytest.skip("the rust backend is not selected by FASTIPC_TEST_BACKENDS")
    monkeypatch.delenv("FASTIPC_BACKEND", raising=False)
    extension = importlib.import_module("fastipc._fastipc")
    assert getattr(extension, "AVAILABLE", True) is True
    assert not hasattr(extension, "UNAVAILABLE_REASON")
    assert _backend.choose() == (extension, None)


def test_the_facade_runs_on_the_fallback_beside_an_extension_that_is_no_backend():
    # A fresh interpreter (it imports the fastipc the tests import), where the fake extension is
    # in place before `import fastipc`.
    probe = (
        "import sys, types\n"
        f"fake = types.ModuleType({EXTENSION!r})\n"
        f"fake.AVAILABLE, fake.UNAVAILABLE_REASON = False, {REASON!r}\n"
        f"sys.modules[{EXTENSION!r}] = fake\n" + PROBE
    )
    env = dict(os.environ)
    env.pop("FASTIPC_BACKEND", None)
    run = subprocess.run(
        [sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=30
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout == "python True True\n"
    env["FASTIPC_BACKEND"] = "rust"
    run = subprocess.run(
        [sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=30
    )
    assert run.returncode == 1
    assert run.stderr.splitlines()[-1] == (
        f"ImportError: FASTIPC_BACKEND=rust, but the Rust extension is no backend: {REASON}"
    )
