"""Chooses the backend: the Rust extension, or the pure-Python fallback.

``FASTIPC_BACKEND=rust`` insists on the extension (an ImportError if it cannot load),
``FASTIPC_BACKEND=python`` selects the fallback, and the default takes the extension when it loads
and the fallback otherwise (always on Windows, where the fallback is the implementation).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, MutableMapping
from types import ModuleType

from ._records import unsupported

__all__ = ["export", "load"]

#: Why a name is missing from a backend: only the Rust extension lacks names, and only those of
#: the Linux-only mechanisms (marked by ``sys.platform`` in ``_fastipc.pyi``) off Linux.
_MISSING = "not available on this platform (Linux only)"


def load() -> ModuleType:
    choice = os.environ.get("FASTIPC_BACKEND", "").strip().lower()
    if choice not in ("", "rust", "python"):
        raise ImportError(f"FASTIPC_BACKEND must be 'rust' or 'python', not {choice!r}")
    if choice == "python" or (choice == "" and sys.platform == "win32"):
        from . import _fallback

        return _fallback
    try:
        from . import _fastipc
    except ImportError:
        if choice == "rust":
            raise
        from . import _fallback

        return _fallback
    return _fastipc


def export(namespace: MutableMapping[str, object], names: Iterable[str]) -> None:
    """Fills ``namespace`` (the facade's globals) with the chosen backend's objects for each of
    ``names`` it does not define itself; a name the backend lacks here becomes a stand-in that
    raises ``NotSupportedError``, so that ``import fastipc`` works everywhere."""
    impl = load()
    for name in names:
        if name in namespace:
            continue
        try:
            namespace[name] = getattr(impl, name)
        except AttributeError:
            namespace[name] = unsupported(name, _MISSING)
