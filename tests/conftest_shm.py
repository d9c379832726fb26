"""Fixtures of the shared memory, semaphore and lock tests (a plugin of ``conftest.py``).

* a session-wide guard: the whole suite must leave no ``/dev/shm`` entry behind, whoever made it
  (fastipc, C programs, posix_ipc). Leftovers are removed, then reported as an error. Entries of
  other test runs on the same machine (see ``foreign_shm_entry``) are neither.
* ``FASTIPC_REGISTRY_DIR`` points at a private temporary directory for the whole session (and
  for every child), so the tests never touch the user's real registry.
* ``names``: fresh ``/fastipc-test-…`` names (the per-test leak check watches names with
  ``fastipc`` in them, so a test that leaves one behind fails at once).
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Callable, Iterator

import pytest
from _helpers import SESSION_PIDS, foreign_shm_entry

SHM_DIR = "/dev/shm"


def _shm_entries() -> set[str]:
    try:
        return set(os.listdir(SHM_DIR))
    except FileNotFoundError:  # pragma: no cover - not Linux
        return set()


@pytest.fixture(scope="session", autouse=True)
def dev_shm_left_clean(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The suite as a whole leaves /dev/shm as it found it; the registry is private to it."""
    registry = tmp_path_factory.mktemp("registry")
    os.chmod(registry, 0o700)
    previous = os.environ.get("FASTIPC_REGISTRY_DIR")
    os.environ["FASTIPC_REGISTRY_DIR"] = str(registry)
    before = _shm_entries()
    yield str(registry)
    if previous is None:
        os.environ.pop("FASTIPC_REGISTRY_DIR", None)
    else:
        os.environ["FASTIPC_REGISTRY_DIR"] = previous
    left = sorted(
        n for n in _shm_entries() - before if not foreign_shm_entry(n, SESSION_PIDS, str(registry))
    )
    for name in left:
        with contextlib.suppress(OSError):
            os.unlink(os.path.join(SHM_DIR, name))
    if left:
        pytest.fail(f"the test suite left /dev/shm entries behind: {left}", pytrace=False)


@pytest.fixture
def registry_dir(dev_shm_left_clean: str) -> str:
    return dev_shm_left_clean


@pytest.fixture
def names() -> Callable[[], str]:
    """``names()`` returns a fresh ``/fastipc-test-<pid>-<hex>`` name."""

    def fresh() -> str:
        return f"/fastipc-test-{os.getpid()}-{secrets.token_hex(4)}"

    return fresh
