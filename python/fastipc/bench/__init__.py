"""The benchmark of fastipc: ``fastipc bench`` and the helpers of ``benches/``."""
