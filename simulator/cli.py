"""`bitbranch simulate DIR`: run an artifact on the simulator and report cycles, utilization and stats.

Exit status: 0 when the run completes and every golden output matches (or there is no golden), 1 when
a golden output differs, 2 on any error (printed as `error: <message>`, no traceback).
`--input IMAGE` (a new input, its golden recomputed) is added by bitbranch.workloads.newinput, which may
import the compiler; it reaches cmd_simulate as its `prepare` hook.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from collections.abc import Callable

from bitbranch.isa.cliutil import fail, os_error_message
from bitbranch.isa.errors import IsaError
from bitbranch.isa.hwconfig import ConfigError, HwConfig, get_config

from .datapath import DATAPATHS


def add_arguments_simulate(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("artifact", metavar="DIR", help="artifact directory (manifest.json, program.bin, dram.bin)")
    parser.add_argument("--hw", metavar="PRESET",
                        help="run on this preset or file.toml[:name] instead of the artifact's own config "
                             "(timing exploration: C and W must match the artifact's, buffers must be large enough)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the summary")
    parser.add_argument("--trace", metavar="FILE",
                        help="write a per-instruction trace: Chrome/Perfetto JSON if FILE ends in .json, "
                             "else JSON lines")
    parser.add_argument("--datapath", choices=DATAPATHS, default="fast",
                        help="fast (int8 GEMM) or bitwise (xor + popcount reference); identical results")
    parser.add_argument("--max-cycles", type=int, metavar="N", help="stop with an error past N cycles")
    parser.add_argument("--energy", metavar="FILE", help="energy table overriding any subset of the cited defaults "
                        "(docs/cost.md)")


def _select_hw(requested: str | None, compiled: HwConfig) -> HwConfig:
    """The artifact's config, or another one with the same data layout (C lanes, W-bit words): timing
    parameters (array rows, P, DRAM, pipelines, queues, clock) may differ, entry sizes may not."""
    if requested is None:
        return compiled
    hw = get_config(requested)
    if (hw.array_cols, hw.word_bits) != (compiled.array_cols, compiled.word_bits):
        raise ConfigError(
            f"--hw {requested}: the artifact was compiled for '{compiled.name}' (C={compiled.array_cols}, "
            f"W={compiled.word_bits}); '{hw.name}' has C={hw.array_cols}, W={hw.word_bits}, so its buffer "
            "layouts differ: recompile the network for it")
    return hw


# Changes a loaded artifact before it runs (`simulate --input`: new input, recomputed golden; it lives where the
# compiler may be imported, bitbranch.workloads.newinput); returns the artifact and what the report adds.
Prepare = Callable[[object], tuple[object, dict]]


def cmd_simulate(args: argparse.Namespace, prepare: Prepare | None = None) -> int:
    from bitbranch.isa.artifact import load_artifact

    from .machine import CycleLimitError
    from .run import run

    if args.max_cycles is not None and args.max_cycles < 0:
        return fail(f"--max-cycles={args.max_cycles} must be >= 0")
    try:
        from bitbranch.isa.energy import EnergyTableError, load_energy_table

        table = load_energy_table(args.energy)
    except EnergyTableError as exc:
        return fail(str(exc))
    try:
        art = load_artifact(args.artifact)
        extra: dict = {}
        if prepare is not None:
            art, extra = prepare(art)
        art = dataclasses.replace(art, hw=_select_hw(args.hw, art.hw))
        result = run(art, datapath=args.datapath, trace=bool(args.trace), max_cycles=args.max_cycles)
        if args.trace:
            result.write_trace(args.trace)
    except (IsaError, ConfigError, CycleLimitError) as exc:
        return fail(str(exc))
    except OSError as exc:
        return fail(os_error_message(exc))
    cost = cost_summary(result, table)
    if args.json:
        print(json.dumps({**result.to_json_dict(), **cost, **extra}))
    else:
        print(format_summary(result, args.trace, extra.get("input")))
        e = cost["energy"]
        print(f"energy: {e['energy_uj']:,.2f} µJ (" + ", ".join(f"{k} {v:,.2f}" for k, v in
                                                             e["energy_breakdown_uj"].items() if v)
              + f"); {e['power_w']:.3f} W average; chip area {cost['area_mm2']:.2f} mm², logic "
              f"{cost['area_logic_source']} (docs/cost.md)")
    return 1 if result.golden_ok is False else 0


def cost_summary(result, table) -> dict:
    """Energy of the run (activity x table; TOPS/W over the issued bit-ops: an artifact run knows no layer
    MACs) and the chip area of its config."""
    from bitbranch.isa.area import report_area

    from .energy import summarize

    area = report_area(result.hw)
    s = summarize(result.activity.total(), result.hw, table, result.cycles, result.hw.clock_mhz, result.stats.bitops,
                  area.total_mm2, sram_mm2=area.sram_total_mm2)
    return {"energy": s.to_dict(), "area_mm2": area.total_mm2, "area_logic_source": area.logic_source}


def format_summary(result, trace_path: str | None = None, new_input: dict | None = None) -> str:
    """The human-readable report: config, cycles, time, utilization, per-unit table, DRAM, golden (and the input
    when `simulate --input` replaced it: {"file", "shape"})."""
    hw, s = result.hw, result.stats
    ms = s.cycles / (hw.clock_mhz * 1e3)
    lines = [
        f"hardware: {hw.name} ({hw.array_rows}x{hw.array_cols} PEs x {hw.word_bits}-bit words, "
        f"P={hw.branch_parallel}, {hw.clock_mhz:g} MHz); datapath: {result.datapath}",
        f"cycles: {s.cycles:,} = {ms:.4f} ms at {hw.clock_mhz:g} MHz",
        f"instructions: {s.instructions:,} ("
        + ", ".join(f"{op} {n}" for op, n in sorted(s.instruction_mix.items())) + ")",
        f"array utilization: {s.utilization:.2%} ({s.bitops:,} bit-ops of {hw.peak_bitops_per_cycle:,}/cycle peak)",
        "",
        f"{'unit':<8} {'insns':>7} " + " ".join(f"{h:>17}" for h in ("busy", "queue", "token", "dram", "idle")),
    ]
    for name, u in s.units.items():
        cells = (u.busy, u.stalled_on_queue, u.stalled_on_token, u.stalled_on_dram, u.idle)
        lines.append(f"{name:<8} {u.instructions:>7,} " + " ".join(_pct(c, s.cycles) for c in cells))
    lines += [
        f"(cycles busy / stalled waiting for an instruction / on tokens / for the DRAM port / idle after the "
        f"unit's last instruction; fetch stalled {s.fetch_stalled:,} cycles on full queues)",
        "",
        f"DRAM: {s.dram_bytes_read:,} bytes read, {s.dram_bytes_written:,} bytes written; port busy "
        f"{s.dram_busy:,} cycles" + (f" ({s.dram_busy / s.cycles:.1%})" if s.cycles else ""),
    ]
    if new_input:
        lines.append(f"input: {new_input['file']} as {'x'.join(map(str, new_input['shape']))} 8-bit levels; golden "
                     "recomputed from the artifact's stored graph")
    match = result.outputs_match_golden
    if match is None:
        lines.append("golden: none in the artifact")
    else:
        verdict = "all outputs match" if result.golden_ok else "MISMATCH"
        lines.append(f"golden: {verdict} (" + ", ".join(f"{k}: {'ok' if v else 'DIFFERS'}"
                                                        for k, v in match.items()) + ")")
    if trace_path:
        lines.append(f"trace: {trace_path}")
    lines.append(f"simulated in {result.wall_seconds:.2f} s")
    return "\n".join(lines)


def _pct(part: int, whole: int) -> str:
    return f"{part:>10,} {f'({part / whole:.1%})':>8}" if whole else f"{part:>17,}"
