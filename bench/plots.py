"""The benchmarks' plots, drawn one way: stacked panels of line series, each with an optional dashed
limit line. matplotlib is a development dependency (not shipped with the package), imported only
when a plot is asked for, so a benchmark without `--plot` runs without it.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Series:
    label: str
    x: Sequence[float]
    y: Sequence[float]


@dataclass(frozen=True)
class Panel:
    title: str
    series: Sequence[Series]
    xlabel: str
    ylabel: str
    limit: float | None = None  # drawn as a dashed line across the panel
    limit_label: str = ""
    ymax: float | None = None


def per_sliding_second(times: Sequence[float]) -> tuple[list[float], list[int]]:
    """Events in the second before each 50 ms tick, from one second after the first event; x in
    seconds since the first event. `times` must be sorted."""
    if len(times) < 2:
        return [], []
    t0 = times[0]
    grid = [t0 + 1.0 + i * 0.05 for i in range(int((times[-1] - t0 - 1.0) / 0.05))]
    counts = [bisect.bisect_right(times, g) - bisect.bisect_right(times, g - 1.0) for g in grid]
    return [g - t0 for g in grid], counts


def sliding_second_series(label: str, times: Sequence[float]) -> Series:
    x, y = per_sliding_second(sorted(times))
    return Series(label, x, y)


def draw(panels: Sequence[Panel], path: str, *, width_in: float = 11, panel_height_in: float = 4) -> None:
    import matplotlib

    matplotlib.use("Agg")  # files only: no display on the machines that run benchmarks
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(panels), 1, figsize=(width_in, panel_height_in * len(panels)), squeeze=False)
    for ax, panel in zip(axes[:, 0], panels, strict=True):
        for series in panel.series:
            if len(series.x) > 0:
                ax.plot(series.x, series.y, linewidth=1, label=series.label)
        if panel.limit is not None:
            ax.axhline(panel.limit, color="black", linestyle="--", linewidth=1.5, label=panel.limit_label)
        ax.set_title(panel.title, fontsize=10)
        ax.set_xlabel(panel.xlabel)
        ax.set_ylabel(panel.ylabel)
        if panel.ymax is not None:
            ax.set_ylim(0, panel.ymax)
        ax.legend(fontsize=7, ncol=3, loc="upper right")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
