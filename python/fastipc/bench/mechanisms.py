"""Every mechanism of ``fastipc bench``: importing this module imports the modules of mechanisms
named in :data:`MODULES`, in that order, and each registers its own (in :data:`REGISTRY`).

The order is the order of the rows within a family in the tables (see :func:`.base.ordered`), and
of ``--mechanisms all``. A new family of mechanisms is a new module here.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping

from .base import REGISTRY as _REGISTRY
from .base import Mechanism

__all__ = ["MODULES", "REGISTRY", "defaults"]

MODULES = ("sockets", "fdpass", "alternatives", "classic", "shm", "channel", "cpeer")
"""The modules of mechanisms, in :mod:`fastipc.bench`."""

for _module in MODULES:
    importlib.import_module(f"{__package__}.{_module}")

REGISTRY: Mapping[str, Mechanism] = _REGISTRY
"""Every mechanism by name, in the order of registration."""


def defaults() -> list[str]:
    """The mechanisms ``fastipc bench`` runs when ``--mechanisms`` is not given."""
    return [name for name, mechanism in REGISTRY.items() if mechanism.default]
