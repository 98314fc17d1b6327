"""Cost axes and Pareto fronts of an exploration.

A point is on the front of a group (same model and precision) when no other point of the group is
at least as fast (frames/s) and at most as costly on every cost axis, and strictly better in one.
The cost axes are the cost model's (docs/cost.md): chip area in mm² (isa.area, from the config) and
energy per frame in µJ (the point's simulated activity x the energy table, stored with its metrics).
Peak bit-ops/s and on-chip buffer bytes, the config-only proxies used before the cost model, stay as
plain columns (INFO_AXES). Another axis is one more `CostAxis` in COST_AXES: a column computed from
(config, row), included in the joint front and given its own 2-D front and scatter plot.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from bitbranch.isa.hwconfig import HwConfig

from .space import buffer_bytes


@dataclass(frozen=True)
class CostAxis:
    column: str  # row key (and CSV column)
    label: str  # axis label of the plots
    fn: Callable[[HwConfig, dict], float]  # value from the point's config and its simulated row


def _area(hw: HwConfig, row: dict) -> float:
    from bitbranch.isa.area import chip_area

    return chip_area(hw).total_mm2


COST_AXES: tuple[CostAxis, ...] = (
    CostAxis("area_mm2", "chip area (mm²)", _area),
    CostAxis("energy_uj", "energy per frame (µJ)", lambda hw, row: row.get("energy_uj")),
)
INFO_AXES: tuple[CostAxis, ...] = (
    CostAxis("peak_gbitops_s", "peak bit-ops/s (G)", lambda hw, row: hw.peak_bitops_per_cycle * hw.clock_mhz / 1e3),
    CostAxis("buffer_kib", "on-chip buffers (KiB)", lambda hw, row: buffer_bytes(hw) / 1024),
)
SPEED = "fps"


def front_mask(speed: Sequence[float], costs: Sequence[Sequence[float]]) -> np.ndarray:
    """Boolean mask of the non-dominated points: maximise `speed`, minimise every cost column.
    `costs` is one sequence per axis. Exact duplicates are all kept."""
    s = np.asarray(speed, dtype=float)
    c = np.asarray(costs, dtype=float).reshape(len(costs), len(s)).T  # (points, axes)
    n = len(s)
    keep = np.ones(n, dtype=bool)
    order = np.argsort(-s, kind="stable")
    for i in order:
        if not keep[i]:
            continue
        # j dominated by i: i at least as fast and as cheap, strictly better somewhere
        ge = (s[i] >= s) & np.all(c[i] <= c, axis=1)
        gt = (s[i] > s) | np.any(c[i] < c, axis=1)
        dominated = ge & gt
        dominated[i] = False
        keep &= ~dominated
    return keep


def mark_fronts(rows: list[dict], axes: Sequence[CostAxis] = COST_AXES) -> None:
    """Set `pareto` (joint front over fps and every axis) and `pareto_<axis>` (2-D fronts) on ok rows,
    per (model, precision) group; other rows get False."""
    for r in rows:
        r["pareto"] = False
        for a in axes:
            r[f"pareto_{a.column}"] = False
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        if r.get("status") == "ok":
            groups.setdefault((r["model"], r["precision"]), []).append(r)
    for group in groups.values():
        speed = [r[SPEED] for r in group]
        joint = front_mask(speed, [[r[a.column] for r in group] for a in axes])
        for r, k in zip(group, joint, strict=True):
            r["pareto"] = bool(k)
        for a in axes:
            for r, k in zip(group, front_mask(speed, [[r[a.column] for r in group]]), strict=True):
                r[f"pareto_{a.column}"] = bool(k)
