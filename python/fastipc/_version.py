"""The distribution name and version of fastipc, from the installed package's metadata.

The version is written once, in Cargo.toml: the build backend (maturin) copies it into the
package metadata (``dynamic = ["version"]`` in pyproject.toml), read here, and the extension
reports the same number in ``build_info()``. The distribution is ``fastipc-rs`` on PyPI (the name
``fastipc`` belongs to another project); the import name and the command stay ``fastipc``.
"""

from __future__ import annotations

import functools

__all__ = ["BENCH_EXTRA", "DISTRIBUTION", "version"]

DISTRIBUTION = "fastipc-rs"

#: how to install the optional baselines and matplotlib of ``fastipc bench``
BENCH_EXTRA = f"pip install '{DISTRIBUTION}[bench]'"


@functools.cache
def version() -> str:
    """The installed version (``"0+unknown"`` for a source tree that was never installed).

    Read on first use: importing ``importlib.metadata`` costs more than importing fastipc."""
    from importlib import metadata

    try:
        return metadata.version(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        return "0+unknown"
