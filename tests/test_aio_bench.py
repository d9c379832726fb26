"""``fastipc bench --async``: its rows run between real processes and say what they measured;
the many-connections row serves every connection and leaves no descriptor behind."""

from __future__ import annotations

import tempfile

import pytest
from fastipc.bench import aio as bench


@pytest.mark.parametrize("mechanism", [bench.FASTIPC, bench.STREAMS])
def test_round_trip_row(mechanism):
    row = bench.Row(mechanism, "asyncio", bench.SMALL, rounds=50)
    with tempfile.TemporaryDirectory() as workdir:
        bench._round_trip(bench.Options(quick=True), row, workdir)
    assert row.note == ""
    assert row.median_us is not None and row.p99_us is not None
    assert 0 < row.median_us <= row.p99_us


def test_blocking_row_at_1_mib():
    row = bench.Row(bench.BLOCKING, "-", bench.LARGE, rounds=5)
    with tempfile.TemporaryDirectory() as workdir:
        bench._round_trip(bench.Options(quick=True), row, workdir)
    assert row.median_us is not None and row.median_us > 0


def test_many_connections_all_served_none_leaked():
    options = bench.Options(quick=True, connections=300, client_processes=3)
    with tempfile.TemporaryDirectory() as workdir:
        many = bench._many(options, workdir)
    assert (many.connections, many.served) == (300, 300)
    assert many.fds_idle == many.fds_before + 300
    assert many.fds_after == many.fds_before
    assert many.note == ""
    text = bench.format_report(bench.Report(many=many), 0)
    assert "300 served" in text and "(+0)" in text


def test_ratios():
    rows = [
        bench.Row(bench.FASTIPC, "asyncio", bench.SMALL, median_us=5.0),
        bench.Row(bench.STREAMS, "asyncio", bench.SMALL, median_us=10.0),
        bench.Row(bench.FASTIPC, "asyncio", bench.LARGE, median_us=110.0),
        bench.Row(bench.BLOCKING, "-", bench.LARGE, median_us=100.0),
    ]
    assert bench._ratios(rows) == {
        "64 B fastipc-aio/asyncio-streams (asyncio)": 0.5,
        "1 MiB fastipc-aio (asyncio)/fastipc blocking": 1.1,
    }
