"""``build_info()`` of the pure-Python backend: the same keys as the extension's."""

from __future__ import annotations

from .._version import version

__all__ = ["build_info"]


def build_info() -> dict[str, object]:
    """How this backend was built: pure Python, so no profile, target or Cargo features, and it
    never asks a free-threaded interpreter for the GIL."""
    return {
        "backend": "python",
        "version": version(),
        "profile": None,
        "target": None,
        "features": [],
        "gil_used": False,
    }
