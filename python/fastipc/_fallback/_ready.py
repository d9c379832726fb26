"""Readiness descriptors of the fallback's queues and channels (``fileno``/``space_fileno``).

Futex words cannot be polled, so the first ``fileno()`` call of a handle starts one helper
thread that watches the ring and keeps a pipe readable exactly while the condition holds (a
message waits; there is room): it sleeps on the word whose change may flip the condition. The
fast path pays nothing while nobody asked (no thread, no announced sleeper); once asked, each
change of the watched word costs its writer one ``FUTEX_WAKE``.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable

from ._ringsync import SLICE, futex_wait, futex_wake

__all__ = ["Probe", "Readiness"]

#: (condition holds, address of the word to sleep on, its value seen) or None when closed
Probe = Callable[[], "tuple[bool, int, int] | None"]


class Readiness:
    """A pipe readable while ``probe`` says the condition holds, kept so by a daemon thread."""

    def __init__(self, probe: Probe, label: str) -> None:
        self._probe = probe
        self._read, self._write = os.pipe()
        os.set_blocking(self._read, False)
        os.set_blocking(self._write, False)
        self._stop = False
        self._address = 0
        self._thread = threading.Thread(
            target=self._run, name=f"fastipc-ready {label}", daemon=True
        )
        self._thread.start()

    def fileno(self) -> int:
        return self._read

    def _run(self) -> None:
        armed = False
        while not self._stop:
            try:
                seen = self._probe()
            except Exception:  # a corrupt ring: say "ready", the reader gets the error
                seen = (True, 0, 0)
            if seen is None:
                return
            ready, address, observed = seen
            if ready and not armed:
                with contextlib.suppress(BlockingIOError):
                    os.write(self._write, b"\0")
            elif armed and not ready:
                with contextlib.suppress(BlockingIOError):
                    os.read(self._read, 64)
            armed = ready
            self._address = address
            if address:
                futex_wait(address, observed, SLICE)
            else:
                time.sleep(SLICE)

    def close(self) -> None:
        self._stop = True
        if self._address:
            futex_wake(self._address)
        self._thread.join(2 * SLICE + 1.0)
        os.close(self._read)
        os.close(self._write)

    def abandon(self) -> None:
        """In a forked child: the thread is not there; only the descriptors are ours."""
        os.close(self._read)
        os.close(self._write)
