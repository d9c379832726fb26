"""Chooses the backend: the Rust extension, or the pure-Python fallback.

``FASTIPC_BACKEND=rust`` insists on the extension (an ImportError if it cannot load or is no
backend), ``FASTIPC_BACKEND=python`` selects the fallback, and the default takes the extension when
it loads and is a backend, and the fallback otherwise. Off Unix (Windows) the extension is built
without the core: it says ``AVAILABLE = False`` and why in ``UNAVAILABLE_REASON``, and the fallback
is the implementation.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Iterable, MutableMapping
from types import ModuleType
from typing import NamedTuple

from ._records import unsupported

__all__ = ["Selection", "choose", "export", "load"]

#: Why a name is missing from a backend: only the Rust extension lacks names, and only those of
#: the Linux-only mechanisms (marked by ``sys.platform`` in ``_fastipc.pyi``) off Linux.
_MISSING = "not available on this platform (Linux only)"


class Selection(NamedTuple):
    """The backend chosen, and why it is the fallback (``None`` when it is the extension)."""

    module: ModuleType
    fallback_reason: str | None


def choose() -> Selection:
    """Chooses the backend as ``FASTIPC_BACKEND`` says (see the module's docstring)."""
    choice = os.environ.get("FASTIPC_BACKEND", "").strip().lower()
    if choice not in ("", "rust", "python"):
        raise ImportError(f"FASTIPC_BACKEND must be 'rust' or 'python', not {choice!r}")
    if choice == "python":
        return Selection(_fallback(), "FASTIPC_BACKEND=python")
    try:
        extension = importlib.import_module(f"{__package__}._fastipc")
    except ImportError as exc:
        if choice == "rust":
            raise
        return Selection(_fallback(), f"the Rust extension did not load: {exc}")
    if getattr(extension, "AVAILABLE", True) is False:
        reason = str(getattr(extension, "UNAVAILABLE_REASON", "it says it is not available"))
        if choice == "rust":
            raise ImportError(
                f"FASTIPC_BACKEND=rust, but the Rust extension is no backend: {reason}"
            )
        return Selection(_fallback(), reason)
    return Selection(extension, None)


def load() -> ModuleType:
    """The backend module ``choose`` picks."""
    return choose().module


def _fallback() -> ModuleType:
    from . import _fallback

    return _fallback


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
