"""Chooses the backend: the Rust extension, or the pure-Python fallback.

``FASTIPC_BACKEND=rust`` insists on the extension (an ImportError if it cannot load),
``FASTIPC_BACKEND=python`` selects the fallback, and the default takes the extension when it loads
and the fallback otherwise (always on Windows, where the fallback is the implementation).
"""

from __future__ import annotations

import os
import sys
from types import ModuleType

__all__ = ["load"]


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
