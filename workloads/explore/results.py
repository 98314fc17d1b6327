"""An exploration's files: the table (CSV, Markdown, JSON lines), the Pareto front, and the plots.

    explore.csv      every row, every column (all hardware fields, metrics, costs, pareto flags)
    explore.jsonl    the same rows, one JSON object a line
    explore.md       the front first, then every row (varied fields only); front rows marked ★
    pareto.png       frames/s against each cost axis, the 2-D front drawn as a staircase
    params.png       each varied field's effect: frames/s and frames/s per peak Gbit-op/s per value
    heatmap.png      best frames/s over two fields (the rest free), one panel per model and precision
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np

from .engine import METRICS, TIMINGS, ExploreResult
from .pareto import COST_AXES, INFO_AXES, SPEED
from .space import hw_fields
from .sweep import markdown_cell

FRONT_MARK = "★"


def columns(res: ExploreResult) -> list[str]:
    costs = [a.column for a in COST_AXES]
    flags = ["pareto"] + [f"pareto_{c}" for c in costs]
    info = [a.column for a in INFO_AXES]
    return ["model", "precision", "point", *hw_fields(), "status", *METRICS, *costs, *info, *flags, "reason", *TIMINGS,
            "key"]


def _md_table(rows: list[dict], cols: list[str]) -> list[str]:
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        cells = [(FRONT_MARK if r.get("pareto") else "") if c == "pareto" else markdown_cell(c, r.get(c)) for c in cols]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def format_markdown(res: ExploreResult) -> str:
    varied = res.space.varied
    costs = [a.column for a in COST_AXES]
    cols = ["pareto", "model", "precision", *varied, "fps", "cycles", "util", "dram_mb", *costs, "golden_ok"]
    ok, other = res.by_status("ok"), [r for r in res.rows if r["status"] != "ok"]
    front = sorted(res.front, key=lambda r: (r["model"], r["precision"], -r[SPEED]))
    lines = [f"# explore: {', '.join(res.models)}", "",
             f"{len(res.rows)} points: {len(ok)} ok, {len(res.by_status('rejected'))} rejected by a constraint or "
             f"invalid, {len(res.by_status('failed'))} failed; {res.computed} computed in this run, {res.cached} "
             f"from the store; {res.seconds:.1f} s.", "",
             f"Base config `{res.space.base.name}`; varied: {', '.join(varied) or 'nothing'}. {FRONT_MARK} = on the "
             "Pareto front of its model and precision: no other point is as fast (frames/s) with no more of every "
             f"cost ({', '.join(costs)}).", "", "## Pareto front", ""]
    lines += _md_table(front, cols) + ["", "## All points", ""]
    lines += _md_table(ok, cols)
    if other:
        lines += ["", "## Rejected and failed points", ""]
        lines += _md_table(other, ["model", "precision", *varied, "status", "reason"])
    return "\n".join(lines) + "\n"


def write_csv(res: ExploreResult, path: Path) -> None:
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, columns(res), extrasaction="ignore")
        w.writeheader()
        w.writerows(res.rows)


def write_jsonl(res: ExploreResult, path: Path) -> None:
    with open(path, "w") as fh:
        for r in res.rows:
            fh.write(json.dumps(r, sort_keys=True) + "\n")


# --- plots ---------------------------------------------------------------------------------------------


def _groups(res: ExploreResult) -> dict[tuple[str, str], list[dict]]:
    out: dict[tuple[str, str], list[dict]] = {}
    for r in res.by_status("ok"):
        out.setdefault((r["model"], r["precision"]), []).append(r)
    return out


def plot_pareto(res: ExploreResult, path: Path) -> Path:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6 * len(COST_AXES), 4.5))
    groups = _groups(res)
    for n, axis in enumerate(COST_AXES):
        ax = fig.add_subplot(1, len(COST_AXES), n + 1)
        for (model, prec), rows in groups.items():
            x = np.array([r[axis.column] for r in rows], dtype=float)
            y = np.array([r[SPEED] for r in rows], dtype=float)
            on = np.array([r[f"pareto_{axis.column}"] for r in rows], dtype=bool)
            pts = ax.scatter(x[~on], y[~on], s=12, alpha=0.35)
            color = pts.get_facecolor()[0]
            order = np.argsort(x[on])
            ax.step(x[on][order], y[on][order], where="post", color=color, lw=1.2)
            ax.scatter(x[on], y[on], s=30, color=color, edgecolor="black", lw=0.6, label=f"{model} {prec} (front)")
        ax.set_xscale("log")
        ax.set_xlabel(axis.label + " (cost)")
        ax.set_ylabel("frames / s")
        ax.grid(True, which="both", alpha=0.3)
        ax.set_title(f"frames/s against {axis.label}")
        if groups:
            ax.legend(fontsize=8)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    return path


def plot_params(res: ExploreResult, path: Path) -> Path | None:
    """Per varied field: best and median frames/s per value (other fields free), and the same for
    frames/s per peak Gbit-op/s (how well the added hardware is used)."""
    from matplotlib.figure import Figure

    fields = res.space.varied
    groups = _groups(res)
    if not fields or not groups:
        return None
    fig = Figure(figsize=(3.6 * len(fields), 6.5))
    for n, f in enumerate(fields):
        top = fig.add_subplot(2, len(fields), n + 1)
        bot = fig.add_subplot(2, len(fields), len(fields) + n + 1)
        for (model, prec), rows in groups.items():
            values = sorted({r[f] for r in rows})
            for ax, metric in ((top, lambda r: r[SPEED]), (bot, lambda r: r[SPEED] / r["peak_gbitops_s"])):
                per = [[metric(r) for r in rows if r[f] == v] for v in values]
                line, = ax.plot(values, [max(p) for p in per], "o-", label=f"{model} {prec} best")
                ax.plot(values, [float(np.median(p)) for p in per], "s--", color=line.get_color(), alpha=0.6,
                        label=f"{model} {prec} median")
        for ax in (top, bot):
            if len({r[f] for r in res.by_status("ok")}) > 2 and min(r[f] for r in res.by_status("ok")) > 0:
                ax.set_xscale("log", base=2)
            ax.grid(True, alpha=0.3)
        top.set_title(f)
        bot.set_xlabel(f)
        if n == 0:
            top.set_ylabel("frames / s")
            bot.set_ylabel("frames/s per peak Gbit-op/s")
            top.legend(fontsize=7)
    fig.savefig(path, dpi=100, bbox_inches="tight")
    return path


def plot_heatmap(res: ExploreResult, fx: str, fy: str, path: Path) -> Path | None:
    """Best frames/s for each (fx, fy) pair over the other fields, one panel per model and precision."""
    from matplotlib.figure import Figure

    groups = _groups(res)
    if not groups:
        return None
    fig = Figure(figsize=(5.5 * len(groups), 4.5))
    for n, ((model, prec), rows) in enumerate(groups.items()):
        xs, ys = sorted({r[fx] for r in rows}), sorted({r[fy] for r in rows})
        grid = np.full((len(ys), len(xs)), math.nan)
        for r in rows:
            i, j = ys.index(r[fy]), xs.index(r[fx])
            grid[i, j] = np.nanmax([grid[i, j], r[SPEED]])
        ax = fig.add_subplot(1, len(groups), n + 1)
        im = ax.imshow(grid, origin="lower", cmap="viridis", aspect="auto")
        for i, j in np.ndindex(grid.shape):
            if not math.isnan(grid[i, j]):
                ax.text(j, i, f"{grid[i, j]:.0f}", ha="center", va="center", fontsize=7,
                        color="white" if grid[i, j] < np.nanmean(grid) else "black")
        ax.set_xticks(range(len(xs)), [str(v) for v in xs], rotation=45)
        ax.set_yticks(range(len(ys)), [str(v) for v in ys])
        ax.set_xlabel(fx)
        ax.set_ylabel(fy)
        ax.set_title(f"{model} {prec}: best frames/s")
        fig.colorbar(im, ax=ax, label="frames / s")
    fig.savefig(path, dpi=100, bbox_inches="tight")
    return path


def write_results(res: ExploreResult, out: str | Path, plots: bool = True,
                  heatmap: tuple[str, str] | None = None) -> dict[str, Path]:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    files = {"md": out / "explore.md", "csv": out / "explore.csv", "jsonl": out / "explore.jsonl"}
    files["md"].write_text(format_markdown(res))
    write_csv(res, files["csv"])
    write_jsonl(res, files["jsonl"])
    if plots and res.by_status("ok"):
        files["pareto_png"] = plot_pareto(res, out / "pareto.png")
        if (p := plot_params(res, out / "params.png")) is not None:
            files["params_png"] = p
        varied = res.space.varied
        pair = heatmap or (tuple(varied[:2]) if len(varied) >= 2 else None)
        if pair and (p := plot_heatmap(res, pair[0], pair[1], out / "heatmap.png")) is not None:
            files["heatmap_png"] = p
    res.files = files
    return files
