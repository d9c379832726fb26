"""Waiting for a descriptor beside an event loop's own descriptor (``poll_beside`` in
``src/wait.rs``, in Python): the idle wait of ``fastipc.aio`` (``aio/_ready.py``) and the
fallback's connection receives (``_fallback/_aio.py``). Imports nothing of fastipc."""

from __future__ import annotations

import math
import select

__all__ = ["wait_beside"]

if hasattr(select, "poll"):
    _POLLIN = select.POLLIN

    def wait_beside(fd: int, other: int, timeout: float) -> bool:
        """Waits up to ``timeout`` for ``fd`` to be readable, unless ``other`` (an event loop's
        own descriptor) becomes readable, or unusable, first: whether ``fd`` is readable and
        ``other`` is not. ``poll`` releases the GIL and is restarted after a signal whose
        handler returned (PEP 475); a handler that raises (Ctrl-C) ends the wait."""
        poller = select.poll()
        poller.register(fd, _POLLIN)
        poller.register(other, _POLLIN)
        events = poller.poll(max(0, math.ceil(timeout * 1000)))
        return bool(events) and all(ready == fd for ready, _ in events)

else:  # pragma: no cover - Windows

    def wait_beside(fd: int, other: int, timeout: float) -> bool:
        return False  # no event loop here has a descriptor to wait beside
