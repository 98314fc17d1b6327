"""`bitbranch fuzz`: differential fuzzing of the RTL against the simulator on random programs.

Program i uses seed S + i: simulator.randprog.random_program(hw, default_rng(S + i), n) gives a valid,
deadlock-free, race-free program over every instruction class with random tokens and a random DRAM image.
Each is run on the simulator and the RTL and cross-checked like `bitbranch verify`: final DRAM image (all
outputs), total cycles, every instruction's trace and every activity count (per instruction and in total).
A failing seed is appended to the regression file
(default tests/rtl_regressions.json in a source checkout), which the test suite replays.
Exit status: 0 no mismatch, 1 at least one mismatch, 2 an error.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from bitbranch.isa.cliutil import fail

from .build import SOURCE_ROOT

SIMULATORS = ("verilator", "icarus")
DEFAULT_REGRESSIONS = SOURCE_ROOT / "tests" / "rtl_regressions.json" if SOURCE_ROOT else None


def add_arguments_fuzz(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--programs", type=int, default=20, metavar="N", help="random programs to check (default 20)")
    parser.add_argument("--sim", choices=SIMULATORS, default="verilator", help="HDL simulator (default verilator)")
    parser.add_argument("--seed", type=int, default=0, metavar="S", help="seed of the first program (default 0)")
    parser.add_argument("--hw", default="small", metavar="PRESET",
                        help="hardware preset, file.toml[:name], or random:SEED for a random config the RTL supports "
                             "(rtlharness.randconfig; default: small)")
    parser.add_argument("--instructions", type=int, default=40, metavar="K",
                        help="instructions per program, about (default 40)")
    parser.add_argument("--regressions", metavar="FILE",
                        help="append failing seeds to FILE (default: tests/rtl_regressions.json in a source checkout, "
                             "none in an installed package)")
    parser.add_argument("--no-save", action="store_true", help="do not record failing seeds")
    parser.add_argument("--stop", action="store_true", help="stop at the first mismatch")
    parser.add_argument("--batch", type=int, default=50, metavar="B",
                        help="programs per RTL simulation (default 50; each starts from a reset core)")
    parser.add_argument("--json", action="store_true", help="print one JSON summary instead of the report")


def load_regressions(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    data = json.loads(path.read_text())
    if not isinstance(data, list):
        raise ValueError(f"{path}: expected a JSON list of regression records")
    return data


def save_regression(path: Path, record: dict) -> None:
    records = load_regressions(path)
    key = (record["hw"], record["seed"], record["instructions"])
    if any((r["hw"], r["seed"], r["instructions"]) == key for r in records):
        return
    records.append(record)
    path.write_text(json.dumps(records, indent=1) + "\n")


def fuzz_batch(hw, seeds: Sequence[int], instructions: int, sim: str):
    """Generate program `seed` for every seed and cross-check them in one RTL simulation;
    returns [(seed, program, CrossCheck)]."""
    import numpy as np

    from bitbranch.simulator.randprog import random_program

    from .compare import cross_check_batch

    programs = [random_program(hw, np.random.default_rng(seed), instructions) for seed in seeds]
    checks = cross_check_batch([(p, d, hw) for p, d in programs], sim=sim)
    return [(seed, p, c) for seed, (p, _), c in zip(seeds, programs, checks, strict=True)]


def cmd_fuzz(args: argparse.Namespace) -> int:
    from bitbranch.isa.errors import IsaError
    from bitbranch.isa.hwconfig import ConfigError

    from .build import SimulatorError
    from .params import UnsupportedConfig
    from .randconfig import resolve

    if args.programs < 1:
        return fail(f"--programs={args.programs} must be >= 1")
    if args.batch < 1:
        return fail(f"--batch={args.batch} must be >= 1")
    if args.instructions < 2:
        return fail(f"--instructions={args.instructions} must be >= 2")
    regressions = None
    if not args.no_save:
        regressions = Path(args.regressions) if args.regressions else (
            DEFAULT_REGRESSIONS if DEFAULT_REGRESSIONS is not None and DEFAULT_REGRESSIONS.parent.is_dir() else None)
    t0 = time.perf_counter()
    ops: Counter[str] = Counter()
    failures: list[dict] = []
    checked = cycles = insns = 0
    rtl_wall = sim_wall = 0.0
    try:
        hw = resolve(args.hw)
        stop = False
        for b0 in range(0, args.programs, args.batch):
            seeds = range(args.seed + b0, args.seed + min(args.programs, b0 + args.batch))
            for seed, program, check in fuzz_batch(hw, seeds, args.instructions, args.sim):
                checked += 1
                insns += len(program)
                cycles += check.cycles_rtl
                rtl_wall += check.wall_rtl
                sim_wall += check.wall_sim
                ops.update(insn.op for insn in program)
                if not check.ok:
                    first = check.first
                    record = {"hw": hw.name, "seed": seed, "instructions": args.instructions, "sim": args.sim,
                              "outputs_match": check.outputs_match, "cycles_rtl": check.cycles_rtl,
                              "cycles_sim": check.cycles_sim, "rtl_status": check.rtl_status,
                              "first_divergence": first.to_dict() if first else None,
                              "activity_match": check.activity_match,
                              "first_activity_difference": next(
                                  (d.to_dict() for d in check.activity_differences), None),
                              "explanation": check.explain()}
                    failures.append(record)
                    if regressions is not None:
                        save_regression(regressions, record)
                    if not args.json:
                        print(f"MISMATCH seed {seed}: {check.explain()}")
                    if args.stop:
                        stop = True
                        break
            if stop:
                break
    except (IsaError, ConfigError, UnsupportedConfig, SimulatorError, ValueError) as exc:
        return fail(str(exc))
    wall = time.perf_counter() - t0
    summary = {
        "programs": checked, "mismatches": len(failures), "hw": args.hw, "sim": args.sim, "first_seed": args.seed,
        "instructions": insns, "rtl_cycles": cycles, "instruction_mix": dict(ops), "failures": failures,
        "wall_seconds": wall, "wall_seconds_rtl": rtl_wall, "wall_seconds_sim": sim_wall,
        "regressions": str(regressions) if regressions is not None and failures else None,
    }
    if args.json:
        print(json.dumps(summary))
    else:
        mix = ", ".join(f"{op} {n}" for op, n in sorted(ops.items()))
        print(f"fuzz: {checked} random programs (seeds {args.seed}..{args.seed + checked - 1}, hardware '{args.hw}', "
              f"{args.sim}) cross-checked on outputs, cycles, traces and activity: {len(failures)} mismatches")
        print(f"  {insns:,} instructions ({mix}); {cycles:,} RTL cycles; {wall:.1f} s "
              f"(RTL runs {rtl_wall:.1f} s, simulator {sim_wall:.1f} s)")
        if failures and regressions is not None:
            print(f"  failing seeds recorded in {regressions}")
    return 1 if failures else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bitbranch fuzz", description=__doc__.splitlines()[0])
    add_arguments_fuzz(parser)
    return cmd_fuzz(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
