"""`bitbranch verify DIR`: run an artifact on the RTL and on the simulator and compare them.

Every output tensor must be bit-identical (and the whole final DRAM image), the total cycle count exactly
equal, every instruction's unit, dispatch, start, grant, end and free cycles equal, and every activity count
(SRAM bits per buffer, DRAM bits, bit-ops, accumulates, lane-ops, fetches; simulator.activity against the
RTL's counters) equal per instruction and in total; on a mismatch the first diverging instruction is named
from both sides' traces. Exit status: 0 everything matches, 1 a
mismatch, 2 an error (printed as `error: <message>`).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

from bitbranch.isa.cliutil import fail, os_error_message

SIMULATORS = ("verilator", "icarus")


def add_arguments_verify(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("artifact", metavar="DIR", help="artifact directory (manifest.json, program.bin, dram.bin)")
    parser.add_argument("--sim", choices=SIMULATORS, default="verilator",
                        help="HDL simulator for the RTL (default: verilator; icarus is slower)")
    parser.add_argument("--waves", nargs="?", const="", metavar="FILE",
                        help="record waveforms of the RTL run into FILE (default: <artifact>.<sim>.vcd, or .fst "
                             "for icarus); builds a separate traced model")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the report")
    parser.add_argument("--hw", metavar="PRESET",
                        help="hardware preset or file.toml[:name]; must equal the artifact's config")
    parser.add_argument("--max-cycles", type=int, metavar="N",
                        help="stop the RTL after N cycles (default: 4x the simulator's total + 10000)")
    parser.add_argument("--keep", metavar="DIR", help="keep the RTL run's files (hex images, trace, log) in DIR")


def _waves_path(args: argparse.Namespace) -> Path:
    if args.waves:
        return Path(args.waves)
    suffix = "vcd" if args.sim == "verilator" else "fst"
    return Path(f"{Path(args.artifact).resolve().name}.{args.sim}.{suffix}")


def activity_line(check) -> str:
    """The activity counts (simulator.activity vs the RTL's counters): per instruction and in total."""
    per_insn = sum(d.index is not None for d in check.activity_differences)
    total = any(d.index is None for d in check.activity_differences)
    n = len(check.activity_sim)
    if not check.activity_differences:
        return (f"activity: {n} counts equal in total and for all {check.instructions} instructions "
                f"(e.g. {check.activity_rtl.get('bitops', 0):,} bit-ops, {check.activity_rtl.get('dram_read', 0):,} "
                f"DRAM bits read)")
    return (f"activity: MISMATCH ({per_insn} instructions differ" + (", totals differ" if total else "") + ")")


def format_report(check, artifact: str, new_input: dict | None = None) -> str:
    hw = check.hw
    lines = [
        f"verify {artifact} on {check.sim} (hardware '{hw.name}': {hw.array_rows}x{hw.array_cols} PEs x "
        f"{hw.word_bits}-bit words, P={hw.branch_parallel}); {check.instructions} instructions",
        *([f"input: {new_input['file']}; golden recomputed from the artifact's stored graph"] if new_input else []),
        "outputs: " + ("all match" if check.outputs_match else "MISMATCH") + " ("
        + ", ".join(f"{k}: {'ok' if v else 'DIFFERS'}" for k, v in check.outputs.items()) + ")",
        f"DRAM image: {'identical' if check.dram_match else 'DIFFERS'}",
        f"cycles: rtl {check.cycles_rtl:,}, simulator {check.cycles_sim:,}: "
        + ("match" if check.cycles_match else f"MISMATCH ({check.cycles_rtl - check.cycles_sim:+,})"),
        f"per-instruction trace: {check.instructions - len(check.divergences)} of {check.instructions} identical",
        activity_line(check),
    ]
    if check.golden_rtl is not None:
        ok = all(check.golden_rtl.values())
        lines.append(f"RTL vs golden: {'all outputs match' if ok else 'MISMATCH'}")
    if check.rtl_status != "OK" or not check.rtl_finished:
        state = "did not finish (cycle limit)" if not check.rtl_finished else f"stopped with status {check.rtl_status}"
        lines.append(f"RTL {state}")
    if not check.ok:
        lines.append(f"what differs: {check.explain()}")
    rate = check.cycles_rtl / check.wall_rtl if check.wall_rtl > 0 else 0.0
    build = f"built in {check.build_seconds:.1f} s" if check.build_seconds else "cached build"
    lines.append(f"RTL: {check.wall_rtl:.2f} s simulated ({rate:,.0f} cycles/s), {check.wall_rtl_total:.2f} s with "
                 f"start-up, {build}; simulator: {check.wall_sim:.2f} s")
    if check.waves:
        lines.append(f"waves: {check.waves}")
    lines.append("verify: " + ("PASS" if check.ok else "FAIL"))
    return "\n".join(lines)


def cmd_verify(args: argparse.Namespace, prepare=None) -> int:
    """`prepare(artifact) -> (artifact, report additions)`: `verify --input` (bitbranch.workloads.newinput, which may
    import the compiler) puts a new input and its golden into the artifact before both runs."""
    from bitbranch.isa.artifact import load_artifact
    from bitbranch.isa.errors import IsaError
    from bitbranch.isa.hwconfig import ConfigError, get_config

    from .build import SimulatorError
    from .compare import cross_check
    from .params import UnsupportedConfig

    if args.max_cycles is not None and args.max_cycles < 1:
        return fail(f"--max-cycles={args.max_cycles} must be >= 1")
    try:
        art = load_artifact(args.artifact)
        if args.hw:
            hw = get_config(args.hw)
            if hw.to_dict() | {"description": ""} != art.hw.to_dict() | {"description": ""}:
                raise ConfigError(f"--hw {args.hw}: the artifact was compiled for '{art.hw.name}', which differs "
                                  f"from '{hw.name}'; recompile it for that config")
        extra: dict = {}
        if prepare is not None:
            art, extra = prepare(art)
        waves = args.waves is not None
        check = cross_check(art, sim=args.sim, waves=waves, workdir=args.keep, max_cycles=args.max_cycles)
        if waves and check.waves:
            dest = _waves_path(args)
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(check.waves, dest)
            check.waves = str(dest)
    except (IsaError, ConfigError, UnsupportedConfig, SimulatorError) as exc:
        return fail(str(exc))
    except OSError as exc:
        return fail(os_error_message(exc))
    if args.json:
        print(json.dumps({**check.to_json_dict(), **extra}))
    else:
        print(format_report(check, args.artifact, extra.get("input")))
    return 0 if check.ok else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bitbranch verify", description=__doc__.splitlines()[0])
    add_arguments_verify(parser)
    return cmd_verify(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
