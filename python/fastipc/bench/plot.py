"""``fastipc bench --plot PATH``: the report as one PNG, with matplotlib (``fastipc-rs[bench]``).

One column per message size; the top row is the round-trip latency (median bar, p99 tick), the
bottom row the one-way stream throughput (GB/s), both on log scales. One bar per mechanism and
placement; the dashed line is the machine's limit (the C reference peer).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from .._version import BENCH_EXTRA
from .base import LIMIT, family
from .mechanisms import REGISTRY
from .report import format_size
from .results import Cell, Report

__all__ = ["check", "plot"]

_COLORS = {"same-core": "#1f77b4", "cross-core": "#ff7f0e"}
_LABEL_COLORS = {"fastipc": "#1a7f37", "limit": "#c62828"}


def check() -> None:
    """``ImportError`` with what to install if matplotlib is missing."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise ImportError(
            f"matplotlib is not installed ({BENCH_EXTRA}, or pip install matplotlib)"
        ) from None


@dataclass(frozen=True)
class _Layout:
    """The rows and columns of the figure: what each bar is."""

    sizes: list[int]
    placements: list[str]
    names: list[str]
    cells: dict[tuple[str, int, str], Cell]

    @classmethod
    def of(cls, report: Report) -> _Layout:
        return cls(
            sizes=list(dict.fromkeys(c.size for c in report.cells)),
            placements=list(dict.fromkeys(c.placement for c in report.cells)),
            names=list(dict.fromkeys(c.mechanism for c in report.cells)),
            cells={(c.mechanism, c.size, c.placement): c for c in report.cells},
        )

    @property
    def height(self) -> float:
        return 0.8 / len(self.placements)

    def values(self, size: int, placement: str) -> tuple[list[float], list[float], list[float]]:
        """Median and p99 round trip (µs) and stream GB/s per mechanism; NaN where not ok."""
        latency: list[float] = []
        p99: list[float] = []
        rate: list[float] = []
        for name in self.names:
            cell = self.cells.get((name, size, placement))
            if cell is None or cell.status != "ok":
                latency.append(math.nan)
                p99.append(math.nan)
                rate.append(math.nan)
                continue
            latency.append(cell.median_ns / 1e3)
            p99.append(cell.stats["p99_ns"] / 1e3)
            rate.append(cell.stream["gb_per_s"] if cell.stream_ok else math.nan)
        return latency, p99, rate


def plot(report: Report, path: str) -> None:
    """Draw ``report`` into a PNG at ``path``."""
    check()
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    layout = _Layout.of(report)
    fig, axes = plt.subplots(
        2,
        len(layout.sizes),
        figsize=(
            max(10.0, 4.6 * len(layout.sizes) + 2.2),
            max(5.0, 0.36 * len(layout.names) * 2 + 2.4),
        ),
        squeeze=False,
        sharey=True,
    )
    machine = report.machine
    fig.suptitle(
        f"fastipc bench: {machine.get('cpu_model')}, {machine.get('cpu_count')} CPUs, "
        f"{machine.get('system')} {machine.get('kernel')}, {machine.get('python')}, "
        f"fastipc {machine.get('fastipc_version')} ({machine.get('fastipc_backend')} backend)",
        fontsize=11,
    )
    for col, size in enumerate(layout.sizes):
        _draw_column(layout, size, axes[0][col], axes[1][col])
    _label_rows(layout, axes)
    axes[0][-1].legend(loc="lower right", fontsize=8, title="placement", title_fontsize=8)
    fig.text(
        0.01,
        0.005,
        "green: fastipc; red: C reference peer (the machine's limit, dashed line); "
        "black: the alternatives. Missing bar: unsupported or unavailable (see the table).",
        fontsize=8,
    )
    fig.tight_layout(rect=(0, 0.015, 1, 0.97))
    fig.savefig(path, dpi=100, format="png")
    plt.close(fig)


def _draw_column(layout: _Layout, size: int, top: Any, bottom: Any) -> None:
    """The latency (``top``) and throughput (``bottom``) bars of one message size."""
    from matplotlib.ticker import FuncFormatter, NullFormatter

    top.set_title(f"{format_size(size)}: round trip, median (bar) and p99 (|)", fontsize=10)
    bottom.set_title(f"{format_size(size)}: one-way stream throughput", fontsize=10)
    top.set_xlabel("µs, log scale (shorter is better)", fontsize=9)
    bottom.set_xlabel("GB/s, log scale (longer is better)", fontsize=9)
    placements = layout.placements
    small = 6.5 if len(placements) > 1 else 7.5
    for p, placement in enumerate(placements):
        offset = (p - (len(placements) - 1) / 2) * layout.height
        ys = [i + offset for i in range(len(layout.names))]
        latency, p99, rate = layout.values(size, placement)
        color = _COLORS.get(placement, "#777777")
        top.barh(ys, latency, height=layout.height, color=color, label=placement)
        top.scatter(p99, ys, marker="|", s=40, color="black", zorder=3)
        bottom.barh(ys, rate, height=layout.height, color=color, label=placement)
        for y, value, tail in zip(ys, latency, p99, strict=True):
            if not math.isnan(value):
                label = f"  {_number(value)} (p99 {_number(tail)})"
                top.text(max(value, tail), y, label, va="center", fontsize=small)
        for y, value in zip(ys, rate, strict=True):
            if not math.isnan(value):
                bottom.text(value, y, f" {_number(value)}", va="center", fontsize=small)
        limit = layout.cells.get((LIMIT, size, placement))
        _limit_line(top, limit, color, latency=True)
        _limit_line(bottom, limit, color, latency=False)
    for ax in (top, bottom):
        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.grid(axis="x", which="major", alpha=0.3)
        ax.tick_params(axis="x", labelsize=8)
        ax.margins(x=0.3 if ax is top else 0.12)


def _label_rows(layout: _Layout, axes: Any) -> None:
    """Name the mechanisms on the shared y axis (set and inverted once), coloured by family."""
    names = layout.names
    axes[0][0].set_yticks(range(len(names)))
    axes[0][0].set_ylim(len(names) - 0.5, -0.5)
    for ax in axes[:, 0]:
        ax.set_yticklabels(names, fontsize=9)
        for label, name in zip(ax.get_yticklabels(), names, strict=True):
            label.set_color(_LABEL_COLORS.get(family(REGISTRY[name]), "black"))


def _number(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 else f"{value:.3g}"


def _limit_line(ax: Any, cell: Cell | None, color: str, *, latency: bool) -> None:
    if cell is None or cell.status != "ok":
        return
    if latency:
        value = cell.median_ns / 1e3
    elif cell.stream_ok:
        value = cell.stream["gb_per_s"]
    else:
        return
    ax.axvline(value, color=color, linestyle="--", linewidth=1, alpha=0.8)
