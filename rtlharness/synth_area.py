"""Logic area of the core, synthesized module by module (`bitbranch synth --per-module`, issue 14).

The core is synthesized once with the hierarchy kept (rtlharness/synth.py, `per_module=True`): Yosys derives one
module per (Verilog module, parameter set) and maps each on its own, so every distinct module of a preset is
synthesized once, with the parameters the preset instantiates it with. For each derived module the report has
its instance count, its own cells (instances of other modules and memory cells left out) and its own memories.

generic target: a module's cells -> NAND2-equivalents with isa.area.nand2_equivalents (the figures of the
analytic model), times its instance count. Memories stay memory cells: the buffers' banks (bb_sram_2p) and the
instruction memory (bb_fetch) are SRAM macros, counted by the SRAM density model (isa/area.py, isa/banks.py),
not here; any other memory (the instruction queues of bb_fifo) is a small register file, counted as flip-flops
(bits x AreaConstants.dff NAND2-eq, and its bits in the flip-flop count: `register_file_bits`).

xilinx target: per module LUTs, flip-flops, CARRY4/MUXF/DSP/LUT-RAM cells of synth_xilinx with the memories
left as memory cells; block RAM is counted by bram_count's rule from the memories (an inferred memory is what
memory_libmap would map: one RAMB36/RAMB18 set per physical memory), and memories Xilinx would put in LUT RAM
(at most 64 entries, LUTRAM_MAX_DEPTH) are counted as LUTs by lutram_luts's rule.

Groups (the per-module breakdown of issue 14): every Verilog module of the core is in exactly one GROUPS entry
(tests/test_synth_area.py checks it against rtlharness/build.py's SYNTH_MODULES).
"""

from __future__ import annotations

import datetime
import json
import math
from collections.abc import Mapping
from pathlib import Path

# group -> Verilog modules; pe_array, requant_pool, fetch_decode and dma are the analytic model's modules
# (isa/area.py logic_nand2), buffers and other have no analytic counterpart.
GROUPS: dict[str, tuple[str, ...]] = {
    "pe_array": ("bb_pe", "bb_pe_array"),
    "buffers": ("bb_sram_2p", "bb_banks", "bb_winbuf", "bb_accbuf", "bb_outscatter", "bb_outbuf"),
    "dma": ("bb_load", "bb_store", "bb_dma_seq"),
    "fetch_decode": ("bb_fetch", "bb_decode", "bb_fifo", "bb_sched", "bb_stepnet"),
    "requant_pool": ("bb_requant", "bb_requant_row", "bb_pool"),
    "other": ("bb_compute", "bb_core"),
}
GROUP_TITLES = {
    "pe_array": "PE array", "buffers": "buffers' logic (bank routing, muxes)", "dma": "DMA / load-store",
    "fetch_decode": "fetch / decode / scheduler", "requant_pool": "requant / pool",
    "other": "other (compute sequencer, core)",
}
# Memories that are SRAM macros of the SRAM model (isa/banks.py): the buffers' banks and the instruction memory.
SRAM_MODULES = ("bb_sram_2p", "bb_fetch")
LUTRAM_MAX_DEPTH = 64

# Checked-in figures (isa/synth_area.json), written by `bitbranch synth --hw P --per-module --save`.
CACHE = Path(__file__).resolve().parents[1] / "isa" / "synth_area.json"


def group_of(base: str) -> str:
    for g, mods in GROUPS.items():
        if base in mods:
            return g
    return "other"


# ---- FPGA block RAM rule ------------------------------------------------------------------------------------

# 7-series block RAM aspect ratios (UG473): (depth, width, RAMB36 equivalents); the 72/36-bit widths are the
# simple-dual-port modes, the mode a 1R+1W bank uses.
_BRAM_SHAPES = ((32768, 1, 1.0), (16384, 2, 1.0), (8192, 4, 1.0), (4096, 9, 1.0), (2048, 18, 1.0), (1024, 36, 1.0),
                (512, 72, 1.0), (16384, 1, 0.5), (8192, 2, 0.5), (4096, 4, 0.5), (2048, 9, 0.5), (1024, 18, 0.5),
                (512, 36, 0.5))


def bram_count(depth: int, width: int) -> dict[str, int]:
    """Block RAMs for one memory of depth x width bits: the aspect ratio (RAMB36 or RAMB18, UG473) that needs the
    fewest RAMB36 equivalents, tiles of ceil(depth / d) x ceil(width / w); {"ramb36": n, "ramb18": m}. 0 for a
    memory LUT RAM takes (depth <= LUTRAM_MAX_DEPTH)."""
    if depth <= LUTRAM_MAX_DEPTH:
        return {"ramb36": 0, "ramb18": 0}
    best = min(_BRAM_SHAPES, key=lambda s: (math.ceil(depth / s[0]) * math.ceil(width / s[1]) * s[2], -s[2]))
    n = math.ceil(depth / best[0]) * math.ceil(width / best[1])
    return {"ramb36": n, "ramb18": 0} if best[2] == 1.0 else {"ramb36": 0, "ramb18": n}


def lutram_luts(depth: int, width: int) -> int:
    """LUTs of a memory of at most 64 entries in 7-series LUT RAM: a RAM32M (32 x 6 bits, one write and the read
    ports of a simple dual port, 4 LUTs) per 6 bits and 32 entries, or a RAM64M (64 x 3, 4 LUTs) per 3 bits."""
    if depth > LUTRAM_MAX_DEPTH:
        return 0
    return 4 * math.ceil(width / 6) if depth <= 32 else 4 * math.ceil(width / 3)


# ---- the breakdown ------------------------------------------------------------------------------------------

def breakdown(report: Mapping, k=None) -> dict:
    """Per-module and per-group figures of a per-module synthesis report (synthesize(..., per_module=True)).

    generic: nand2 (per instance and total), mm2, flip_flops; xilinx: luts, flip_flops, brams (RAMB36/RAMB18 by
    bram_count), lutram_luts, and other cells. Module totals sum to the design's."""
    from bitbranch.isa.area import DEFAULT, nand2_equivalents
    from bitbranch.rtlharness.synth import _FF_PATTERNS, _LUT_PATTERNS

    k = k or DEFAULT
    target = report["target"]
    if "modules" not in report:
        raise ValueError("the report has no per-module data (synthesize with per_module=True)")
    ff_re, lut_re = _FF_PATTERNS[target], _LUT_PATTERNS.get(target)
    rows = []
    for m in report["modules"]:
        cells, n = m["cells"], m["instances"]
        ff = sum(c for t, c in cells.items() if ff_re.match(t))
        row = {"module": m["module"], "base": m["base"], "group": group_of(m["base"]), "instances": n,
               "cells": sum(cells.values()), "flip_flops": ff}
        reg_bits = sum(mem["bits"] for mem in m["memories"] if m["base"] not in SRAM_MODULES)
        sram_bits = sum(mem["bits"] for mem in m["memories"] if m["base"] in SRAM_MODULES)
        row["register_file_bits"] = reg_bits
        row["sram_bits"] = sram_bits
        if target == "generic":
            row["nand2"] = nand2_equivalents(cells, k) + reg_bits * k.dff
            row["flip_flops"] += reg_bits
        elif target == "xilinx":
            row["luts"] = sum(c for t, c in cells.items() if lut_re.match(t))
            row["lutram_luts"] = sum(lutram_luts(mem["depth"], mem["width"]) for mem in m["memories"])
            b36 = b18 = 0
            for mem in m["memories"]:
                b = bram_count(mem["depth"], mem["width"])
                b36, b18 = b36 + b["ramb36"], b18 + b["ramb18"]
            row["ramb36"], row["ramb18"] = b36, b18
            row["dsp"] = sum(c for t, c in cells.items() if t.startswith("DSP"))
            row["other_cells"] = {t: c for t, c in cells.items()
                                  if not ff_re.match(t) and not lut_re.match(t) and t not in ("BUFG", "IBUF", "OBUF")}
        rows.append(row)
    fpga = ["luts", "lutram_luts", "ramb36", "ramb18", "dsp"]
    keys = (["nand2"] if target == "generic" else fpga) + ["flip_flops", "cells"]
    groups = {g: {key: 0 for key in keys} | {"modules": []} for g in GROUPS}
    total = {key: 0 for key in keys}
    for r in rows:
        g = groups[r["group"]]
        g["modules"].append(r["base"])
        for key in keys:
            g[key] += r[key] * r["instances"]
            total[key] += r[key] * r["instances"]
    if target == "generic":
        for d in [*groups.values(), total]:
            d["mm2"] = d["nand2"] * k.nand2_um2 * 1e-6
    for g in groups.values():
        g["modules"] = sorted(set(g["modules"]))
    return {"preset": report.get("preset"), "target": target, "abc": report.get("abc"), "yosys": report.get("yosys"),
            "seconds": report.get("seconds"), "modules": rows, "groups": groups, "total": total}


def analytic_groups(hw) -> dict[str, float]:
    """The analytic model's NAND2-eq per group (isa/area.py logic_nand2); 0 for groups it does not model."""
    from bitbranch.isa.area import logic_nand2

    a = logic_nand2(hw)
    return {g: float(a.get(g, 0.0)) for g in GROUPS}


def format_breakdown(b: Mapping, hw=None) -> str:
    target = b["target"]
    lines = [f"per-module synthesis: preset {b['preset']}, target {target}"
             + (f", ABC script {b['abc']}" if b.get("abc") else "") + f", {b['seconds']:.1f} s with {b['yosys']}", ""]
    if target == "generic":
        ana = analytic_groups(hw) if hw is not None else {}
        lines.append(f"  {'module':<16} {'inst':>5} {'NAND2-eq/inst':>14} {'NAND2-eq':>12} {'mm2':>9} {'FF bits':>9}")
        for r in sorted(b["modules"], key=lambda r: (list(GROUPS).index(r["group"]), r["base"])):
            n = r["instances"]
            lines.append(f"  {r['base']:<16} {n:>5} {r['nand2']:>14,.0f} {r['nand2'] * n:>12,.0f} "
                         f"{r['nand2'] * n * 0.798e-6:>9.4f} {r['flip_flops'] * n:>9,}")
        lines += ["", f"  {'group':<40} {'NAND2-eq':>12} {'mm2':>9} {'FF bits':>9} {'analytic NAND2-eq':>18}"]
        for g, d in b["groups"].items():
            a = f"{ana[g]:>18,.0f}" if ana.get(g) else f"{'-':>18}"
            lines.append(f"  {GROUP_TITLES[g]:<40} {d['nand2']:>12,.0f} {d['mm2']:>9.4f} {d['flip_flops']:>9,} {a}")
        t = b["total"]
        a = f"{sum(ana.values()):>18,.0f}" if ana else ""
        lines.append(f"  {'total logic':<40} {t['nand2']:>12,.0f} {t['mm2']:>9.4f} {t['flip_flops']:>9,} {a}")
    else:
        lines.append(f"  {'module':<16} {'inst':>5} {'LUTs':>9} {'LUT-RAM':>8} {'FF':>8} {'RAMB36':>7} {'RAMB18':>7} "
                     f"{'DSP':>5}")
        for r in sorted(b["modules"], key=lambda r: (list(GROUPS).index(r["group"]), r["base"])):
            n = r["instances"]
            lines.append(f"  {r['base']:<16} {n:>5} {r['luts'] * n:>9,} {r['lutram_luts'] * n:>8,} "
                         f"{r['flip_flops'] * n:>8,} {r['ramb36'] * n:>7,} {r['ramb18'] * n:>7,} {r['dsp'] * n:>5,}")
        lines += ["", f"  {'group':<40} {'LUTs':>9} {'LUT-RAM':>8} {'FF':>8} {'RAMB36':>7} {'RAMB18':>7} {'DSP':>5}"]
        for g, d in [*b["groups"].items(), ("total", b["total"])]:
            lines.append(f"  {GROUP_TITLES.get(g, g):<40} {d['luts']:>9,} {d['lutram_luts']:>8,} {d['flip_flops']:>8,} "
                         f"{d['ramb36']:>7,} {d['ramb18']:>7,} {d['dsp']:>5,}")
    return "\n".join(lines)


def save(b: Mapping, path: Path = CACHE) -> None:
    """Store a generic breakdown's group figures under its preset in `path` (the checked-in isa/synth_area.json
    that bench/cost.py and isa.area.synthesized_logic read)."""
    if b["target"] != "generic":
        raise ValueError("only the generic target's NAND2-equivalents are stored")
    data = json.loads(path.read_text()) if path.is_file() else {}
    from bitbranch.isa.area import _hw_key
    from bitbranch.isa.hwconfig import get_config

    data[b["preset"]] = {
        "hw": _hw_key(get_config(b["preset"])),
        "command": f"bitbranch synth --hw {b['preset']} --target generic --per-module --abc {b['abc']} --save",
        "yosys": b["yosys"], "abc": b["abc"], "seconds": b["seconds"], "date": datetime.date.today().isoformat(),
        "nand2": {g: round(d["nand2"], 1) for g, d in b["groups"].items()},
        "flip_flops": {g: d["flip_flops"] for g, d in b["groups"].items()},
    }
    path.write_text(json.dumps(dict(sorted(data.items())), indent=1) + "\n")
