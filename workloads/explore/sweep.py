"""Precision x hardware sweeps: every grid point compiled, simulated and reported, in parallel.

`evaluate(model, precision, preset)` is one point (a flat dict); `sweep` runs a grid through an
`Executor` (local processes by default, see executors.py) and writes a Markdown + CSV table and two
plots: frames/s against precision per config, and a utilization heatmap. A point that fails (a layer
that does not fit a small preset, say) becomes a row with its error; the others still run.
"""

from __future__ import annotations

import csv
import functools
import json
import math
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..pipeline import CompileFn, compile_with_compiler, run_workload
from ..precision import label, parse_token, with_default
from .executors import Executor, ProcessExecutor

COLUMNS = ("model", "precision", "preset", "cycles", "latency_ms", "fps", "util", "array_util", "dram_mb",
           "energy_uj", "power_w", "fps_per_w", "area_mm2", "fps_per_mm2", "weight_mb", "compression",
           "host_share", "golden_ok", "compile_s", "simulate_s", "error")


def evaluate(model_name: str, precision: str, preset: str, compile_fn: CompileFn = compile_with_compiler,
             clock_mhz: float | None = None, image: np.ndarray | None = None, energy: str | None = None) -> dict:
    """One grid point: `precision` (e.g. "W2A2") replaces the workload's default bits, keeping its
    per-layer overrides; returns the headline numbers as a flat, JSON-ready dict. `energy`: an energy
    table file overriding the defaults (docs/cost.md)."""
    from bitbranch.isa.energy import load_energy_table
    from bitbranch.isa.hwconfig import get_config

    from ..images import default_image
    from ..registry import get

    spec = get(model_name)
    hw = get_config(preset)
    prec = with_default(spec.precision, precision)
    outcome = run_workload(spec, prec, hw, default_image(spec.input_shape) if image is None else image, compile_fn,
                           clock_mhz, energy_table=load_energy_table(energy))
    r, t = outcome.report, outcome.report.totals()
    return {
        "model": spec.name, "precision": label(prec), "preset": hw.name, "cycles": r.cycles,
        "latency_ms": r.latency_ms, "fps": r.fps, "util": r.util,
        "array_util": outcome.result.utilization, "dram_mb": (t["dram_read"] + t["dram_written"]) / 1e6,
        "energy_uj": t.get("energy_uj"), "power_w": t.get("power_w"), "fps_per_w": t.get("fps_per_w"),
        "area_mm2": t.get("area_mm2"), "fps_per_mm2": t.get("fps_per_mm2"),
        "weight_mb": r.weight_bytes / 1e6, "compression": r.compression, "host_share": r.host_share,
        "golden_ok": r.golden_ok, "compile_s": r.wall.get("compile_s"), "simulate_s": r.wall.get("simulate_s"),
        "error": "",
    }


@dataclass(frozen=True)
class Job:
    model: str
    precision: str
    preset: str
    clock_mhz: float | None = None
    energy: str | None = None  # energy table override file


def run_job(job: Job, compile_fn: CompileFn = compile_with_compiler, image: np.ndarray | None = None) -> dict:
    """evaluate() that turns a failure into a row (`error` set) instead of ending the sweep."""
    try:
        return evaluate(job.model, job.precision, job.preset, compile_fn, job.clock_mhz, image, job.energy)
    except Exception as exc:  # noqa: BLE001 - any failure of one point is reported in its row
        last = traceback.extract_tb(exc.__traceback__)[-1:]
        where = f" ({Path(last[0].filename).name}:{last[0].lineno})" if last else ""
        return {"model": job.model, "precision": job.precision, "preset": job.preset,
                "error": f"{type(exc).__name__}: {exc}{where}"}


def grid(model: str, precisions: Sequence[str], presets: Sequence[str], clock_mhz: float | None = None,
         energy: str | None = None) -> list[Job]:
    for p in precisions:
        parse_token(p)  # fail before starting any process
    return [Job(model, p, hw, clock_mhz, energy) for hw in presets for p in precisions]


@dataclass
class SweepResult:
    jobs: list[Job]
    rows: list[dict]  # in job order
    wall_seconds: float = 0.0
    files: dict[str, Path] = field(default_factory=dict)

    @property
    def precisions(self) -> list[str]:
        return list(dict.fromkeys(j.precision for j in self.jobs))

    @property
    def presets(self) -> list[str]:
        return list(dict.fromkeys(j.preset for j in self.jobs))

    def row(self, precision: str, preset: str) -> dict:
        return next(r for j, r in zip(self.jobs, self.rows, strict=True) if (j.precision, j.preset) == (precision,
                                                                                                         preset))


def sweep(model: str, precisions: Sequence[str], presets: Sequence[str], executor: Executor | None = None,
          compile_fn: CompileFn = compile_with_compiler, clock_mhz: float | None = None,
          progress: Callable[[int, int, str], None] | None = None, energy: str | None = None) -> SweepResult:
    """Run the grid; rows come back in grid order (presets outer, precisions inner). The input image is
    loaded here once and shipped with each job (workers then never import scikit-learn)."""
    from ..images import default_image
    from ..registry import get

    jobs = grid(model, precisions, presets, clock_mhz, energy)
    executor = executor or ProcessExecutor()
    fn = functools.partial(run_job, compile_fn=compile_fn, image=default_image(get(model).input_shape))
    rows: list[dict | None] = [None] * len(jobs)
    t0 = time.perf_counter()
    for done, (k, row) in enumerate(executor.map_unordered(fn, jobs), 1):
        rows[k] = row
        if progress:
            progress(done, len(jobs), f"{jobs[k].precision} on {jobs[k].preset}")
    return SweepResult(jobs, [r or {} for r in rows], time.perf_counter() - t0)


# --- output -------------------------------------------------------------------------------------------


def short_name(model: str) -> str:
    """`resnet18`, or `file.py:factory` without the directories."""
    path, sep, func = model.rpartition(":")
    return f"{Path(path).name}:{func}" if sep and path.endswith(".py") else model


PERCENT_COLUMNS = ("util", "array_util", "host_share")


def markdown_cell(key: str, v: object) -> str:
    """One value of a results table (sweep and explore): percents, thousands separators, '-' for missing."""
    if v is None or v == "":
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "NO"
    if isinstance(v, float):
        if key in PERCENT_COLUMNS:
            return f"{v:.1%}"
        return f"{v:,.1f}" if abs(v) >= 10 else f"{v:.3g}"
    if isinstance(v, int):
        return f"{v:,}"
    return str(v).replace("|", "/")


def format_markdown(res: SweepResult) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(markdown_cell(c, r.get(c)) for c in COLUMNS) + " |" for r in res.rows]
    return "\n".join(lines) + "\n"


def write_csv(res: SweepResult, path: Path) -> None:
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, COLUMNS, extrasaction="ignore")
        w.writeheader()
        w.writerows(res.rows)


def plot_fps(res: SweepResult, path: Path) -> Path:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 4.5))
    ax = fig.add_subplot()
    x = np.arange(len(res.precisions))
    for preset in res.presets:
        fps = [res.row(p, preset).get("fps") or math.nan for p in res.precisions]
        ax.plot(x, fps, "o-", label=preset)
    ax.set_xticks(x, res.precisions)
    ax.set_yscale("log")
    ax.set_xlabel("precision (default bits; per-layer overrides kept)")
    ax.set_ylabel("frames / s (accelerator)")
    ax.set_title(f"{short_name(res.jobs[0].model)}: frames/s against precision")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(title="hardware")
    fig.savefig(path, dpi=110, bbox_inches="tight")
    return path


def plot_util(res: SweepResult, path: Path) -> Path:
    from matplotlib.figure import Figure

    grid_ = np.array([[res.row(p, hw).get("util", math.nan) for p in res.precisions] for hw in res.presets],
                     dtype=float)
    fig = Figure(figsize=(1.3 * len(res.precisions) + 2.5, 0.7 * len(res.presets) + 2))
    ax = fig.add_subplot()
    im = ax.imshow(grid_ * 100, vmin=0, vmax=100, cmap="viridis", aspect="auto")
    for i, j in np.ndindex(grid_.shape):
        text = "error" if math.isnan(grid_[i, j]) else f"{grid_[i, j]:.0%}"
        ax.text(j, i, text, ha="center", va="center", color="white" if not grid_[i, j] > 0.6 else "black")
    ax.set_xticks(range(len(res.precisions)), res.precisions)
    ax.set_yticks(range(len(res.presets)), res.presets)
    fig.colorbar(im, ax=ax, label="useful array utilization (%)")
    ax.set_title(f"{short_name(res.jobs[0].model)}: utilization")
    fig.savefig(path, dpi=110, bbox_inches="tight")
    return path


def plot_efficiency(res: SweepResult, path: Path) -> Path:
    """Frames/s per W against frames/s per mm², one marker per point, labelled by precision, per preset."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 4.5))
    ax = fig.add_subplot()
    for preset in res.presets:
        pts = [(res.row(p, preset).get("fps_per_mm2"), res.row(p, preset).get("fps_per_w"), p) for p in res.precisions]
        pts = [(x, y, p) for x, y, p in pts if x and y]
        if not pts:
            continue
        ax.plot([x for x, _, _ in pts], [y for _, y, _ in pts], "o-", label=preset)
        for x, y, p in pts:
            ax.annotate(p, (x, y), fontsize=7, xytext=(3, 3), textcoords="offset points")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("frames / s per mm² (area model, docs/cost.md)")
    ax.set_ylabel("frames / s per W (energy model)")
    ax.set_title(f"{short_name(res.jobs[0].model)}: efficiency" if res.jobs else "efficiency")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(title="hardware")
    fig.savefig(path, dpi=110, bbox_inches="tight")
    return path


def write_sweep(res: SweepResult, out: str | Path, plots: bool = True) -> dict[str, Path]:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    files = {"md": out / "sweep.md", "csv": out / "sweep.csv", "json": out / "sweep.json"}
    files["md"].write_text(f"# sweep: {res.jobs[0].model if res.jobs else '-'}\n\n" + format_markdown(res))
    write_csv(res, files["csv"])
    files["json"].write_text(json.dumps({"wall_seconds": res.wall_seconds, "rows": res.rows}, indent=1) + "\n")
    if plots and res.jobs:
        files["plot_fps"] = plot_fps(res, out / "fps_vs_precision.png")
        files["plot_util"] = plot_util(res, out / "util_heatmap.png")
        files["plot_efficiency"] = plot_efficiency(res, out / "efficiency.png")
    res.files = files
    return files

