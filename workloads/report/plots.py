"""The report's PNG plots (matplotlib, Agg, no pyplot state): per-layer cycles and utilization, the
roofline of the configured accelerator with every layer on it, and the unit timeline (Gantt)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from matplotlib.figure import Figure

from .accounting import UNIT_NAMES

if TYPE_CHECKING:  # summary imports this module to write the plots; the type is all this one needs
    from .summary import Report

DPI = 110
MAX_BARS_PER_ROW = 2000  # timeline: intervals closer than total/this are drawn merged


def _save(fig: Figure, path: Path) -> Path:
    fig.savefig(path, dpi=DPI, bbox_inches="tight")
    return path


def plot_layers(report: Report, path: Path) -> Path:
    """Bars: each layer's span (light) and exclusive share of the run (dark), ideal compute-bound cycles as
    ticks; dots: useful utilization over the span."""
    rows = report.layers
    fig = Figure(figsize=(max(8.0, 0.18 * len(rows) + 3), 4.8))
    ax = fig.add_subplot()
    x = np.arange(len(rows))
    ax.bar(x, [r.cycles for r in rows], color="tab:blue", alpha=0.35, label="span (first start to last end)")
    ax.bar(x, [r.excl_cycles for r in rows], width=0.5, color="tab:blue", label="exclusive (adds up to the run)")
    ax.scatter(x, [r.ideal_cycles or np.nan for r in rows], marker="_", s=80, color="black", zorder=3,
               label="ideal (compute-bound)")
    ax.set_ylabel("cycles")
    ax.set_xticks(x, [r.name for r in rows], rotation=90, fontsize=6 if len(rows) > 30 else 8)
    ax.set_xlim(-0.6, len(rows) - 0.4)
    util = ax.twinx()
    util.plot(x, [r.util * 100 for r in rows], "o", color="tab:orange", markersize=4, label="useful utilization")
    util.set_ylim(0, 105)
    util.set_ylabel("utilization (%)")
    handles = ax.get_legend_handles_labels()[0] + util.get_legend_handles_labels()[0]
    ax.legend(handles, [h.get_label() for h in handles], loc="upper right", fontsize=8)
    ax.set_title(f"{report.model} {report.precision} on {report.hw.name}: {report.cycles:,} cycles, "
                 f"{report.util:.1%} useful utilization")
    return _save(fig, path)


def plot_roofline(report: Report, path: Path) -> Path:
    """Attainable bit-ops/s = min(peak, DRAM bandwidth x intensity); each layer at (intensity, achieved)."""
    peak, bw, ridge = report.peak_bitops_per_s, report.dram_bytes_per_s, report.ridge
    pts = [(r.intensity, r.bitops / (r.cycles / (report.clock_mhz * 1e6)), r) for r in report.layers
           if r.intensity and r.cycles]
    lo = min([ridge / 100, *(p[0] / 2 for p in pts)])
    hi = max([ridge * 100, *(p[0] * 2 for p in pts)])
    oi = np.geomspace(lo, hi, 200)
    fig = Figure(figsize=(7.5, 5))
    ax = fig.add_subplot()
    ax.loglog(oi, np.minimum(peak, bw * oi), color="black", label=f"roof: {peak:.3g} bit-op/s, {bw:.3g} B/s")
    ax.axvline(ridge, color="gray", linestyle=":", label=f"ridge {ridge:.0f} bit-ops/B")
    if pts:
        sc = ax.scatter([p[0] for p in pts], [p[1] for p in pts], c=np.arange(len(pts)), cmap="viridis", s=22,
                        zorder=3, label="layers (colour = depth)")
        fig.colorbar(sc, ax=ax, label="layer order")
        for p in sorted(pts, key=lambda p: -p[2].cycles)[:5]:
            ax.annotate(p[2].name, (p[0], p[1]), fontsize=7, xytext=(4, -8), textcoords="offset points")
    ax.set_xlabel("operational intensity (bit-ops per DRAM byte)")
    ax.set_ylabel("achieved bit-ops per second")
    ax.set_title(f"roofline: {report.hw.name} at {report.clock_mhz:g} MHz, {report.model} {report.precision}")
    ax.legend(fontsize=8, loc="lower right")
    ax.grid(True, which="both", alpha=0.2)
    return _save(fig, path)


def _merged(starts: np.ndarray, ends: np.ndarray, colors: np.ndarray, gap: float) -> list[tuple[float, float, int]]:
    """(start, width, colour) spans: consecutive intervals of one colour closer than `gap` drawn as one."""
    spans: list[list[float]] = []
    for s, e, c in zip(starts.tolist(), ends.tolist(), colors.tolist(), strict=True):
        if spans and spans[-1][2] == c and s - spans[-1][1] <= gap:
            spans[-1][1] = max(spans[-1][1], e)
        else:
            spans.append([s, e, c])
    return [(s, e - s, int(c)) for s, e, c in spans]


def plot_timeline(report: Report, path: Path) -> Path:
    """Busy intervals of load / compute / store and the DRAM port over the run, coloured by layer."""
    acc = report.accounting
    if acc is None:
        raise ValueError("plot_timeline needs a report built from a run (report.accounting)")
    layer_of = np.full(len(acc.unit), -1, dtype=np.int64)
    for k, r in enumerate(report.layers):
        layer_of[r.instructions[0]:r.instructions[1]] = k
    palette = [f"C{k}" for k in range(10)]
    busy_start = np.where(acc.grant >= 0, acc.grant, acc.start)
    gap = max(report.cycles / MAX_BARS_PER_ROW, 1.0)
    tracks = [(name, acc.unit == u) for u, name in enumerate(UNIT_NAMES)] + [("dram port", acc.grant >= 0)]
    fig = Figure(figsize=(11, 3.2))
    ax = fig.add_subplot()
    for row, (_, mask) in enumerate(reversed(tracks)):
        idx = np.flatnonzero(mask & (acc.end > busy_start))
        idx = idx[np.argsort(busy_start[idx], kind="stable")]  # the DRAM port serves load and store in time order
        spans = _merged(busy_start[idx], acc.end[idx], layer_of[idx] % 10, gap)
        for colour in sorted({c for *_, c in spans}):
            ax.broken_barh([(s, w) for s, w, c in spans if c == colour], (row - 0.4, 0.8), color=palette[colour],
                           linewidth=0)
    ax.set_yticks(range(len(tracks)), [name for name, _ in reversed(tracks)])
    ax.set_xlim(0, max(report.cycles, 1))
    ax.set_xlabel("cycle")
    ax.set_title(f"unit timeline (colour = layer, cycling through 10): {report.model} {report.precision} on "
                 f"{report.hw.name}")
    return _save(fig, path)


def plot_energy(report: Report, path: Path) -> Path:
    """Stacked bars (linear µJ): each layer's energy by breakdown key; beside it, the whole run's breakdown."""
    from bitbranch.simulator.energy import BREAKDOWN_KEYS

    rows = report.layers
    fig = Figure(figsize=(max(8.0, 0.18 * len(rows) + 5), 4.8))
    ax, tot = fig.subplots(1, 2, gridspec_kw={"width_ratios": [max(len(rows), 1), 3]})
    x = np.arange(len(rows))
    total = report.energy.breakdown_uj if report.energy is not None else {}
    bottom, tbottom = np.zeros(len(rows)), 0.0
    for i, key in enumerate(BREAKDOWN_KEYS):
        vals = np.array([r.energy_breakdown_uj.get(key, 0.0) for r in rows])
        t = total.get(key, 0.0)
        if not vals.any() and not t:
            continue
        ax.bar(x, vals, bottom=bottom, color=f"C{i % 10}", label=key)
        tot.bar([0], [t], bottom=[tbottom], color=f"C{i % 10}")
        bottom += vals
        tbottom += t
    ax.set_ylabel("energy per frame (µJ)")
    ax.set_xticks(x, [r.name for r in rows], rotation=90, fontsize=6 if len(rows) > 30 else 8)
    ax.set_xlim(-0.6, len(rows) - 0.4)
    ax.set_title(f"{report.model} {report.precision} on {report.hw.name}: energy per layer")
    ax.legend(fontsize=7, ncol=2)
    tot.set_xticks([0], ["whole run"])
    tot.set_title(f"{tbottom:,.1f} µJ/frame" if report.energy is not None else "")
    return _save(fig, path)


def write_plots(report: Report, out: Path) -> dict[str, Path]:
    plots = {
        "plot_layers": plot_layers(report, out / "layers.png"),
        "plot_roofline": plot_roofline(report, out / "roofline.png"),
        "plot_timeline": plot_timeline(report, out / "timeline.png"),
    }
    if report.energy is not None:
        plots["plot_energy"] = plot_energy(report, out / "energy.png")
    return plots
