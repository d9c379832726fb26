"""Benchmark helpers of fastipc (the ``fastipc bench`` machinery)."""
