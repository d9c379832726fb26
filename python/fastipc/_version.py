"""The distribution name and version of fastipc, from the installed package's metadata.

The version is written once, in Cargo.toml: the build backend (maturin) copies it into the
package metadata (``dynamic = ["version"]`` in pyproject.toml), read here, and the extension
reports the same number in ``build_info()``. The distribution is ``fastipc-rs`` on PyPI (the name
``fastipc`` belongs to another project); the import name and the command stay ``fastipc``.
"""

from __future__ import annotations

from importlib import metadata

__all__ = ["BENCH_EXTRA", "DISTRIBUTION", "__version__"]

DISTRIBUTION = "fastipc-rs"

#: how to install the optional baselines and matplotlib of ``fastipc bench``
BENCH_EXTRA = f"pip install '{DISTRIBUTION}[bench]'"


def _installed_version() -> str:
    try:
        return metadata.version(DISTRIBUTION)
    except metadata.PackageNotFoundError:  # imported from a source tree that was never installed
        return "0+unknown"


__version__ = _installed_version()
