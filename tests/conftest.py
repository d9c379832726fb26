"""Shared fixtures of the fastipc test suite.

* ``backend``: every test that takes it runs once per backend (``fastipc._fastipc`` and
  ``fastipc._fallback``). ``FASTIPC_TEST_BACKENDS`` (comma separated, default ``rust,python``)
  chooses which; a selected backend that cannot be imported makes its tests error, never skip.
* ``sock_dir``: a fresh private (0700) socket directory per test, also exported as
  ``FASTIPC_SOCKET_DIR`` so that nothing falls back to the real default directory. At teardown
  it must be empty.
* an autouse check that no file descriptor leaked (``/proc/self/fd`` before and after).
* ``spawn``: start a child Python process running a script with a given backend.
* ``conftest_shm.py`` (a plugin): the suite as a whole leaves no ``/dev/shm`` entry behind, a
  private ``FASTIPC_REGISTRY_DIR``, and ``names()`` for segments and semaphores.
"""

from __future__ import annotations

import errno
import gc
import importlib
import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _helpers import (  # noqa: E402
    SPAWNED_PIDS,
    Child,
    c_compiler,
    foreign_shm_entry,
)

try:
    from hypothesis import HealthCheck, settings

    settings.register_profile(
        "fastipc",
        database=None,  # never write a .hypothesis directory into the tree
        deadline=None,
        max_examples=200,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    settings.load_profile("fastipc")
except ImportError:  # pragma: no cover - hypothesis is a test dependency
    pass

pytest_plugins = ["conftest_shm", "_aio"]

ALL_BACKENDS = ("rust", "python")
MODULES = {"rust": "fastipc._fastipc", "python": "fastipc._fallback"}


def default_backends() -> str:
    """Both backends, except where the extension is built without the core (off Unix): there it
    says ``AVAILABLE = False`` and the fallback is the only implementation to test. An extension
    that fails to import still counts as selected, so a broken build fails the suite."""
    try:
        extension = importlib.import_module(MODULES["rust"])
    except ImportError:
        return "rust,python"
    return "python" if getattr(extension, "AVAILABLE", True) is False else "rust,python"


def selected_backends() -> list[str]:
    raw = os.environ.get("FASTIPC_TEST_BACKENDS") or default_backends()
    names = [n.strip().lower() for n in raw.split(",") if n.strip()]
    bad = [n for n in names if n not in ALL_BACKENDS]
    if bad or not names:
        raise pytest.UsageError(
            f"FASTIPC_TEST_BACKENDS must list 'rust' and/or 'python', not {raw!r}"
        )
    return [n for n in ALL_BACKENDS if n in names]


SELECTED = selected_backends()


def load_backend(name: str):
    """Import a backend module. Any failure propagates: a broken build must not hide."""
    return importlib.import_module(MODULES[name])


@pytest.fixture(params=SELECTED, scope="session")
def backend_name(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def backend(backend_name: str):
    return load_backend(backend_name)


@pytest.fixture
def both_backends():
    """Both backend modules, for tests that compare them; skipped unless both are selected."""
    if len(SELECTED) < 2:
        pytest.skip("needs both backends (FASTIPC_TEST_BACKENDS selects only one)")
    return load_backend("rust"), load_backend("python")


# --------------------------------------------------------------------------------------------
# leak checks


def _fd_table() -> dict[int, str]:
    table = {}
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        try:
            table[fd] = os.readlink(f"/proc/self/fd/{fd}")
        except FileNotFoundError:
            # the descriptor os.listdir used for the directory itself, closed by now
            continue
    return table


def _shm_fastipc() -> set[str]:
    try:
        return {n for n in os.listdir("/dev/shm") if "fastipc" in n}
    except FileNotFoundError:  # pragma: no cover
        return set()


@pytest.fixture(autouse=True)
def no_leaks(request: pytest.FixtureRequest):
    """Fail the test if it leaves a file descriptor open or a fastipc /dev/shm entry behind.

    Set up before (and torn down after) every other function fixture of the test, so the
    fixtures' own resources count too. Objects only reachable from reference cycles (a
    traceback kept by ``pytest.raises``) are collected first: a finalizer closing an fd is not a
    leak, an fd that nothing owns any more is.
    """
    SPAWNED_PIDS.clear()
    gc.collect()
    before = _fd_table()
    shm_before = _shm_fastipc()
    yield
    gc.collect()
    after = _fd_table()
    leaked = {
        fd: target for fd, target in after.items() if fd not in before or before[fd] != target
    }
    shm_left = {
        n
        for n in _shm_fastipc() - shm_before
        if os.path.exists(f"/dev/shm/{n}")
        and not foreign_shm_entry(n, SPAWNED_PIDS, os.environ.get("FASTIPC_REGISTRY_DIR"))
    }
    if leaked or shm_left:
        # close them so that one leak does not cascade into every later test
        for fd in leaked:
            try:
                os.close(fd)
            except OSError:
                pass
        pytest.fail(
            f"leaked file descriptors {leaked!r} / /dev/shm entries {sorted(shm_left)!r}",
            pytrace=False,
        )


# --------------------------------------------------------------------------------------------
# socket directories


@pytest.fixture
def sock_dir(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch):
    """A fresh private socket directory (short path, mode 0700), empty again after the test."""
    base = tmp_path_factory.mktemp("s", numbered=True)
    path = base / "d"
    path.mkdir(mode=0o700)
    os.chmod(path, 0o700)
    monkeypatch.setenv("FASTIPC_SOCKET_DIR", str(path))
    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
    yield str(path)
    left = sorted(os.listdir(path)) if path.is_dir() and not path.is_symlink() else []
    # clean up whatever is left so that the failure is reported once
    for name in left:
        try:
            os.unlink(path / name)
        except OSError:
            pass
    assert left == [], f"left in the socket directory: {left}"


@pytest.fixture(autouse=True)
def _default_socket_dir_is_private(sock_dir: str):
    """Every test gets ``sock_dir`` as FASTIPC_SOCKET_DIR, so the real default is never used."""
    return sock_dir


# --------------------------------------------------------------------------------------------
# child processes


@pytest.fixture
def spawn(sock_dir: str, backend_name: str):
    """``spawn(script, backend=None, args=None, env=None)`` starts a child running ``script``.

    The child gets ``fastipc`` (the facade, with ``FASTIPC_BACKEND`` set to the backend under
    test unless ``backend=`` says otherwise), ``B`` (the backend module), ``ARGS`` (the JSON-able
    ``args``), ``report(**kw)`` (one JSON line on stdout) and ``wait_parent()`` (one JSON line
    from stdin). Children still running at teardown are killed.
    """
    children: list[Child] = []

    def start(script: str, backend: str | None = None, args=None, env=None, **kw) -> Child:
        extra = {"FASTIPC_SOCKET_DIR": sock_dir}
        extra.update(env or {})
        child = Child(script, backend or backend_name, args or {}, extra, **kw)
        children.append(child)
        return child

    yield start
    for child in children:
        child.cleanup()


# --------------------------------------------------------------------------------------------
# C programs


C_SOURCES = HERE / "c"


@pytest.fixture(scope="session")
def c_programs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Compile every ``tests/c/*.c`` with gcc into a temporary directory; name -> executable.
    Skipped (every test using it) when there is no C compiler on PATH."""
    cc = c_compiler()
    out = tmp_path_factory.mktemp("cbin")
    progs = {}
    for src in sorted(C_SOURCES.glob("*.c")):
        exe = out / src.stem
        proc = subprocess.run(
            [cc, "-O1", "-Wall", "-Wextra", "-Werror", "-std=c99", "-o", str(exe), str(src)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        if proc.returncode != 0:
            raise RuntimeError(f"{cc} failed for {src.name}:\n{proc.stderr}")
        progs[src.stem] = str(exe)
    return progs


# --------------------------------------------------------------------------------------------
# small shared assertions, as fixtures-free helpers re-exported for the test modules


def assert_oserror(exc: BaseException, code: int) -> None:
    assert isinstance(exc, OSError), repr(exc)
    got = errno.errorcode.get(exc.errno)
    assert exc.errno == code, f"errno {exc.errno} ({got}), want {errno.errorcode[code]}: {exc!r}"


def is_private_mode(path: str) -> bool:
    st = os.lstat(path)
    return stat.S_ISDIR(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o700


def wait_for(predicate, timeout: float = 5.0, interval: float = 0.002):
    """Poll ``predicate`` until it is true (returns its value) or fail at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not reached within {timeout} s: {predicate}")
        time.sleep(interval)


__all__ = ["assert_oserror", "is_private_mode", "wait_for"]
