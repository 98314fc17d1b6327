"""Throughput report of one simulated network: per-layer and total cycles, utilization, stalls, DRAM
traffic, operational intensity, host-side work and weight memory; console, Markdown, JSON and CSV.

Definitions (docs/workloads.md has the long form):
- bit-ops = MACs x weight bits x input-activation bits: the useful binary multiply-accumulates.
- util = bit-ops / (peak bit-ops per cycle x layer cycles): useful array utilization. `array util`
  counts what the array issues, channel padding included (the simulator's own utilization).
- ideal cycles = ceil(bit-ops / peak): the compute-bound lower bound for the layer.
- intensity = bit-ops per DRAM byte (read + written); the roofline's ridge is peak / DRAM bytes per cycle.
- cycles = first start to last end of the layer's instructions (result.span). Layers may overlap (the
  next layer's weights are prefetched while the current one computes), so spans need not add up;
  `excl` = from the previous layer's end to this layer's end partitions the run instead.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bitbranch.isa.area import AreaReport, report_area
from bitbranch.isa.artifact import Artifact, LayerRecord
from bitbranch.isa.energy import EnergyTable, load_energy_table
from bitbranch.isa.hwconfig import HwConfig
from bitbranch.simulator import SimResult
from bitbranch.simulator.energy import ActionPrices, EnergySummary, energy_breakdown_uj, summarize

from .accounting import STATES, UNIT_NAMES, Accounting, account

FLOAT32_BITS = 32


@dataclass
class HostTiming:
    """One host-side step, timed on this machine (seconds per frame)."""

    name: str
    seconds: float
    detail: str = ""


@dataclass
class LayerRow:
    name: str
    kind: str
    out_shape: tuple[int, ...]
    w_bits: int | None  # weight planes (2 for ternary); None for layers without weights
    a_bits: int  # input activation bits
    ternary: bool
    macs: int
    bitops: int
    issued_bitops: int
    cycles: int  # span: first start to last end of the layer's instructions
    excl_cycles: int  # previous layer's end (running max) to this layer's end: these partition the run
    ideal_cycles: int
    util: float
    array_util: float
    dram_read: int
    dram_written: int
    params: int
    weight_bytes: float
    units: dict[str, dict[str, int]]  # {unit: {busy, queue, token, dram}}
    instructions: tuple[int, int]
    energy_uj: float = 0.0  # the layer's instructions' activity x energy table (leakage not included)
    energy_breakdown_uj: dict[str, float] = field(default_factory=dict)
    levels: str = ""  # level usage of the layer's output (compiler.liveness): `3/4 71%` = levels used / top share
    distinct: int | None = None  # different values in the output
    top_share: float | None = None  # share of the outputs on the most used level

    @property
    def dram_bytes(self) -> int:
        return self.dram_read + self.dram_written

    @property
    def intensity(self) -> float | None:
        """bit-ops per DRAM byte (None when the layer computes nothing or moves nothing)."""
        return self.bitops / self.dram_bytes if self.bitops and self.dram_bytes else None

    @property
    def bits(self) -> str:
        """`weight bits/input activation bits` (the layer's M x K branches): `2/8`, `T/2`, `-/2`."""
        w = "T" if self.ternary else (str(self.w_bits) if self.w_bits else "-")
        return f"{w}/{self.a_bits}"

    def bound(self, ridge: float) -> str:
        oi = self.intensity
        return "-" if oi is None else ("memory" if oi < ridge else "compute")

    def to_dict(self, ridge: float) -> dict:
        d = dataclasses.asdict(self)
        d.update(out_shape=list(self.out_shape), instructions=list(self.instructions), bits=self.bits,
                 dram_bytes=self.dram_bytes, intensity=self.intensity, bound=self.bound(ridge))
        return d


@dataclass
class Report:
    model: str
    precision: str
    hw: HwConfig
    clock_mhz: float
    cycles: int
    layers: list[LayerRow]
    units: dict[str, dict[str, int]]  # whole run, from the simulator: busy, queue, token, dram, idle
    dram_read: int
    dram_written: int
    instructions: int
    golden_ok: bool | None
    host: list[HostTiming] = field(default_factory=list)
    host_ops: list[dict] = field(default_factory=list)  # the compiler's host ops (artifact manifest)
    result_summary: str = ""
    wall: dict[str, float] = field(default_factory=dict)  # compile_s, simulate_s, ...
    precision_spec: dict = field(default_factory=dict)  # the full spec (file form), for reproducing the run
    input: str = ""  # where the input image came from
    accounting: Accounting | None = field(default=None, repr=False)  # per instruction (for the timeline plot)
    energy: EnergySummary | None = None  # whole run (simulator.energy)
    area: AreaReport | None = None  # chip area model (isa.area)
    activity: dict[str, int] = field(default_factory=dict)  # whole-run action counts (simulator.activity)
    warnings: list[str] = field(default_factory=list)  # liveness: collapsed layers, constant outputs
    batch: int = 1  # frames one run computes (the artifact's meta["batch"]): per-frame figures divide by it

    # --- headline numbers -----------------------------------------------------------------------
    @property
    def latency_ms(self) -> float:
        return self.cycles / (self.clock_mhz * 1e3)

    @property
    def fps(self) -> float:
        """Frames per second of the accelerator alone (host work overlapped with the next frame); a batch
        run computes `batch` frames in `latency_ms`."""
        return self.batch * 1e3 / self.latency_ms if self.cycles else 0.0

    @property
    def cycles_per_frame(self) -> float:
        return self.cycles / self.batch

    @property
    def host_seconds(self) -> float:
        return sum(h.seconds for h in self.host)

    @property
    def host_share(self) -> float:
        """Host time / (host + accelerator time) when the two run one after the other."""
        total = self.batch * self.host_seconds + self.latency_ms / 1e3
        return self.batch * self.host_seconds / total if total else 0.0

    @property
    def fps_serial(self) -> float:
        """Frames per second when each frame's host work runs after its accelerator pass."""
        return self.batch / (self.latency_ms / 1e3 + self.batch * self.host_seconds) if self.cycles else 0.0

    @property
    def peak_bitops_per_s(self) -> float:
        return self.hw.peak_bitops_per_cycle * self.clock_mhz * 1e6

    @property
    def dram_bytes_per_s(self) -> float:
        return self.hw.dram_bytes_per_cycle * self.clock_mhz * 1e6

    @property
    def ridge(self) -> float:
        """Operational intensity (bit-ops/byte) where the roofline turns from memory- to compute-bound."""
        return self.hw.peak_bitops_per_cycle / self.hw.dram_bytes_per_cycle

    @property
    def bitops(self) -> int:
        return sum(r.bitops for r in self.layers)

    @property
    def macs(self) -> int:
        return sum(r.macs for r in self.layers)

    @property
    def util(self) -> float:
        return self.bitops / (self.hw.peak_bitops_per_cycle * self.cycles) if self.cycles else 0.0

    @property
    def ideal_cycles(self) -> int:
        return math.ceil(self.bitops / self.hw.peak_bitops_per_cycle)

    @property
    def params(self) -> int:
        return sum(r.params for r in self.layers)

    @property
    def weight_bytes(self) -> float:
        return sum(r.weight_bytes for r in self.layers)

    @property
    def float32_weight_bytes(self) -> int:
        return self.params * FLOAT32_BITS // 8

    @property
    def compression(self) -> float:
        return self.float32_weight_bytes / self.weight_bytes if self.weight_bytes else 0.0

    def totals(self) -> dict:
        return {
            "cycles": self.cycles, "latency_ms": self.latency_ms, "fps": self.fps, "fps_with_host": self.fps_serial,
            "batch": self.batch, "cycles_per_frame": self.cycles_per_frame,
            "macs": self.macs, "bitops": self.bitops, "ideal_cycles": self.ideal_cycles, "util": self.util,
            "dram_read": self.dram_read, "dram_written": self.dram_written,
            "intensity": self.bitops / (self.dram_read + self.dram_written) if self.dram_read + self.dram_written
            else None,
            "instructions": self.instructions, "params": self.params, "weight_bytes": self.weight_bytes,
            "float32_weight_bytes": self.float32_weight_bytes, "compression": self.compression,
            "host_seconds": self.host_seconds, "host_share": self.host_share,
            **self.cost_totals(),
        }

    def cost_totals(self) -> dict:
        """Energy and area figures beside the throughput ones (empty when the report has no cost model)."""
        out: dict = {}
        if self.energy is not None:
            e = self.energy
            out.update(energy_uj=e.energy_uj, energy_breakdown_uj=dict(e.breakdown_uj), power_w=e.power_w,
                       tops_per_w=e.tops_per_w, mac_tops_per_w=e.mac_tops_per_w,
                       fps_per_w=self.fps / e.power_w if e.power_w else 0.0,
                       energy_uj_per_frame=e.energy_uj / self.batch,
                       frames_per_joule=self.batch * 1e6 / e.energy_uj if e.energy_uj else 0.0)
        if self.area is not None:
            out.update(area_mm2=self.area.total_mm2,
                       fps_per_mm2=self.fps / self.area.total_mm2 if self.area.total_mm2 else 0.0)
        return out

    def to_dict(self) -> dict:
        return {
            "model": self.model, "precision": self.precision, "precision_spec": self.precision_spec,
            "input": self.input, "hw": self.hw.to_dict(), "clock_mhz": self.clock_mhz,
            "peak_bitops_per_s": self.peak_bitops_per_s, "dram_bytes_per_s": self.dram_bytes_per_s,
            "ridge_bitops_per_byte": self.ridge, "golden_ok": self.golden_ok, "totals": self.totals(),
            "units": self.units, "layers": [r.to_dict(self.ridge) for r in self.layers],
            "host": [dataclasses.asdict(h) for h in self.host], "host_ops": self.host_ops,
            "result": self.result_summary, "wall": self.wall, "warnings": self.warnings,
            **({"area_mm2": self.area.total_mm2, "area": self.area.to_dict()} if self.area is not None else {}),
            **({"energy_table": self.energy.table_source, "activity": self.activity} if self.energy is not None
               else {}),
        }


# --- building ---------------------------------------------------------------------------------------


def _layer_row(rec: LayerRecord, acc: Accounting, result: SimResult, prev_end: int,
               prices: ActionPrices | None = None, live: dict | None = None) -> LayerRow:
    live = live or {}
    hw = result.hw
    first, end = rec.instructions
    planes = rec.bits.w
    a = rec.bits.a_in
    bitops = rec.macs * (planes or 0) * a
    cycles, array_util = result.span(first, end)
    layer_end = int(acc.end[first:end].max()) if end > first else prev_end
    return LayerRow(
        name=rec.name, kind=rec.kind, out_shape=rec.out_shape, w_bits=planes,
        a_bits=a, ternary=rec.bits.ternary, macs=rec.macs, bitops=bitops,
        issued_bitops=int(acc.bitops[first:end].sum()), cycles=cycles, excl_cycles=max(layer_end - prev_end, 0),
        ideal_cycles=math.ceil(bitops / hw.peak_bitops_per_cycle), util=bitops / (hw.peak_bitops_per_cycle * cycles)
        if cycles else 0.0, array_util=array_util, dram_read=int(acc.dram_read[first:end].sum()),
        dram_written=int(acc.dram_written[first:end].sum()), params=rec.weight_bits // planes if planes else 0,
        weight_bytes=rec.weight_bits / 8, units=acc.unit_states(first, end), instructions=(first, end),
        **_layer_energy(result, first, end, prices),
        **_levels(live.get(rec.name)),
    )


def _layer_energy(result: SimResult, first: int, end: int, prices: ActionPrices | None) -> dict:
    if prices is None or result.activity is None:
        return {}
    parts = energy_breakdown_uj(result.activity.total(first, end), prices)
    return {"energy_uj": sum(parts.values()), "energy_breakdown_uj": parts}


def _levels(usage: dict | None) -> dict:
    """LayerRow's liveness fields from the manifest's `meta["liveness"]["layers"][name]` (absent: empty)."""
    if not usage:
        return {}
    return {"levels": usage.get("label", ""), "distinct": usage.get("distinct"), "top_share": usage.get("top_share")}


def build_report(art: Artifact, result: SimResult, clock_mhz: float | None = None,
                 host: Sequence[HostTiming] = (), result_summary: str = "", wall: dict[str, float] | None = None,
                 model: str | None = None, precision: str | None = None,
                 energy_table: EnergyTable | None = None) -> Report:
    """The report of one run of `art` (its `layers` records and meta) simulated as `result`; energy from
    `energy_table` (default: isa/energy.toml) and the run's activity counts, area from isa.area."""
    acc = account(result)
    table = energy_table if energy_table is not None else load_energy_table()
    prices = ActionPrices.build(result.hw, table) if result.activity is not None else None
    rows, prev_end = [], 0
    liveness = art.meta.get("liveness") or {}
    for rec in art.layers:
        rows.append(_layer_row(rec, acc, result, prev_end, prices, liveness.get("layers")))
        prev_end += rows[-1].excl_cycles
    units = {name: {"busy": u.busy, "queue": u.stalled_on_queue, "token": u.stalled_on_token,
                    "dram": u.stalled_on_dram, "idle": u.idle} for name, u in result.units.items()}
    clock = clock_mhz or result.hw.clock_mhz
    area = report_area(result.hw)
    energy = activity = None
    if result.activity is not None:
        activity = result.activity.total()
        bitops = sum(r.bitops for r in rows)
        energy = summarize(activity, result.hw, table, result.cycles, clock, bitops, area.total_mm2,
                           useful_macs=sum(r.macs for r in rows), sram_mm2=area.sram_total_mm2)
    return Report(
        energy=energy, area=area, activity=activity or {},
        model=model or str(art.meta.get("model", "?")),
        precision=precision or str(art.meta.get("precision", "?")),
        hw=result.hw,
        clock_mhz=clock_mhz or result.hw.clock_mhz,
        cycles=result.cycles,
        layers=rows,
        units=units,
        dram_read=result.dram_read,
        dram_written=result.dram_written,
        instructions=result.instructions,
        golden_ok=result.golden_ok,
        host=list(host),
        host_ops=list(art.host_ops),
        result_summary=result_summary,
        wall=dict(wall or {}),
        accounting=acc,
        warnings=list(liveness.get("warnings") or []),
        batch=int((art.meta.get("batch") or {}).get("frames", 1)),
    )


# --- formatting ---------------------------------------------------------------------------------------


def _si(x: float, unit: str = "") -> str:
    for div, prefix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(x) >= div:
            return f"{x / div:.2f} {prefix}{unit}"
    return f"{x:.0f} {unit}".rstrip()


def _stall(row: LayerRow) -> str:
    """Which unit-state dominates the compute unit's non-busy time within the layer."""
    c = row.units["compute"]
    waits = {s: c[s] for s in STATES if s != "busy"}
    worst = max(waits, key=waits.get)
    return f"{worst} {waits[worst] / row.cycles:.0%}" if row.cycles and waits[worst] else "-"


TABLE_HEADER = ("layer", "kind", "out", "w/a_in", "MMAC", "cycles", "excl", "ideal", "util", "c-stall", "DRAM KB",
                "OI", "bound", "µJ", "levels")


def table_rows(report: Report) -> list[tuple[str, ...]]:
    rows = []
    for r in report.layers:
        oi = r.intensity
        rows.append((r.name, r.kind, "x".join(map(str, r.out_shape)), r.bits, f"{r.macs / 1e6:.1f}", f"{r.cycles:,}",
                     f"{r.excl_cycles:,}", f"{r.ideal_cycles:,}", f"{r.util:.1%}", _stall(r),
                     f"{r.dram_bytes / 1024:.1f}", f"{oi:.0f}" if oi is not None else "-", r.bound(report.ridge),
                     f"{r.energy_uj:,.1f}", r.levels or "-"))
    t = report.totals()
    rows.append(("total", "", "", report.precision, f"{report.macs / 1e6:.1f}", f"{report.cycles:,}",
                 f"{sum(r.excl_cycles for r in report.layers):,}", f"{report.ideal_cycles:,}", f"{report.util:.1%}", "",
                 f"{(t['dram_read'] + t['dram_written']) / 1024:.1f}",
                 f"{t['intensity']:.0f}" if t["intensity"] else "-", "",
                 f"{t['energy_uj']:,.1f}" if "energy_uj" in t else "-", ""))
    return rows


def summary_lines(report: Report) -> list[str]:
    hw, t = report.hw, report.totals()
    golden = {None: "no golden outputs", True: "yes", False: "NO"}[report.golden_ok]
    lines = [
        f"model {report.model} at {report.precision} on '{hw.name}' ({hw.description}) at {report.clock_mhz:g} MHz",
        (f"latency {report.cycles:,} cycles = {report.latency_ms:.3f} ms" if report.batch == 1 else
         f"latency {report.cycles:,} cycles for a batch of {report.batch} frames ({report.cycles_per_frame:,.0f} per "
         f"frame; weights loaded once per batch) = {report.latency_ms:.3f} ms")
        + f" -> {report.fps:,.1f} frames/s (accelerator; {report.fps_serial:,.1f} with host work after each frame)",
        f"work {_si(report.macs, 'MAC')}, {_si(report.bitops, 'bit-op')}; ideal {report.ideal_cycles:,} cycles; "
        f"useful array utilization {report.util:.1%} of {_si(report.peak_bitops_per_s, 'bit-op/s')} peak",
        f"DRAM {report.dram_read / 1e6:.2f} MB read + {report.dram_written / 1e6:.2f} MB written; "
        f"intensity {t['intensity'] or 0:.0f} bit-ops/B (ridge {report.ridge:.0f})",
        f"weights {report.params / 1e6:.2f} M params: {report.weight_bytes / 1e6:.2f} MB packed vs "
        f"{report.float32_weight_bytes / 1e6:.2f} MB float32 ({report.compression:.1f}x smaller)",
    ]
    if report.host:
        parts = ", ".join(f"{h.name} {h.seconds * 1e3:.2f} ms" for h in report.host)
        lines.append(f"host {report.host_seconds * 1e3:.2f} ms/frame = {report.host_share:.1%} of the frame ({parts})")
    for op in report.host_ops:
        lines.append(f"compiler host op: {op.get('name')} ({op.get('reason', '')})")
    if report.result_summary:
        lines.append(f"result: {report.result_summary}")
    lines += cost_lines(report)
    lines.append(f"bit-exact vs golden: {golden}")
    lines += [f"warning: {w}" for w in report.warnings]
    return lines


def cost_lines(report: Report) -> list[str]:
    """Energy and area lines (docs/cost.md): empty without a cost model."""
    lines = []
    t = report.cost_totals()
    if report.energy is not None:
        e = report.energy
        parts = ", ".join(f"{k} {v:,.1f}" for k, v in e.breakdown_uj.items() if v)
        per = f" for the batch of {report.batch}, {e.energy_uj / report.batch:,.1f} µJ/frame" if report.batch > 1 else \
            "/frame"
        lines.append(f"energy {e.energy_uj:,.1f} µJ{per} ({parts} µJ); {e.power_w:.3f} W average at "
                     f"{report.clock_mhz:g} MHz; {e.tops_per_w:.2f} binary TOPS/W (2 ops per useful bit-op; "
                     f"{e.mac_tops_per_w:.3f} TOPS/W counting 2 ops per MAC); "
                     f"{t['fps_per_w']:,.1f} frames/s per W")
    if report.area is not None:
        a = report.area
        big = sorted(a.modules_mm2.items(), key=lambda kv: -kv[1])[:4]
        lines.append(f"area {a.total_mm2:.2f} mm² at {a.node_nm:g} nm (largest: "
                     + ", ".join(f"{k} {v:.2f}" for k, v in big) + f"); {t['fps_per_mm2']:,.1f} frames/s per mm²; "
                     f"logic {a.logic_source}")
    return lines


def format_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows, strict=True)]
    left = {0, 1, 2, 3}

    def line(cells: Sequence[str]) -> str:
        return "  ".join(str(c).ljust(w) if i in left else str(c).rjust(w) for i, (c, w) in
                         enumerate(zip(cells, widths, strict=True))).rstrip()

    return "\n".join([line(header), line(["-" * w for w in widths]), *(line(r) for r in rows)])


def format_console(report: Report) -> str:
    return "\n".join([*summary_lines(report), "", format_table(TABLE_HEADER, table_rows(report))])


def format_markdown(report: Report, plots: Sequence[str] = ()) -> str:
    rows = table_rows(report)
    md = [f"# {report.model} at {report.precision} on {report.hw.name}", ""]
    md += [f"- {line}" for line in summary_lines(report)]
    md += ["", "## Layers", "", "| " + " | ".join(TABLE_HEADER) + " |", "|" + "---|" * len(TABLE_HEADER)]
    md += ["| " + " | ".join(r) + " |" for r in rows]
    md += ["", "w/a_in = weight bits / bits of the activations the layer reads (T = ternary); "
           "cycles = first start to last end of the layer's instructions (layers may overlap); excl = previous "
           "layer's end to this layer's end (adds up to the run); "
           "util = useful bit-ops (MACs x w x a_in) / (peak x layer cycles); ideal = compute-bound "
           "cycles; c-stall = largest compute-unit wait (queue / token / dram) as a share of the layer's cycles; "
           "OI = bit-ops per DRAM byte; bound = side of the roofline ridge; µJ = energy of the layer's "
           "instructions (activity x energy table, docs/cost.md; the total adds instructions outside layers and "
           "leakage); levels = output levels used / available (int32 outputs: distinct values, v) and the share "
           "of the most used one.", ""]
    md += ["## Units (whole run, cycles)", "", "| unit | busy | queue | token | dram | idle |", "|" + "---|" * 6]
    md += [f"| {u} | " + " | ".join(f"{s[k]:,}" for k in ("busy", "queue", "token", "dram", "idle")) + " |"
           for u, s in report.units.items()]
    if plots:
        md += ["", "## Plots", ""] + [f"![{Path(p).stem}]({Path(p).name})" for p in plots]
    return "\n".join(md) + "\n"


CSV_FIELDS = ("name", "kind", "out_shape", "bits", "macs", "bitops", "issued_bitops", "cycles", "excl_cycles",
              "ideal_cycles",
              "util", "array_util", "dram_read", "dram_written", "intensity", "bound", "params", "weight_bytes",
              "first_instruction", "end_instruction", "energy_uj", "levels", "distinct", "top_share")


def write_csv(report: Report, path: Path) -> None:
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        unit_cols = [f"{u}_{s}" for u in UNIT_NAMES for s in STATES]
        w.writerow([*CSV_FIELDS, *unit_cols])
        for r in report.layers:
            d = r.to_dict(report.ridge)
            d.update(out_shape="x".join(map(str, r.out_shape)), first_instruction=r.instructions[0],
                     end_instruction=r.instructions[1])
            w.writerow([d[k] if d[k] is not None else "" for k in CSV_FIELDS]
                       + [r.units[u][s] for u in UNIT_NAMES for s in STATES])


def write_report(report: Report, out: str | Path, plots: bool = True) -> dict[str, Path]:
    """report.md, report.json, layers.csv and (optionally) the PNG plots into `out`; returns the paths."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": out / "report.json", "csv": out / "layers.csv", "md": out / "report.md"}
    if plots:
        from .plots import write_plots

        paths.update(write_plots(report, out))
    paths["json"].write_text(json.dumps(report.to_dict(), indent=1) + "\n")
    write_csv(report, paths["csv"])
    paths["md"].write_text(format_markdown(report, [str(p) for k, p in paths.items() if k.startswith("plot")]))
    return paths
